"""Cashfree PG Orders API (x-api-version 2023-08-01), auth by x-client-id / x-client-secret.

- `POST /orders` creates an order. The same `x-idempotency-key` with the same body
  answers the order it created; with a different body, 422 `idempotency_error`. An
  order id already taken, without a key that created it: 409 `order_already_exists`.
- `GET  /orders/{order_id}` fetches one of the app's orders (404 when unknown).
- `GET  /orders/{order_id}/payments` every attempt at paying it (a JSON array).
- `POST /orders/{order_id}/refunds` refunds a PAID order, in full or in part; the
  `refund_id` is the caller's. The same `x-idempotency-key` answers the same refund;
  with another body, 422. Refunding more than was paid: 400 `refund_amount_invalid`.
- `GET  /checkout/{order_id}` a stand-in for Cashfree's hosted checkout (which the
  real JS SDK opens with the order's payment_session_id).

Errors are Cashfree's `{"message", "code", "type"}`. Payments and their signed
webhooks: simulators/cashfree_gateway.py.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.cashfree import CashfreeAccount
from simulators.cashfree_common import error, error_for_status, gate
from simulators.cashfree_gateway import CashfreeGateway, gateway, store_of
from simulators.cashfree_refunds import create_refund, list_payments
from simulators.common import Call, Endpoint, ProviderSpec, SimContext, provider_endpoint
from simulators.payments import checkout_page
from simulators.state import random_id

__all__ = ["MOUNT", "SPEC", "error", "error_for_status", "gateway", "routes"]

ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{3,45}$")


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    client_id, secret = headers.get("x-client-id", ""), headers.get("x-client-secret", "")
    if not client_id or not secret:
        return None
    for tenant, account in ctx.accounts("cashfree", CashfreeAccount):
        if account.client_id == client_id:
            expected = account.client_secret.get_secret_value().encode()
            return tenant if hmac.compare_digest(expected, secret.encode()) else None
    return None


SPEC = ProviderSpec(name="cashfree", authenticate=authenticate, error_for_status=error_for_status)


def _amount_problem(value: Any) -> Response | None:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return error(400, "order_amount : is missing in the request", "order_amount_missing")
    if isinstance(value, bool) or not amount.is_finite() or amount < 1:
        return error(400, "order_amount : must be at least 1", "order_amount_invalid")
    if amount != amount.quantize(Decimal("0.01")):
        return error(400, "order_amount : at most 2 decimals", "order_amount_invalid")
    return None


def _customer_problem(customer: Any) -> Response | None:
    if not isinstance(customer, dict):
        return error(
            400, "customer_details : is missing in the request", "customer_details_missing"
        )
    for name in ("customer_id", "customer_phone"):
        if not isinstance(customer.get(name), str) or not customer[name]:
            return error(400, f"customer_details.{name} : is missing", f"{name}_missing")
    return None


def _problem(body: Any) -> Response | None:
    """Cashfree's 400 for an invalid create-order body, or None when it is valid."""
    if not isinstance(body, dict):
        return error(400, "request body is not valid json", "request_invalid")
    order_id = body.get("order_id")
    if order_id is not None and (not isinstance(order_id, str) or not ORDER_ID.match(order_id)):
        return error(400, "order_id : invalid value provided", "order_id_invalid")
    if body.get("order_currency") != "INR":
        return error(400, "order_currency : invalid value provided", "order_currency_invalid")
    return _amount_problem(body.get("order_amount")) or _customer_problem(
        body.get("customer_details")
    )


def _entity(body: dict[str, Any], order_id: str, tenant: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "cf_order_id": str(secrets.randbelow(9 * 10**9) + 10**9),  # numeric, as Cashfree's
        "order_id": order_id,
        "entity": "order",
        "order_currency": body["order_currency"],
        "order_amount": body["order_amount"],
        "order_status": "ACTIVE",
        "payment_session_id": random_id("session_", 40),
        "order_expiry_time": (now + timedelta(days=30)).isoformat(),
        "order_note": body.get("order_note"),
        "created_at": now.isoformat(),
        "customer_details": body["customer_details"],
        "order_meta": body.get("order_meta") or {},
        "order_tags": body.get("order_tags"),
        "_tenant": tenant,
    }


def _public(order: dict[str, Any]) -> JSONResponse:
    return JSONResponse({k: v for k, v in order.items() if not k.startswith("_")})


def _create_order(orders: CashfreeGateway, call: Call) -> Response:
    client_id, tenant = gate(call), call.tenant
    if isinstance(client_id, Response):
        return client_id
    assert tenant is not None
    problem = _problem(call.body)
    if problem is not None:
        return problem
    body: dict[str, Any] = call.body
    key = call.request.headers.get("x-idempotency-key")
    if key:
        seen = orders.order_keys.get((client_id, key))
        if seen is not None:
            if seen[0] != body:
                message = "idempotency key used with a different request"
                return error(422, message, "request_invalid", "idempotency_error")
            return _public(orders.orders[(client_id, seen[1])])
    order_id = body.get("order_id") or random_id("order_", 20)
    if (client_id, order_id) in orders.orders:
        return error(409, "order with same order_id exists", "order_already_exists")
    order = _entity(body, order_id, tenant.id)
    orders.orders[(client_id, order_id)] = order
    if key:
        orders.order_keys[(client_id, key)] = (body, order_id)
    return _public(order)


def _fetch_order(orders: CashfreeGateway, call: Call) -> Response:
    client_id = gate(call)
    if isinstance(client_id, Response):
        return client_id
    order = orders.orders.get((client_id, call.request.path_params["order_id"]))
    if order is None:
        return error(404, "order not found", "order_not_found")
    return _public(order)


def _not_found(call: Call) -> Response:
    return error(404, "requested URL was not found", "request_failed")


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/cashfree"


def _checkout(ctx: SimContext, request: Request) -> Response:
    found = store_of(ctx).order(request.path_params["order_id"])
    if found is None:
        return HTMLResponse("<h1>Order not found</h1>", status_code=404)
    return checkout_page("cashfree", "Cashfree Payments", found)


def routes(ctx: SimContext) -> list[BaseRoute]:
    def endpoint(handler: Callable[[CashfreeGateway, Call], Response]) -> Endpoint:
        return provider_endpoint(ctx, SPEC, lambda c: handler(store_of(ctx), c))

    async def checkout(request: Request) -> Response:
        return _checkout(ctx, request)

    return [
        Route("/orders", endpoint(_create_order), methods=["POST"]),
        Route("/orders/{order_id}", endpoint(_fetch_order), methods=["GET"]),
        Route("/orders/{order_id}/payments", endpoint(list_payments), methods=["GET"]),
        Route("/orders/{order_id}/refunds", endpoint(create_refund), methods=["POST"]),
        Route("/checkout/{order_id}", checkout, methods=["GET"]),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
