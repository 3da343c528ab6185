"""Google Workspace Admin SDK Directory API: `/admin/directory/v1/users/{userKey}`.

Bearer access tokens come from the simulated token endpoint (`google_oauth`).
Every address in the domain of the tenant's Workspace admin exists; a user's
state starts from a default resource and keeps what PATCH sets.
"""

from __future__ import annotations

import re
import secrets
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.gworkspace import GoogleWorkspaceAccount
from simulators.common import Call, ProviderSpec, SimContext, json_payload, provider_endpoint
from simulators.google_api import (
    check_token,
    google_error,
    insufficient_scope,
    token_tenant,
    unauthenticated,
)
from simulators.sync_state import AccessToken, stable_number

USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
READONLY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
PHONE_TYPES = frozenset(
    {
        "assistant", "callback", "car", "company_main", "custom", "grand_central", "home",
        "home_fax", "isdn", "main", "mobile", "other", "other_fax", "pager", "radio", "telex",
        "tty_tdd", "work", "work_fax", "work_mobile", "work_pager",
    }
)  # fmt: skip
# Output-only fields (and primaryEmail, which this simulator does not rename): ignored.
READ_ONLY = frozenset(
    {
        "kind", "id", "etag", "primaryEmail", "creationTime", "lastLoginTime", "customerId",
        "isAdmin", "isDelegatedAdmin", "isMailboxSetup", "isEnrolledIn2Sv", "isEnforcedIn2Sv",
        "nonEditableAliases", "aliases", "deletionTime", "thumbnailPhotoUrl",
        "thumbnailPhotoEtag",
    }
)  # fmt: skip
WRITABLE = frozenset(
    {
        "addresses", "agreedToTerms", "archived", "changePasswordAtNextLogin", "customSchemas",
        "emails", "externalIds", "gender", "hashFunction", "ims", "includeInGlobalAddressList",
        "ipWhitelisted", "keywords", "languages", "locations", "name", "notes", "orgUnitPath",
        "organizations", "password", "phones", "posixAccounts", "recoveryEmail",
        "recoveryPhone", "relations", "sshPublicKeys", "suspended", "suspensionReason",
        "websites",
    }
)  # fmt: skip
NOT_AUTHORIZED = "Not Authorized to access this resource/api"

_REASONS = {400: "invalid", 401: "authError", 403: "forbidden", 404: "notFound"}


def error(code: int, message: str, reason: str | None = None) -> JSONResponse:
    fallback = "backendError" if code >= 500 else "failedPrecondition"
    return google_error(code, message, reason=reason or _REASONS.get(code, fallback))


def error_for_status(status: int) -> Response:
    if status == 401:
        return error(401, "Login Required.", "required")
    if status == 403:  # how the Directory API reports rate limiting
        return error(403, "Rate Limit Exceeded", "rateLimitExceeded")
    if status == 429:
        return error(429, "Rate Limit Exceeded", "rateLimitExceeded")
    if status >= 500:
        return error(status, "Backend Error", "backendError")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return error(status, phrase)


SPEC = ProviderSpec(name="gworkspace", authenticate=token_tenant, error_for_status=error_for_status)


def _domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


def _default_user(tenant: Tenant, email: str, admin: str) -> dict[str, Any]:
    words = [w.capitalize() for w in re.split(r"[._-]+", email.partition("@")[0]) if w]
    given, family = (words[0] if words else email), " ".join(words[1:])
    return {
        "kind": "admin#directory#user",
        "id": stable_number(tenant.id, email),
        "etag": "",
        "primaryEmail": email,
        "name": {"givenName": given, "familyName": family, "fullName": f"{given} {family}".strip()},
        "isAdmin": email == admin,
        "isDelegatedAdmin": False,
        "lastLoginTime": "1970-01-01T00:00:00.000Z",
        "creationTime": "2024-04-01T09:00:00.000Z",
        "agreedToTerms": True,
        "suspended": False,
        "archived": False,
        "changePasswordAtNextLogin": False,
        "ipWhitelisted": False,
        "emails": [{"address": email, "primary": True}],
        "customerId": "C0" + stable_number(tenant.id, digits=7),
        "orgUnitPath": "/",
        "isMailboxSetup": True,
        "includeInGlobalAddressList": True,
    }


def _user(ctx: SimContext, tenant: Tenant, user_key: str) -> dict[str, Any] | None:
    """The user a userKey (primary email or id) names, created on first use; None if unknown."""
    admin = tenant.account("gworkspace", GoogleWorkspaceAccount).admin_email.lower()
    users = ctx.state.sync.users
    if "@" not in user_key:
        return next(
            (u for (t, _), u in users.items() if t == tenant.id and u["id"] == user_key), None
        )
    email = user_key.lower()
    if _domain(email) != _domain(admin) or not email.partition("@")[0]:
        return None
    key = (tenant.id, email)
    if key not in users:
        users[key] = {**_default_user(tenant, email, admin), "etag": _etag()}
    return users[key]


