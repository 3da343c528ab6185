"""Pesapal API 3.0: a token first, then Bearer calls.

- `POST /api/Auth/RequestToken` `{consumer_key, consumer_secret}` -> a token for five
  minutes; wrong credentials get HTTP 200 with an `error` object, as Pesapal answers.
- `POST /api/URLSetup/RegisterIPN`, `GET /api/URLSetup/GetIpnList`. Each account's own
  `ipn_id` is registered from the start (the operator did that once), at the tenant's
  webhook URL with the account's ipn_token in the query string.
- `POST /api/Transactions/SubmitOrderRequest`: `notification_id` must be one of the
  merchant's IPNs. The same merchant reference with the same amount and currency is
  answered with the order it created (a retried create); with another, an error.
- `GET  /api/Transactions/GetTransactionStatus?orderTrackingId=`.
- `POST /api/Transactions/RefundRequest`: one refund per payment, at most its amount.
- `GET  /checkout/{order_tracking_id}`: the page `redirect_url` points at.

Errors are Pesapal's `{"error": {"error_type", "code", "message"}, "status": "<code>"}`,
mostly with HTTP 200; an invalid or expired token is HTTP 401. A payment sends the
IPN as a GET to the registered URL: `OrderTrackingId`, `OrderMerchantReference`,
`OrderNotificationType=IPNCHANGE` added to the query the URL already has.
The token endpoint takes no queued faults: faults aim at the API calls behind it.
"""

from __future__ import annotations

import hmac
import time
import uuid
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.currency_units import json_number, to_major, to_minor
from providers.pesapal import MERCHANT_REFERENCE, PesapalAccount
from simulators.common import (
    Call,
    ProviderSpec,
    SimContext,
    app_root,
    provider_endpoint,
)
from simulators.payments import checkout_page
from simulators.pesapal_gateway import gateway as gateway  # noqa: PLC0414 - the app finds it here
from simulators.pesapal_gateway import now_utc, public_view, registration, sim_of
from simulators.state import random_id

MOUNT = "/pesapal"
TOKEN_SECONDS = 300
NO_ERROR = {"error_type": None, "code": None, "message": None, "call_back_url": None}


def error(
    code: str, message: str, status: int = 400, http: int = 200, kind: str = "api_error"
) -> JSONResponse:
    body = {"error": {"error_type": kind, "code": code, "message": message}, "status": str(status)}
    return JSONResponse(body, status_code=http)


def error_for_status(status: int) -> Response:
    if status == 401:
        return error(
            "invalid_api_credentials_provided",
            "Invalid Access Token",
            401,
            401,
            "authentication_error",
        )
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "request failed"
    return error("internal_error" if status >= 500 else "request_failed", phrase, status, status)


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    found = sim_of(ctx).caller(headers)
    return ctx.tenants.get(found[1]) if found else None


def redact(body: Any) -> Any:
    """The token request as recorded: without its consumer secret."""
    if isinstance(body, dict) and "consumer_secret" in body:
        return {**body, "consumer_secret": "***"}
    return body


SPEC = ProviderSpec(
    name="pesapal", authenticate=authenticate, error_for_status=error_for_status, redact_body=redact
)


# --- the API ------------------------------------------------------------------------------


def _request_token(ctx: SimContext, call: Call) -> Response:
    body = call.body if isinstance(call.body, dict) else {}
    key, secret = str(body.get("consumer_key") or ""), str(body.get("consumer_secret") or "")
    for tenant, account in ctx.accounts("pesapal", PesapalAccount):
        expected = account.consumer_secret.get_secret_value().encode()
        if account.consumer_key == key and hmac.compare_digest(expected, secret.encode()):
            token = random_id("", 64)
            sim_of(ctx).tokens[token] = (key, tenant.id, time.time() + TOKEN_SECONDS)
            expiry = (
                (now_utc() + timedelta(seconds=TOKEN_SECONDS)).isoformat().replace("+00:00", "Z")
            )
            return JSONResponse(
                {
                    "token": token,
                    "expiryDate": expiry,
                    "error": None,
                    "status": "200",
                    "message": "Request processed successfully",
                }
            )
    return error(
        "invalid_consumer_key_or_secret_provided",
        "Invalid consumer_key or consumer_secret provided",
        500,
        kind="authentication_error",
    )


def _merchant(ctx: SimContext, call: Call) -> str | Response:
    found = sim_of(ctx).caller(call.request.headers)
    return error_for_status(401) if found is None else found[0]


