"""Africa's Talking with the `apiKey` header: bulk SMS, the app's data, delivery reports.

- `POST /version1/messaging` (form: `username`, `to` comma-separated, `message`, `from`?,
  `bulkSMSMode`, `enqueue`?) -> 201 `{"SMSMessageData": {"Message": "Sent to 1/1 Total
  Cost: KES 0.8000", "Recipients": [{"statusCode": 101, "number", "status": "Success",
  "cost", "messageId": "ATXid_..."}]}}`. A number that is not `+<digits>` (the SDK's
  check) is answered in its Recipients entry with 403 InvalidPhoneNumber (messageId
  "None"); a `from` that is not the account's sender id gives no recipient at all and
  `"Message": "InvalidSenderId"`.
- `GET /version1/user?username=...` -> `{"UserData": {"balance": "KES 1000.0000"}}` (the
  hub's test connection, the SDK's fetch_application_data).

A wrong or missing apiKey, or a username that is not the key's, is HTTP 401 with the text
"The supplied authentication is invalid" (the wording is unconfirmed); a missing form
field is a 400 in text. JSON answers carry exactly `Content-Type: application/json`: the
SDK parses nothing else.

Each accepted number gets one final delivery report, a form POST to the tenant's
dashboard callback URL with `?token=<webhook_token>`: `id, status, phoneNumber,
networkCode, retryCount`, "Success", or for an undeliverable address "Failed" with
failureReason "DeliveryFailure"; a silent address gets none (simulators.receipts). The
intermediate Sent/Submitted/Buffered reports are not sent. Not simulated: premium SMS,
enqueue, balances running out, RiskHold.
"""

from __future__ import annotations

import hmac
import re
import secrets
from decimal import Decimal
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.africastalking import AfricasTalkingAccount
from simulators.common import Call, ProviderSpec, SimContext, provider_endpoint
from simulators.payments import SentCallback

MOUNT = "/africastalking"
INVALID_AUTH = "The supplied authentication is invalid"
PHONE = re.compile(r"^\+\d{1,3}\d{3,}$")  # the SDK's validate_phone
COST = Decimal("0.8000")
CURRENCY = "KES"
BALANCE = "KES 1000.0000"
SAFARICOM, ATHENA = "63902", "99999"  # AT's network codes: Safaricom, and its sandbox's
FAILURE_REASON = "DeliveryFailure"


def text(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=status)


def error_for_status(status: int) -> Response:
    if status == 401:
        return text(401, INVALID_AUTH)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return text(status, phrase)


def find_account(ctx: SimContext, key: str) -> tuple[Tenant, AfricasTalkingAccount] | None:
    for tenant, account in ctx.accounts("africastalking", AfricasTalkingAccount):
        if hmac.compare_digest(account.api_key.get_secret_value().encode(), key.encode()):
            return tenant, account
    return None


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    key = headers.get("apikey", "").strip()
    found = find_account(ctx, key) if key else None
    return found[0] if found else None


SPEC = ProviderSpec(
    name="africastalking", authenticate=authenticate, error_for_status=error_for_status
)


def _caller(
    ctx: SimContext, call: Call, username: Any
) -> tuple[Tenant, AfricasTalkingAccount] | Response:
    key = call.request.headers.get("apikey", "").strip()
    found = find_account(ctx, key) if key else None
    if found is None or username != found[1].username:
        return text(401, INVALID_AUTH)
    return found


def _money(amount: Decimal) -> str:
    return f"{CURRENCY} {amount:.4f}"


def _recipient(number: str, message_id: str | None) -> dict[str, Any]:
    if message_id is None:
        return {
            "statusCode": 403,
            "number": number,
            "status": "InvalidPhoneNumber",
            "cost": "0",
            "messageId": "None",
        }
    return {
        "statusCode": 101,
        "number": number,
        "status": "Success",
        "cost": _money(COST),
        "messageId": message_id,
    }


def _send(ctx: SimContext, call: Call) -> Response:
    fields: dict[str, Any] = call.body if isinstance(call.body, dict) else {}
    caller = _caller(ctx, call, fields.get("username"))
    if isinstance(caller, Response):
        return caller
    tenant, account = caller
    for name in ("to", "message"):
        if not str(fields.get(name) or "").strip():
            return text(400, f"Request is missing required form field '{name}'")
    sender = fields.get("from")
    if sender and sender != account.sender_id:
        envelope = {"Message": "InvalidSenderId", "Recipients": []}
        return JSONResponse({"SMSMessageData": envelope}, status_code=201)
    numbers = [n.strip() for n in str(fields["to"]).split(",") if n.strip()]
    recipients = []
    for number in numbers:
        message_id = "ATXid_" + secrets.token_hex(16) if PHONE.match(number) else None
        recipients.append(_recipient(number, message_id))
        if message_id is not None:
            _schedule_report(ctx, tenant, account, message_id, number)
    sent = sum(1 for r in recipients if r["statusCode"] == 101)
    total = _money(COST * sent)
    envelope = {"Message": f"Sent to {sent}/{len(numbers)} Total Cost: {total}"}
    return JSONResponse({"SMSMessageData": {**envelope, "Recipients": recipients}}, status_code=201)


def callback_url(ctx: SimContext, tenant: Tenant, account: AfricasTalkingAccount) -> str:
    """The delivery-report URL set in the dashboard: the hub's ingress, with its token."""
    url = ctx.receipts.default_url("africastalking", tenant.id)
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}token={quote(account.webhook_token.get_secret_value(), safe='')}"


def delivery_report(message_id: str, number: str, delivered: bool) -> dict[str, str]:
    report = {
        "id": message_id,
        "status": "Success" if delivered else "Failed",
        "phoneNumber": number,
        "networkCode": SAFARICOM if number.startswith("+2547") else ATHENA,
        "retryCount": "0",
    }
    if not delivered:
        report["failureReason"] = FAILURE_REASON
    return report


def _schedule_report(
    ctx: SimContext, tenant: Tenant, account: AfricasTalkingAccount, message_id: str, number: str
) -> None:
    arrival = ctx.receipts.outcome("africastalking", number)
    if arrival == "silent":
        return
    report = delivery_report(message_id, number, arrival == "delivered")
    url = callback_url(ctx, tenant, account)

    async def make() -> None:
        await ctx.receipts.post(
            SentCallback(
                provider="africastalking",
                tenant=tenant.id,
                order_id=message_id,
                payment_id="",
                event=report["status"],
                url=url,
                body=urlencode(report).encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
        )

    ctx.receipts.later(make)


def _user(ctx: SimContext, call: Call) -> Response:
    caller = _caller(ctx, call, call.request.query_params.get("username"))
    if isinstance(caller, Response):
        return caller
    return JSONResponse({"UserData": {"balance": BALANCE}})


def _not_found(call: Call) -> Response:
    return text(404, "Not Found")


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route(
            "/version1/messaging",
            provider_endpoint(ctx, SPEC, partial(_send, ctx)),
            methods=["POST"],
        ),
        Route(
            "/version1/user",
            provider_endpoint(ctx, SPEC, partial(_user, ctx)),
            methods=["GET"],
        ),
        # Last: every other path is a 404.
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
