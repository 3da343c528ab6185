"""Razorpay Orders, Payments and Refunds APIs (HTTP Basic `key_id:key_secret`), a checkout page.

- `POST /v1/orders` creates an order (`unique_receipt` returns the existing one).
- `GET  /v1/orders` lists the key's orders, newest first, as a collection
  (`count` 1-100, default 10; `skip`; `from`/`to` Unix times; `receipt`; not `authorized`).
- `GET  /v1/orders/{id}`, `GET /v1/payments/{id}` fetch one.
- `GET  /v1/orders/{id}/payments`, `POST /v1/payments/{id}/refund`, and the gateway
  the shared payments control plane pays through: simulators/razorpay_gateway.py.
"""

from __future__ import annotations

import hmac
import time
from html import escape
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.razorpay import RazorpayAccount
from simulators.common import (
    Call,
    ProviderSpec,
    SimContext,
    app_root,
    basic_credentials,
    provider_endpoint,
)
from simulators.razorpay_common import AUTH_FAILED, error, error_for_status, invalid, key_id_of
from simulators.razorpay_gateway import fetch_order_payments, gateway, refund_payment
from simulators.state import Order, random_id

__all__ = ["MOUNT", "error", "error_for_status", "gateway", "routes", "rupees"]

ORDER_FIELDS = frozenset(
    {"amount", "currency", "receipt", "notes", "unique_receipt", "partial_payment"}
)
MIN_AMOUNT = 100
MAX_RECEIPT = 40
MAX_NOTES = 15
MAX_NOTE_VALUE = 256
DEFAULT_COUNT, MAX_COUNT = 10, 100


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    creds = basic_credentials(headers)
    if creds is None:
        return None
    found = ctx.tenants.find_account("razorpay", key_id=creds[0])
    if found is None:
        return None
    tenant, account = found
    assert isinstance(account.config, RazorpayAccount)
    secret = account.config.key_secret.get_secret_value()
    return tenant if hmac.compare_digest(secret.encode(), creds[1].encode()) else None


SPEC = ProviderSpec(name="razorpay", authenticate=authenticate, error_for_status=error_for_status)

Problem = tuple[str, str] | None  # (description, field)


def _amount_problem(body: dict[str, Any]) -> Problem:
    amount, currency = body.get("amount"), body.get("currency")
    if amount is None:
        return "The amount field is required.", "amount"
    if not isinstance(amount, int) or isinstance(amount, bool):
        return "The amount must be an integer.", "amount"
    if amount < MIN_AMOUNT:
        shown = currency if isinstance(currency, str) and currency else "INR"
        return f"The amount must be at least {shown} 1.00", "amount"
    return None


def _currency_problem(body: dict[str, Any]) -> Problem:
    currency = body.get("currency")
    if currency is None:
        return "The currency field is required.", "currency"
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        return "Currency is not supported", "currency"
    return None


def _receipt_problem(body: dict[str, Any]) -> Problem:
    receipt = body.get("receipt")
    if receipt is not None and not isinstance(receipt, str):
        return "The receipt must be a string.", "receipt"
    if isinstance(receipt, str) and len(receipt) > MAX_RECEIPT:
        return "receipt: the length must be no more than 40.", "receipt"
    return None


def _notes_problem(body: dict[str, Any]) -> Problem:
    notes = body.get("notes", {})
    if notes == []:
        return None
    if not isinstance(notes, dict):
        return "The notes must be an array.", "notes"
    if len(notes) > MAX_NOTES:
        return "Number of fields in notes should be less than or equal to 15", "notes"
    bad = next(
        (k for k, v in notes.items() if not isinstance(v, str) or len(v) > MAX_NOTE_VALUE), None
    )
    if bad is not None:
        return f"notes.{bad} must be a string of at most 256 characters", "notes"
    return None


def _flags_problem(body: dict[str, Any]) -> Problem:
    for flag in ("unique_receipt", "partial_payment"):
        if flag in body and not isinstance(body[flag], bool):
            return f"The {flag} field must be true or false.", flag
    return None


def _validate_order(body: Any) -> JSONResponse | None:
    """Razorpay's 400 for an invalid create-order body, or None when it is valid."""
    if not isinstance(body, dict):
        return invalid("The request body must be a valid JSON object.", "body")
    extra = sorted(set(body) - ORDER_FIELDS)
    if extra:
        names = ", ".join(extra)
        return invalid(
            f"{names} is/are not required and should not be sent", names, reason="extra_field_sent"
        )
    for check in (
        _amount_problem,
        _currency_problem,
        _receipt_problem,
        _notes_problem,
        _flags_problem,
    ):
        problem = check(body)
        if problem is not None:
            return invalid(*problem)
    return None


