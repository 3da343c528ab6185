"""Cashfree PG Orders API (x-api-version 2023-08-01), auth by x-client-id / x-client-secret.

- `POST /orders` creates an order. The same `x-idempotency-key` with the same body
  answers the order it created; with a different body, 422 `idempotency_error`. An
  order id already taken, without a key that created it: 409 `order_already_exists`.
- `GET  /orders/{order_id}` fetches one of the app's orders (404 when unknown).

Errors are Cashfree's `{"message", "code", "type"}`. No checkout page or webhooks yet.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.cashfree import CashfreeAccount
from simulators.common import Call, ProviderSpec, SimContext, provider_endpoint
from simulators.state import random_id

ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{3,45}$")
INVALID = "invalid_request_error"


def error(status: int, message: str, code: str, kind: str = INVALID) -> JSONResponse:
    return JSONResponse({"message": message, "code": code, "type": kind}, status_code=status)


def error_for_status(status: int) -> Response:
    if status >= 500:
        return error(status, "internal server error", "internal_error", "api_error")
    if status == 401:
        return error(401, "authentication Failed", "request_failed", "authentication_error")
    if status == 429:
        return error(429, "Too many requests", "request_failed", "rate_limit_error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "request failed"
    return error(status, phrase, "request_failed")


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


@dataclass
class Orders:
    """The orders this simulator holds, per client id (an app sees only its own)."""

    by_id: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (client id, idempotency key) -> (the request body, the order id it created)
    by_key: dict[tuple[str, str], tuple[Any, str]] = field(default_factory=dict)


def _gate(call: Call) -> Response | str:
    """The client id of an authenticated, versioned request, or Cashfree's error."""
    if call.tenant is None:
        return error_for_status(401)
    if not call.request.headers.get("x-api-version"):
        return error(400, "x-api-version missing in the header", "request_failed")
    return call.request.headers["x-client-id"]


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


def _create_order(orders: Orders, call: Call) -> Response:
    gate = _gate(call)
    if isinstance(gate, Response):
        return gate
    client_id, tenant = gate, call.tenant
    assert tenant is not None
    problem = _problem(call.body)
    if problem is not None:
        return problem
    body: dict[str, Any] = call.body
    key = call.request.headers.get("x-idempotency-key")
    if key:
        seen = orders.by_key.get((client_id, key))
        if seen is not None:
            if seen[0] != body:
                message = "idempotency key used with a different request"
                return error(422, message, "request_invalid", "idempotency_error")
            return _public(orders.by_id[(client_id, seen[1])])
    order_id = body.get("order_id") or random_id("order_", 20)
    if (client_id, order_id) in orders.by_id:
        return error(409, "order with same order_id exists", "order_already_exists")
    order = _entity(body, order_id, tenant.id)
    orders.by_id[(client_id, order_id)] = order
    if key:
        orders.by_key[(client_id, key)] = (body, order_id)
    return _public(order)


def _fetch_order(orders: Orders, call: Call) -> Response:
    gate = _gate(call)
    if isinstance(gate, Response):
        return gate
    order = orders.by_id.get((gate, call.request.path_params["order_id"]))
    if order is None:
        return error(404, "order not found", "order_not_found")
    return _public(order)


def _not_found(call: Call) -> Response:
    return error(404, "requested URL was not found", "request_failed")


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/cashfree"


def routes(ctx: SimContext) -> list[BaseRoute]:
    orders = Orders()  # one store per app: a fresh simulator starts empty
    return [
        Route(
            "/orders",
            provider_endpoint(ctx, SPEC, lambda c: _create_order(orders, c)),
            methods=["POST"],
        ),
        Route(
            "/orders/{order_id}",
            provider_endpoint(ctx, SPEC, lambda c: _fetch_order(orders, c)),
            methods=["GET"],
        ),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
