"""What every simulated SendGrid v3 endpoint shares, and the key's own scopes.

- `Authorization: Bearer <api key>`; no key is 401 "authorization required", a key no
  tenant holds is 401 with the "authorization grant is invalid" message.
- Errors are `{"errors": [{"message", "field", "help"?}]}`.
- `GET /v3/scopes`: `{"scopes": [...]}`, the scopes of the key that asks (the hub's test
  connection). Every simulated key holds the same ones: Mail Send and Email Activity.
"""

from __future__ import annotations

import hmac
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from core.tenants import Tenant
from providers.sendgrid import SendGridAccount
from simulators.common import Call, ProviderSpec, SimContext, bearer_token

HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
AUTH_FAILED = "The provided authorization grant is invalid, expired, or revoked"
AUTH_REQUIRED = "authorization required"
# What a restricted key able to send and to read the activity feed holds.
KEY_SCOPES = ("mail.send", "messages.read")

Problem = dict[str, str | None]


def problem(message: str, field: str | None = None, anchor: str | None = None) -> Problem:
    return {"message": message, "field": field, "help": f"{HELP}#{anchor}" if anchor else None}


def error(status: int, problems: list[Problem]) -> JSONResponse:
    return JSONResponse({"errors": problems}, status_code=status)


def error_for_status(status: int) -> Response:
    if status == 401:
        return error(401, [problem(AUTH_FAILED)])
    if status == 429:
        return error(429, [problem("too many requests")])
    if status >= 500:
        return error(status, [problem("internal server error")])
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "request failed"
    return error(status, [problem(phrase)])


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    token = bearer_token(headers)
    if token is None:
        return None
    for tenant, account in ctx.accounts("sendgrid", SendGridAccount):
        if hmac.compare_digest(account.api_key.get_secret_value().encode(), token.encode()):
            return tenant
    return None


SPEC = ProviderSpec(name="sendgrid", authenticate=authenticate, error_for_status=error_for_status)


def list_scopes(call: Call) -> Response:
    if call.tenant is None:
        presented = bearer_token(call.request.headers) is not None
        return error(401, [{"field": None, "message": AUTH_FAILED if presented else AUTH_REQUIRED}])
    return JSONResponse({"scopes": list(KEY_SCOPES)})