def _register_ipn(ctx: SimContext, call: Call) -> Response:
    merchant = _merchant(ctx, call)
    if isinstance(merchant, Response):
        return merchant
    body = call.body if isinstance(call.body, dict) else {}
    url, kind = body.get("url"), str(body.get("ipn_notification_type") or "GET").upper()
    if (
        not isinstance(url, str)
        or not url.startswith(("http://", "https://"))
        or kind not in ("GET", "POST")
    ):
        return error(
            "invalid_ipn_url", "A valid url and ipn_notification_type GET or POST are required"
        )
    ipn_id = str(uuid.uuid4())
    sim_of(ctx).ipns[ipn_id] = registration(merchant, ipn_id, url, kind)
    return JSONResponse({**public_view(sim_of(ctx).ipns[ipn_id]), "error": None, "status": "200"})


def _ipn_list(ctx: SimContext, call: Call) -> Response:
    merchant = _merchant(ctx, call)
    if isinstance(merchant, Response):
        return merchant
    mine = [public_view(r) for r in sim_of(ctx).ipns.values() if r["_merchant"] == merchant]
    return JSONResponse(mine)


def _positive_amount(value: Any) -> bool:
    try:
        return not isinstance(value, bool) and Decimal(str(value)) > 0
    except InvalidOperation:
        return False


def _has_contact(address: Any) -> bool:
    return isinstance(address, dict) and bool(
        address.get("email_address") or address.get("phone_number")
    )


def _text(body: dict[str, Any], name: str, limit: int) -> bool:
    value = body.get(name)
    return isinstance(value, str) and 0 < len(value) <= limit


def _order_problem(merchant: str, body: Any, ipns: dict[str, dict[str, Any]]) -> Response | None:
    """Pesapal's error for the first thing wrong with a SubmitOrderRequest, or None."""
    if not isinstance(body, dict):
        return error("invalid_request", "Request body is not valid JSON")
    ipn = ipns.get(str(body.get("notification_id")))
    checks = [
        (
            isinstance(body.get("id"), str) and bool(MERCHANT_REFERENCE.match(body["id"])),
            "invalid_merchant_reference",
            "id must be 1-50 characters: letters, digits, -_.:",
        ),
        (
            _positive_amount(body.get("amount")) and _text(body, "currency", 3),
            "invalid_amount",
            "amount and currency are required",
        ),
        (
            _text(body, "description", 100),
            "invalid_description",
            "description is required, at most 100 characters",
        ),
        (_text(body, "callback_url", 2048), "invalid_callback_url", "callback_url is required"),
        (
            ipn is not None and ipn["_merchant"] == merchant,
            "invalid_notification_id",
            "notification_id is not a registered IPN of this merchant",
        ),
        (
            _has_contact(body.get("billing_address")),
            "invalid_billing_address",
            "billing_address needs an email_address or a phone_number",
        ),
    ]
    failed = next(((code, message) for ok, code, message in checks if not ok), None)
    return None if failed is None else error(*failed)


def _redirect(request: Request, tracking: str) -> str:
    root = f"{request.url.scheme}://{request.url.netloc}{app_root(request)}"
    return f"{root}{MOUNT}/checkout/{tracking}"


def _submitted(order: dict[str, Any]) -> JSONResponse:
    return JSONResponse(
        {
            "order_tracking_id": order["order_tracking_id"],
            "merchant_reference": order["merchant_reference"],
            "redirect_url": order["redirect_url"],
            "error": None,
            "status": "200",
        }
    )


def _submit_order(ctx: SimContext, call: Call) -> Response:
    merchant = _merchant(ctx, call)
    if isinstance(merchant, Response):
        return merchant
    sim = sim_of(ctx)
    problem = _order_problem(merchant, call.body, sim.ipns)
    if problem is not None:
        return problem
    body: dict[str, Any] = call.body
    try:
        amount_minor = to_minor(body["amount"], body["currency"])
    except ValueError:
        return error("invalid_amount", f"amount has more decimals than {body['currency']} allows")
    for order in sim.orders.values():
        if (order["_merchant"], order["merchant_reference"]) == (merchant, body["id"]):
            if (order["amount_minor"], order["currency"]) == (amount_minor, body["currency"]):
                return _submitted(order)
            return error(
                "duplicate_merchant_reference", "An order with this merchant reference exists"
            )
    tracking = str(uuid.uuid4())
    sim.orders[tracking] = _new_order(
        merchant, body, tracking, amount_minor, _redirect(call.request, tracking)
    )
    sim.orders[tracking]["_tenant"] = call.tenant.id if call.tenant else ""
    return _submitted(sim.orders[tracking])


