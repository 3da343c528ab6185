"""Google's OAuth 2.0 token endpoint, service-account flow: `POST /google/oauth2/token`.

`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`; the
JWT is RS256, signed with the key of a tenant's Workspace or FCM service
account and checked here by hand (base64url, RSASSA-PKCS1-v1_5 with SHA-256).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.fcm import FcmAccount
from providers.google_auth import GoogleServiceAccount
from providers.gworkspace import GoogleWorkspaceAccount
from simulators.common import Call, ProviderSpec, SimContext, provider_endpoint
from simulators.sync_state import TOKEN_LIFETIME, GoogleService

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Besides the simulator's own token URL, the audiences Google accepts.
GOOGLE_AUDIENCES = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v4/token",
        "https://accounts.google.com/o/oauth2/token",
    }
)
MAX_ASSERTION_LIFETIME = 3600
MAX_CLOCK_SKEW = 300

BAD_SIGNATURE = "Invalid JWT Signature."
BAD_TIMES = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)
BAD_AUDIENCE = "Invalid JWT: Failed audience check."
UNKNOWN_CLIENT = "The OAuth client was not found."
UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, or client not "
    "authorized for any of the scopes requested."
)


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        return oauth_error(self.status, self.error, self.description)


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def error_for_status(status: int) -> Response:
    if status >= 500:
        return oauth_error(status, "internal_failure", "Backend Error")
    if status == 429:
        return oauth_error(429, "rate_limit_exceeded", "Rate Limit Exceeded")
    if status == 401:
        return oauth_error(401, "invalid_client", UNKNOWN_CLIENT)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return oauth_error(status, "invalid_request", phrase)


@dataclass(frozen=True)
class Jws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class Signer:
    tenant: Tenant
    service: GoogleService
    account: GoogleServiceAccount


def b64url_decode(part: str) -> bytes:
    return base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)


def parse_jws(assertion: str) -> Jws:
    """The header, claims and signature of a compact JWS; invalid_grant when malformed."""
    malformed = OAuthError(400, "invalid_grant", "Invalid JWT: cannot be parsed.")
    parts = assertion.split(".")
    if len(parts) != 3:
        raise malformed
    try:
        header, claims = (json.loads(b64url_decode(p)) for p in parts[:2])
        signature = b64url_decode(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise malformed from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise malformed
    return Jws(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


@lru_cache(maxsize=128)
def public_key(pem: str) -> rsa.RSAPublicKey | None:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return None
    return key.public_key() if isinstance(key, rsa.RSAPrivateKey) else None


def signature_valid(jws: Jws, account: GoogleServiceAccount) -> bool:
    """RS256 with the account's key; a `kid`, when sent, must name that key."""
    if jws.header.get("alg") != "RS256":
        return False
    kid = jws.header.get("kid")
    if kid is not None and account.private_key_id and kid != account.private_key_id:
        return False
    key = public_key(account.private_key.get_secret_value())
    if key is None:
        return False
    try:
        key.verify(jws.signature, jws.signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def find_signer(ctx: SimContext, jws: Jws) -> Signer:
    """The service account named by `iss` whose key signed the JWT."""
    issuer = jws.claims.get("iss")
    candidates: list[Signer] = []
    for tenant, workspace in ctx.accounts("gworkspace", GoogleWorkspaceAccount):
        if workspace.client_email == issuer:
            candidates.append(Signer(tenant, "gworkspace", workspace))
    for tenant, fcm in ctx.accounts("fcm", FcmAccount):
        if fcm.client_email == issuer:
            candidates.append(Signer(tenant, "fcm", fcm))
    if not candidates:
        raise OAuthError(401, "invalid_client", UNKNOWN_CLIENT)
    for signer in candidates:
        if signature_valid(jws, signer.account):
            return signer
    raise OAuthError(400, "invalid_grant", BAD_SIGNATURE)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def check_times(claims: Mapping[str, Any], now: float) -> None:
    """Short-lived (at most an hour), not expired, not issued in the future (5 min skew)."""
    iat, exp = _number(claims.get("iat")), _number(claims.get("exp"))
    if (
        iat is None
        or exp is None
        or exp <= iat
        or exp - iat > MAX_ASSERTION_LIFETIME
        or exp <= now
        or iat > now + MAX_CLOCK_SKEW
    ):
        raise OAuthError(400, "invalid_grant", BAD_TIMES)


def check_subject(signer: Signer, subject: Any) -> str | None:
    """Workspace may impersonate its admin (domain-wide delegation); FCM impersonates nobody."""
    if subject is None:
        return None
    if signer.service == "fcm":
        raise OAuthError(401, "unauthorized_client", UNAUTHORIZED_CLIENT)
    admin = getattr(signer.account, "admin_email", "")
    if not isinstance(subject, str) or subject.lower() != str(admin).lower():
        raise OAuthError(400, "invalid_grant", "Invalid email or User ID")
    return subject


def form_fields(body: Any) -> dict[str, str]:
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if isinstance(k, str) and isinstance(v, str)}


