"""What every simulated Twilio REST resource shares, and the Account resource itself.

- HTTP Basic with the account SID and auth token; a wrong pair is 401 with Twilio's
  error 20003 ("Authenticate") and a `WWW-Authenticate` challenge.
- A path naming another account than the credentials' is 404 with error 20404.
- `GET /2010-04-01/Accounts/{sid}.json` fetches the account: Twilio's Account resource,
  auth token included, as Twilio shows it to the account's own credentials.

Not simulated: subaccounts (another account's SID is always a 404 here), suspended or
closed accounts, API keys as credentials.
"""

from __future__ import annotations

import hmac
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from core.tenants import Tenant
from providers.twilio import TwilioAccount
from simulators.common import Call, ProviderSpec, SimContext, basic_credentials

API_VERSION = "2010-04-01"
# When every simulated account was "created" (Twilio: RFC 2822, GMT).
ACCOUNT_CREATED = "Fri, 01 Mar 2024 09:00:00 +0000"
# Some of the account's subresources, by the names Twilio lists them under.
SUBRESOURCES = {
    "addresses": "Addresses",
    "available_phone_numbers": "AvailablePhoneNumbers",
    "balance": "Balance",
    "calls": "Calls",
    "incoming_phone_numbers": "IncomingPhoneNumbers",
    "messages": "Messages",
    "notifications": "Notifications",
    "usage": "Usage",
}


def error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def auth_error() -> JSONResponse:
    response = error(401, 20003, "Authenticate")
    response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


def error_for_status(status: int) -> Response:
    if status == 401:
        return auth_error()
    if status == 429:
        return error(429, 20429, "Too Many Requests")
    if status >= 500:
        return error(status, 20500, "Internal Server Error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return error(status, 20000 + status, phrase)


def account_of(ctx: SimContext, sid: str) -> tuple[Tenant, TwilioAccount] | None:
    """The tenant and account whose SID this is."""
    found = ctx.tenants.find_account("twilio", account_sid=sid)
    if found is None:
        return None
    tenant, account = found
    assert isinstance(account.config, TwilioAccount)
    return tenant, account.config


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    creds = basic_credentials(headers)
    found = account_of(ctx, creds[0]) if creds is not None else None
    if creds is None or found is None:
        return None
    expected = found[1].auth_token.get_secret_value().encode()
    return found[0] if hmac.compare_digest(expected, creds[1].encode()) else None


SPEC = ProviderSpec(name="twilio", authenticate=authenticate, error_for_status=error_for_status)


def not_found(call: Call) -> Response:
    # The path as Twilio sees it, without the simulator's "/twilio" mount prefix.
    path = call.request.url.path.removeprefix(call.request.scope.get("root_path", ""))
    return error(404, 20404, f"The requested resource {path} was not found")


def authorized_sid(call: Call) -> str | Response:
    """The path's account SID when the credentials are that account's; else Twilio's error."""
    creds = basic_credentials(call.request.headers)
    if call.tenant is None or creds is None:
        return auth_error()
    path_sid = str(call.request.path_params["account_sid"])
    return path_sid if path_sid == creds[0] else not_found(call)


def account_resource(tenant: Tenant, account: TwilioAccount) -> dict[str, Any]:
    sid = account.account_sid
    uri = f"/{API_VERSION}/Accounts/{sid}"
    return {
        "auth_token": account.auth_token.get_secret_value(),
        "date_created": ACCOUNT_CREATED,
        "date_updated": ACCOUNT_CREATED,
        "friendly_name": tenant.name or tenant.id,
        "owner_account_sid": sid,  # a main account owns itself
        "sid": sid,
        "status": "active",
        "subresource_uris": {k: f"{uri}/{v}.json" for k, v in SUBRESOURCES.items()},
        "type": "Full",
        "uri": f"{uri}.json",
    }


def fetch_account(ctx: SimContext, call: Call) -> Response:
    sid = authorized_sid(call)
    if isinstance(sid, Response):
        return sid
    found = account_of(ctx, sid)
    if found is None:  # authenticated a moment ago, gone since (a tenant reload)
        return not_found(call)
    return JSONResponse(account_resource(*found))