def _new_order(
    merchant: str, body: dict[str, Any], tracking: str, amount_minor: int, link: str
) -> dict[str, Any]:
    return {
        "order_id": tracking,
        "order_tracking_id": tracking,
        "merchant_reference": body["id"],
        "amount_minor": amount_minor,
        "currency": body["currency"],
        "description": body["description"],
        "call_back_url": body["callback_url"],
        "redirect_url": link,
        "status": "pending",
        "status_code": 0,
        "payment_status_description": "INVALID",
        "confirmation_code": "",
        "payment_method": "",
        "payment_account": "",
        "created_date": now_utc().isoformat(),
        "refunded": False,
        "_merchant": merchant,
        "_notification_id": body["notification_id"],
    }


def _status_answer(order: dict[str, Any]) -> dict[str, Any]:
    paid = order["status_code"] in (1, 2)
    return {
        "payment_method": order["payment_method"],
        "amount": order.get("paid_amount")
        if paid
        else json_number(to_major(order["amount_minor"], order["currency"])),
        "created_date": order["created_date"],
        "confirmation_code": order["confirmation_code"],
        "payment_status_description": order["payment_status_description"],
        "description": order["description"] if paid else "",
        "message": "Request processed successfully",
        "payment_account": order["payment_account"],
        "call_back_url": order["call_back_url"],
        "status_code": order["status_code"],
        "merchant_reference": order["merchant_reference"],
        "payment_status_code": "",
        "currency": order.get("paid_currency") or order["currency"],
        "error": NO_ERROR,
        "status": "200",
    }


def _transaction_status(ctx: SimContext, call: Call) -> Response:
    merchant = _merchant(ctx, call)
    if isinstance(merchant, Response):
        return merchant
    order = sim_of(ctx).orders.get(call.request.query_params.get("orderTrackingId", ""))
    if order is None or order["_merchant"] != merchant:
        return error("payment_details_not_found", "Pesapal could not find the order", 500)
    return JSONResponse(_status_answer(order))


def _completed(ctx: SimContext, merchant: str, code: str) -> dict[str, Any] | None:
    for order in sim_of(ctx).orders.values():
        mine = order["_merchant"] == merchant and order["status_code"] == 1
        if mine and code and order["confirmation_code"] == code:
            return order
    return None


def _refund_problem(order: dict[str, Any] | None, body: dict[str, Any]) -> str | None:
    """Why Pesapal refuses this refund, or None."""
    if order is None:
        return "No completed payment with this confirmation_code"
    if order["refunded"]:
        return "A refund has already been requested for this payment"
    if not body.get("username") or not body.get("remarks"):
        return "username and remarks are required"
    try:
        wanted = to_minor(body.get("amount"), order["paid_currency"])
    except ValueError:
        return "amount must be a number"
    if not 0 < wanted <= to_minor(order["paid_amount"], order["paid_currency"]):
        return "Refund amount exceeds the amount paid"
    return None


def _refund_request(ctx: SimContext, call: Call) -> Response:
    merchant = _merchant(ctx, call)
    if isinstance(merchant, Response):
        return merchant
    body = call.body if isinstance(call.body, dict) else {}
    order = _completed(ctx, merchant, str(body.get("confirmation_code") or ""))
    problem = _refund_problem(order, body)
    if problem is not None or order is None:
        return error("refund_failed", problem or "refund refused", 500)
    order["refunded"] = True
    return JSONResponse({"status": "200", "message": "Refund request successfully"})


def _checkout(ctx: SimContext, call: Call) -> Response:
    order = sim_of(ctx).order(call.request.path_params["tracking"])
    if order is None:
        return error("order_not_found", "This payment page has expired", 404, 404)
    return checkout_page("pesapal", "Pesapal", order)


def _not_found(call: Call) -> Response:
    return error("resource_not_found", "Resource not found", 404, 404)


def routes(ctx: SimContext) -> list[BaseRoute]:
    def api(handler: Any, *, faultable: bool = True) -> Any:
        return provider_endpoint(ctx, SPEC, lambda c: handler(ctx, c), faultable=faultable)

    return [
        Route("/api/Auth/RequestToken", api(_request_token, faultable=False), methods=["POST"]),
        Route("/api/URLSetup/RegisterIPN", api(_register_ipn), methods=["POST"]),
        Route("/api/URLSetup/GetIpnList", api(_ipn_list), methods=["GET"]),
        Route("/api/Transactions/SubmitOrderRequest", api(_submit_order), methods=["POST"]),
        Route("/api/Transactions/GetTransactionStatus", api(_transaction_status), methods=["GET"]),
        Route("/api/Transactions/RefundRequest", api(_refund_request), methods=["POST"]),
        Route("/checkout/{tracking}", api(_checkout, faultable=False), methods=["GET"]),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