@dataclass(frozen=True)
class Grant:
    signer: Signer
    scopes: frozenset[str]
    subject: str | None


def check_grant(ctx: SimContext, call: Call) -> Grant:
    """What a token request may be granted, in Google's order of checks; OAuthError if nothing."""
    fields = form_fields(call.body)
    grant_type = fields.get("grant_type", "")
    if grant_type != JWT_BEARER:
        raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    assertion = fields.get("assertion", "")
    if not assertion:
        raise OAuthError(400, "invalid_request", "Missing required parameter: assertion")
    jws = parse_jws(assertion)
    signer = find_signer(ctx, jws)
    token_url = str(call.request.url.replace(query="", fragment=""))
    if jws.claims.get("aud") not in GOOGLE_AUDIENCES | {token_url}:
        raise OAuthError(400, "invalid_grant", BAD_AUDIENCE)
    check_times(jws.claims, time.time())
    scope = jws.claims.get("scope")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
    if not scopes:
        raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    return Grant(signer, scopes, check_subject(signer, jws.claims.get("sub")))


def exchange(ctx: SimContext, call: Call) -> Response:
    try:
        grant = check_grant(ctx, call)
    except OAuthError as exc:
        return exc.response()
    token = ctx.state.sync.tokens.issue(
        tenant=grant.signer.tenant.id,
        service=grant.signer.service,
        client_email=grant.signer.account.client_email,
        scopes=grant.scopes,
        subject=grant.subject,
    )
    return JSONResponse(
        {
            "access_token": token.value,
            "expires_in": int(TOKEN_LIFETIME) - 1,
            "token_type": "Bearer",
        },
        headers={"Cache-Control": "no-store"},
    )


def assertion_tenant(ctx: SimContext, body: Any) -> Tenant | None:
    """The tenant whose service account signed the request's assertion (for recording)."""
    try:
        return find_signer(ctx, parse_jws(form_fields(body).get("assertion", ""))).tenant
    except OAuthError:
        return None


def redact(body: Any) -> Any:
    """Record the assertion without its signature: the claims stay readable, the JWT unusable."""
    if not isinstance(body, dict) or not isinstance(body.get("assertion"), str):
        return body
    head, _, _ = body["assertion"].rpartition(".")
    return {**body, "assertion": f"{head}.***" if head else "***"}


def no_tenant(ctx: SimContext, headers: Headers) -> Tenant | None:
    return None


SPEC = ProviderSpec(
    name="google",
    authenticate=no_tenant,
    error_for_status=error_for_status,
    authenticate_body=assertion_tenant,
    redact_body=redact,
)


def _not_found(call: Call) -> Response:
    return oauth_error(404, "invalid_request", "Not Found")


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/google"


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route(
            "/oauth2/token",
            provider_endpoint(ctx, SPEC, lambda c: exchange(ctx, c)),
            methods=["POST"],
        ),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
