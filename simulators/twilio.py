"""Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json`."""

from __future__ import annotations

import hmac
import math
import re
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.tenants import Tenant
from simulators.common import (
    FORM_TYPE,
    Call,
    ProviderSpec,
    SimContext,
    basic_credentials,
    provider_endpoint,
)

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BODY_CHARS = 1600

# GSM 03.38 basic character set (without the escape) and its extension table,
# whose characters take two septets each.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """SMS segments: GSM-7 160 septets (153 when split), else UCS-2 70 units (67 when split)."""
    if not body:
        return 1
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in body):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in body)
        single, multi = 160, 153
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in body)
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


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


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    creds = basic_credentials(headers)
    if creds is None:
        return None
    sid, token = creds
    for tenant in ctx.all_tenants():
        account = tenant.twilio
        if account is not None and account.account_sid == sid:
            expected = account.auth_token.get_secret_value().encode()
            return tenant if hmac.compare_digest(expected, token.encode()) else None
    return None


SPEC = ProviderSpec(name="twilio", authenticate=authenticate, error_for_status=error_for_status)


def _address(value: str) -> str:
    return value.removeprefix("whatsapp:")


def _validate(fields: dict[str, str]) -> JSONResponse | None:
    to = fields.get("To", "")
    body = fields.get("Body", "")
    if not to:
        return error(400, 21604, "A 'To' phone number is required.")
    if not fields.get("From") and not fields.get("MessagingServiceSid"):
        return error(400, 21603, "A 'From' phone number is required.")
    if not body and not fields.get("MediaUrl"):
        return error(400, 21602, "Message body is required.")
    if not E164.match(_address(to)):
        return error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if len(body) > MAX_BODY_CHARS:
        return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    return None


def message_resource(account_sid: str, fields: dict[str, str]) -> dict[str, Any]:
    sid = "SM" + secrets.token_hex(16)
    now = format_datetime(datetime.now(UTC).replace(microsecond=0))
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    body = fields.get("Body", "")
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": fields.get("From") or None,
        "messaging_service_sid": fields.get("MessagingServiceSid") or None,
        "num_media": "1" if fields.get("MediaUrl") else "0",
        "num_segments": str(num_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": fields["To"],
        "uri": f"{uri}.json",
    }


def _create_message(call: Call) -> Response:
    tenant = call.tenant
    if tenant is None or tenant.twilio is None:
        return auth_error()
    path_sid = call.request.path_params["account_sid"]
    if path_sid != tenant.twilio.account_sid:
        return _not_found(call)
    is_form = (
        call.request.headers.get("content-type", "").split(";", maxsplit=1)[0].strip() == FORM_TYPE
    )
    fields: dict[str, str] = call.body if is_form and isinstance(call.body, dict) else {}
    problem = _validate(fields)
    if problem is not None:
        return problem
    return JSONResponse(message_resource(path_sid, fields), status_code=201)


def _not_found(call: Call) -> Response:
    # The path as Twilio sees it, without the simulator's "/twilio" mount prefix.
    path = call.request.url.path.removeprefix(call.request.scope.get("root_path", ""))
    return error(404, 20404, f"The requested resource {path} was not found")


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json",
            provider_endpoint(ctx, SPEC, _create_message),
            methods=["POST"],
        ),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