def _create_order(ctx: SimContext, call: Call) -> Response:
    tenant = call.tenant
    key_id = key_id_of(call)
    if tenant is None or key_id is None:
        return error(401, AUTH_FAILED)
    problem = _validate_order(call.body)
    if problem is not None:
        return problem
    body: dict[str, Any] = call.body
    receipt: str | None = body.get("receipt")
    if body.get("unique_receipt") and receipt is not None:
        existing = ctx.state.order_by_receipt(key_id, receipt)
        if existing is not None:
            return JSONResponse(existing.entity())
    order = Order(
        id=random_id("order_"),
        key_id=key_id,
        tenant=tenant.id,
        amount=body["amount"],
        currency=body["currency"],
        receipt=receipt,
        notes=dict(body.get("notes") or {}),
        created_at=int(time.time()),
        partial_payment=bool(body.get("partial_payment", False)),
    )
    ctx.state.orders[order.id] = order
    return JSONResponse(order.entity())


def _whole(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter; ValueError(field, message) in Razorpay's manner."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ValueError(name, f"The {name} must be an integer.")
    if not low <= int(raw) <= high:
        raise ValueError(name, f"The {name} must be between {low} and {high}.")
    return int(raw)


def _list_orders(ctx: SimContext, call: Call) -> Response:
    key_id = key_id_of(call)
    if key_id is None:
        return error(401, AUTH_FAILED)
    params = call.request.query_params
    try:
        count = _whole(params, "count", DEFAULT_COUNT, 1, MAX_COUNT)
        skip = _whole(params, "skip", 0, 0, 10**9)
        since = _whole(params, "from", 0, 0, 10**12)
        until = _whole(params, "to", 10**12, 0, 10**12)
    except ValueError as exc:
        field, message = exc.args
        return invalid(message, field)
    receipt = params.get("receipt")
    found = [
        o
        for o in reversed(list(ctx.state.orders.values()))  # created last, listed first
        if o.key_id == key_id
        and since <= o.created_at <= until
        and (receipt is None or o.receipt == receipt)
    ]
    items = [o.entity() for o in found[skip : skip + count]]
    return JSONResponse({"entity": "collection", "count": len(items), "items": items})


def _fetch_order(ctx: SimContext, call: Call) -> Response:
    key_id = key_id_of(call)
    if key_id is None:
        return error(401, AUTH_FAILED)
    order = ctx.state.orders.get(call.request.path_params["order_id"])
    if order is None or order.key_id != key_id:
        return error(400, "The id provided does not exist")
    return JSONResponse(order.entity())


def _fetch_payment(ctx: SimContext, call: Call) -> Response:
    key_id = key_id_of(call)
    if key_id is None:
        return error(401, AUTH_FAILED)
    payment = ctx.state.payments.get(call.request.path_params["payment_id"])
    if payment is None or payment.key_id != key_id:
        return error(400, "The id provided does not exist")
    return JSONResponse(payment.entity)


def _not_found(call: Call) -> Response:
    return error(400, "The requested URL was not found on the server.")


def rupees(paise: int, currency: str) -> str:
    symbol = "₹" if currency == "INR" else f"{currency} "
    return f"{symbol}{paise // 100:,}.{paise % 100:02d}"


async def _checkout_page(request: Request, ctx: SimContext) -> Response:
    order = ctx.state.orders.get(request.path_params["order_id"])
    if order is None:
        return HTMLResponse("<h1>Order not found</h1>", status_code=404)
    action = escape(f"{app_root(request)}/_sim/razorpay/orders/{order.id}/checkout")
    amount = escape(rupees(order.amount - order.amount_paid, order.currency))
    disabled = " disabled" if order.status == "paid" else ""
    html = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Razorpay Checkout (simulator)</title></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 3rem auto">
<h1>Razorpay Checkout <small>(simulator)</small></h1>
<p>Order <code>{escape(order.id)}</code> &middot; receipt {escape(order.receipt or "-")}</p>
<p style="font-size: 2rem">{amount}</p>
<p>Status: <b>{escape(order.status)}</b></p>
<form method="post" action="{action}">
<button name="outcome" value="captured"{disabled}>Pay {amount}</button>
<button name="outcome" value="failed"{disabled}>Fail payment</button>
</form></body></html>"""
    return HTMLResponse(html)


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/razorpay"


def routes(ctx: SimContext) -> list[BaseRoute]:
    async def checkout(request: Request) -> Response:
        return await _checkout_page(request, ctx)

    return [
        Route(
            "/v1/orders",
            provider_endpoint(ctx, SPEC, lambda c: _create_order(ctx, c)),
            methods=["POST"],
        ),
        Route(
            "/v1/orders",
            provider_endpoint(ctx, SPEC, lambda c: _list_orders(ctx, c)),
            methods=["GET"],
        ),
        Route(
            "/v1/orders/{order_id}",
            provider_endpoint(ctx, SPEC, lambda c: _fetch_order(ctx, c)),
            methods=["GET"],
        ),
        Route(
            "/v1/orders/{order_id}/payments",
            provider_endpoint(ctx, SPEC, lambda c: fetch_order_payments(ctx, c)),
            methods=["GET"],
        ),
        Route(
            "/v1/payments/{payment_id}",
            provider_endpoint(ctx, SPEC, lambda c: _fetch_payment(ctx, c)),
            methods=["GET"],
        ),
        Route(
            "/v1/payments/{payment_id}/refund",
            provider_endpoint(ctx, SPEC, lambda c: refund_payment(ctx, c)),
            methods=["POST"],
        ),
        Route("/checkout/{order_id}", checkout, methods=["GET"]),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
