"""MSG91 with the `authkey` header: the Flow API v5, the route balance, delivery reports.

- `POST /api/v5/flow/` (with or without the trailing slash) `{"template_id", "short_url",
  "recipients": [{"mobiles": "91...", "VAR1": ...}], "sender"?}` -> `{"type": "success",
  "message": "<request id>"}` (24 hex digits, like MSG91's). Any non-empty template id is
  accepted: templates and their DLT mapping live in MSG91's panel, not here.
- `GET /api/balance.php?type=4` -> the route's balance as text (the hub's test connection).

Errors are `{"type": "error", "message", "code"?}`. Which HTTP status MSG91 gives them is
unconfirmed; here a missing or wrong authkey is HTTP 401 (codes 106 "Missing
Authentication Key" and 207 "Invalid authentication key", from MSG91's code list), and
a body MSG91 cannot use is HTTP 200 with type "error" (101 missing mobile number, 202
invalid mobile number; a missing template id has no documented code), the "HTTP 200 but
failed" the adapter must read.

Each accepted number gets its v3 delivery report (JSON, flat), posted to the tenant's
dashboard webhook URL with `?token=<webhook_token>`: status "1" DELIVERED, or for an
undeliverable address "2" FAILED; a silent address gets none (simulators.receipts).
Not simulated: scheduling, short URLs, template variable checks, balances running out.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from datetime import datetime
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.msg91 import Msg91Account
from providers.msg91_receipts import DATE_FORMAT, INDIA
from simulators.common import Call, ProviderSpec, SimContext, provider_endpoint
from simulators.payments import SentCallback

MOUNT = "/msg91"
MISSING_KEY = ("Missing Authentication Key", "106")
INVALID_KEY = ("Invalid authentication key", "207")
MOBILE = re.compile(r"^\d{10,15}$")
BALANCE = "1000"
DELIVERED = ("1", "DELIVERED")
FAILED = ("2", "FAILED")


def error(status: int, message: str, code: str | None = None) -> JSONResponse:
    body = {"type": "error", "message": message}
    if code is not None:
        body["code"] = code
    return JSONResponse(body, status_code=status)


def error_for_status(status: int) -> Response:
    if status == 401:
        return error(401, *INVALID_KEY)
    if status == 429:
        return error(429, "Too many requests")
    if status >= 500:
        return error(status, "Internal server error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return error(status, phrase)


def find_account(ctx: SimContext, key: str) -> tuple[Tenant, Msg91Account] | None:
    for tenant, account in ctx.accounts("msg91", Msg91Account):
        if hmac.compare_digest(account.authkey.get_secret_value().encode(), key.encode()):
            return tenant, account
    return None


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    key = headers.get("authkey", "").strip()
    found = find_account(ctx, key) if key else None
    return found[0] if found else None


SPEC = ProviderSpec(name="msg91", authenticate=authenticate, error_for_status=error_for_status)


def _caller(ctx: SimContext, call: Call) -> tuple[Tenant, Msg91Account] | Response:
    key = call.request.headers.get("authkey", "").strip()
    if not key:
        return error(401, *MISSING_KEY)
    found = find_account(ctx, key)
    return found if found is not None else error(401, *INVALID_KEY)


def _numbers(recipients: Any) -> list[tuple[dict[str, Any], list[str]]] | Response:
    """Each recipient with its numbers (`mobiles` may list several, comma-separated)."""
    if not isinstance(recipients, list) or not recipients:
        return error(200, "Missing mobile no.", "101")
    found: list[tuple[dict[str, Any], list[str]]] = []
    for recipient in recipients:
        mobiles = recipient.get("mobiles") if isinstance(recipient, dict) else None
        if isinstance(mobiles, int) and not isinstance(mobiles, bool):
            mobiles = str(mobiles)
        if not isinstance(mobiles, str) or not mobiles.strip():
            return error(200, "Missing mobile no.", "101")
        numbers = [n.strip() for n in mobiles.split(",") if n.strip()]
        if not all(MOBILE.match(n) for n in numbers):
            return error(200, "Invalid mobile number", "202")
        assert isinstance(recipient, dict)
        found.append((recipient, numbers))
    return found


def _flow(ctx: SimContext, call: Call) -> Response:
    caller = _caller(ctx, call)
    if isinstance(caller, Response):
        return caller
    tenant, account = caller
    body = call.body
    if not isinstance(body, dict):
        return error(200, "Invalid JSON body")
    template_id = body.get("template_id") or body.get("flow_id")  # flow_id: the legacy name
    if not isinstance(template_id, str) or not template_id.strip():
        return error(200, "Template ID missing")
    numbers = _numbers(body.get("recipients"))
    if isinstance(numbers, Response):
        return numbers
    request_id = secrets.token_hex(12)
    sender = body.get("sender") if isinstance(body.get("sender"), str) else account.sender
    for _, listed in numbers:
        for number in listed:
            _schedule_report(ctx, tenant, account, request_id, number, sender=str(sender or ""))
    return JSONResponse({"type": "success", "message": request_id})


def _arrival(ctx: SimContext, number: str) -> str:
    """The test's rule for this number, whether it named it as +91... or as 91..."""
    arrival = ctx.receipts.outcome("msg91", f"+{number}")
    return arrival if arrival != "delivered" else ctx.receipts.outcome("msg91", number)


