"""What Google's APIs (Directory, FCM) share: the JSON error shape and bearer-token checks."""

from __future__ import annotations

from typing import Any, Literal

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from core.tenants import Tenant
from simulators.common import SimContext, bearer_token
from simulators.sync_state import AccessToken

UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential."
)
INSUFFICIENT_SCOPES = "Request had insufficient authentication scopes."
REALM = 'Bearer realm="https://accounts.google.com/"'

# google.rpc.Code names for the HTTP statuses Google maps them to.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def status_name(code: int) -> str:
    return STATUS_NAMES.get(code, "UNKNOWN" if code >= 500 else "FAILED_PRECONDITION")


def google_error(
    code: int,
    message: str,
    *,
    reason: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """`{"error": {"code", "message", "errors"?, "status", "details"?}}`.

    The Directory API adds `errors: [{message, domain, reason}]` (pass `reason`);
    FCM adds `details` with its own error code instead.
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if reason is not None:
        error["errors"] = [{"message": message, "domain": "global", "reason": reason}]
    error["status"] = status_name(code)
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code, headers=headers)


def unauthenticated(headers: Headers, *, reason: str | None) -> JSONResponse:
    """401 for a missing, unknown or expired access token."""
    presented = bearer_token(headers) is not None
    challenge = f'{REALM}, error="invalid_token"' if presented else REALM
    return google_error(
        401, UNAUTHENTICATED, reason=reason, headers={"WWW-Authenticate": challenge}
    )


def insufficient_scope(required: str, *, reason: str | None) -> JSONResponse:
    challenge = f'{REALM}, error="insufficient_scope", scope="{required}"'
    return google_error(
        403, INSUFFICIENT_SCOPES, reason=reason, headers={"WWW-Authenticate": challenge}
    )


TokenProblem = Literal["unauthenticated", "insufficient_scope"]


def check_token(
    ctx: SimContext, headers: Headers, accepted_scopes: frozenset[str]
) -> AccessToken | TokenProblem:
    """The live token the request carries, if it holds one of `accepted_scopes`."""
    token = ctx.state.sync.tokens.get(bearer_token(headers))
    if token is None or token.expired():
        return "unauthenticated"
    if not token.scopes & accepted_scopes:
        return "insufficient_scope"
    return token


def token_tenant(ctx: SimContext, headers: Headers) -> Tenant | None:
    """The tenant an access token was issued to (even an expired one), for recording."""
    token = ctx.state.sync.tokens.get(bearer_token(headers))
    return ctx.tenants.get(token.tenant) if token is not None else None