def _etag() -> str:
    return f'"{secrets.token_urlsafe(27)}"'


def _invalid(field: str, detail: str) -> JSONResponse:
    return error(400, f"Invalid Input: {field} ({detail})")


def _phones_problem(phones: Any) -> JSONResponse | None:
    if not isinstance(phones, list):
        return _invalid("phones", "must be a list of phone objects")
    for i, phone in enumerate(phones):
        if not isinstance(phone, dict) or not isinstance(phone.get("value"), str):
            return _invalid(f"phones[{i}].value", "a phone needs a string value")
        if phone.get("type", "mobile") not in PHONE_TYPES:
            return _invalid(f"phones[{i}].type", f"unknown phone type {phone.get('type')!r}")
        if phone.get("type") == "custom" and not phone.get("customType"):
            return _invalid(f"phones[{i}].customType", "required when type is custom")
    return None


def _patch_problem(patch: Any) -> JSONResponse | None:
    if not isinstance(patch, dict):
        return error(
            400, 'Invalid JSON payload received. Unknown name "": Root element must be a message.'
        )
    unknown = sorted(set(patch) - WRITABLE - READ_ONLY)
    if unknown:
        return error(
            400, f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
        )
    phones = _phones_problem(patch.get("phones", []))
    if phones is not None:
        return phones
    recovery = patch.get("recoveryPhone")
    if recovery not in (None, "") and not (isinstance(recovery, str) and E164.match(recovery)):
        return _invalid("recoveryPhone", "must be in E.164 format")
    if "name" in patch and not isinstance(patch["name"], dict):
        return _invalid("name", "must be an object")
    return None


def _apply(user: dict[str, Any], patch: dict[str, Any]) -> None:
    """PATCH semantics: nested objects merge, every other field (lists too) is replaced."""
    for key, value in patch.items():
        if key in READ_ONLY or key == "password":  # Google never returns a password
            continue
        if isinstance(value, dict) and isinstance(user.get(key), dict):
            user[key] = {**user[key], **value}
        else:
            user[key] = value
    name = user.get("name")
    if isinstance(name, dict) and ("givenName" in name or "familyName" in name):
        full = f"{name.get('givenName') or ''} {name.get('familyName') or ''}".strip()
        user["name"] = {**name, "fullName": full}
    user["etag"] = _etag()


def _authorize(ctx: SimContext, call: Call, scopes: frozenset[str]) -> Tenant | Response:
    checked = check_token(ctx, call.request.headers, scopes)
    if not isinstance(checked, AccessToken):
        if checked == "unauthenticated":
            return unauthenticated(call.request.headers, reason="authError")
        return insufficient_scope(USER_SCOPE, reason="insufficientPermissions")
    tenant = ctx.tenants.get(checked.tenant)
    # Only an impersonated Workspace admin may use the Directory API.
    if checked.service != "gworkspace" or checked.subject is None or tenant is None:
        return error(403, NOT_AUTHORIZED, "forbidden")
    return tenant


def patch_user(ctx: SimContext, call: Call) -> Response:
    tenant = _authorize(ctx, call, frozenset({USER_SCOPE}))
    if isinstance(tenant, Response):
        return tenant
    try:
        patch = json_payload(call.raw)
    except (ValueError, UnicodeDecodeError):
        return error(400, "Invalid JSON payload received. Unexpected token.", "parseError")
    patch = {} if patch is None else patch
    problem = _patch_problem(patch)
    if problem is not None:
        return problem
    user = _user(ctx, tenant, call.request.path_params["user_key"])
    if user is None:
        return error(404, "Resource Not Found: userKey")
    _apply(user, patch)
    return JSONResponse(user)


def get_user(ctx: SimContext, call: Call) -> Response:
    tenant = _authorize(ctx, call, frozenset({USER_SCOPE, READONLY_SCOPE}))
    if isinstance(tenant, Response):
        return tenant
    user = _user(ctx, tenant, call.request.path_params["user_key"])
    return JSONResponse(user) if user is not None else error(404, "Resource Not Found: userKey")


def _not_found(call: Call) -> Response:
    return error(404, "Not Found")


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/gworkspace"


def routes(ctx: SimContext) -> list[BaseRoute]:
    path = "/admin/directory/v1/users/{user_key}"
    return [
        Route(path, provider_endpoint(ctx, SPEC, lambda c: patch_user(ctx, c)), methods=["PATCH"]),
        Route(path, provider_endpoint(ctx, SPEC, lambda c: get_user(ctx, c)), methods=["GET"]),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