def report_url(ctx: SimContext, tenant: Tenant, account: Msg91Account) -> str:
    """The webhook URL set in MSG91's panel: the hub's ingress, with its secret token."""
    url = ctx.receipts.default_url("msg91", tenant.id)
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}token={quote(account.webhook_token.get_secret_value(), safe='')}"


def delivery_report(
    request_id: str, number: str, status: tuple[str, str], sender: str
) -> dict[str, Any]:
    """A v3 delivery report, flat JSON, as MSG91 posts it."""
    code, desc = status
    return {
        "requestId": request_id,
        "number": number,
        "status": code,
        "desc": desc,
        "date": datetime.now(INDIA).strftime(DATE_FORMAT),
        "senderId": sender,
        "credit": "1",
        "campaignName": "API",
    }


def _schedule_report(
    ctx: SimContext,
    tenant: Tenant,
    account: Msg91Account,
    request_id: str,
    number: str,
    *,
    sender: str,
) -> None:
    arrival = _arrival(ctx, number)
    if arrival == "silent":
        return
    status = DELIVERED if arrival == "delivered" else FAILED
    url = report_url(ctx, tenant, account)

    async def make() -> None:
        body = json.dumps(delivery_report(request_id, number, status, sender)).encode()
        await ctx.receipts.post(
            SentCallback(
                provider="msg91",
                tenant=tenant.id,
                order_id=request_id,
                payment_id="",
                event=status[1],
                url=url,
                body=body,
                headers={"content-type": "application/json"},
            )
        )

    ctx.receipts.later(make)


def _balance(ctx: SimContext, call: Call) -> Response:
    # The docs put the key in the query (?authkey=); the hub sends the header.
    key = call.request.headers.get("authkey") or call.request.query_params.get("authkey", "")
    if not key.strip():
        return error(401, *MISSING_KEY)
    if find_account(ctx, key.strip()) is None:
        return error(401, *INVALID_KEY)
    return PlainTextResponse(BALANCE)


def _not_found(call: Call) -> Response:
    return error(404, "Not Found")


def routes(ctx: SimContext) -> list[BaseRoute]:
    flow = provider_endpoint(ctx, SPEC, partial(_flow, ctx))
    return [
        Route("/api/v5/flow/", flow, methods=["POST"]),
        Route("/api/v5/flow", flow, methods=["POST"]),
        Route(
            "/api/balance.php",
            provider_endpoint(ctx, SPEC, partial(_balance, ctx)),
            methods=["GET"],
        ),
        # Last: every other path is MSG91's 404.
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
