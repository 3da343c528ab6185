"""Cashfree's payments-of-an-order and refund endpoints (x-api-version 2023-08-01).

- `GET  /orders/{order_id}/payments`: a JSON array of the order's payment attempts.
- `POST /orders/{order_id}/refunds` `{refund_amount, refund_id, refund_note?, refund_speed?}`:
  a PAID order can be refunded up to what was paid, in parts. The same
  `x-idempotency-key` with the same body answers the refund it created; with
  another body, 422 `idempotency_error`; a `refund_id` already used on the order
  without that key, 409 `refund_already_exists`.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.responses import JSONResponse, Response

from simulators.cashfree_common import error, gate
from simulators.cashfree_gateway import CashfreeGateway, Key, minor
from simulators.common import Call

REFUND_ID = re.compile(r"^[A-Za-z0-9_-]{3,40}$")
REFUND_FIELDS = frozenset({"refund_amount", "refund_id", "refund_note", "refund_speed"})


def list_payments(store: CashfreeGateway, call: Call) -> Response:
    client_id = gate(call)
    if isinstance(client_id, Response):
        return client_id
    key = (client_id, call.request.path_params["order_id"])
    if key not in store.orders:
        return error(404, "order not found", "order_not_found")
    return JSONResponse(store.payments.get(key, []))


def _amount_problem(value: Any) -> Response | None:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return error(400, "refund_amount : is missing in the request", "refund_amount_missing")
    if isinstance(value, bool) or not amount.is_finite() or amount <= 0:
        return error(400, "refund_amount : must be greater than 0", "refund_amount_invalid")
    if amount != amount.quantize(Decimal("0.01")):
        return error(400, "refund_amount : at most 2 decimals", "refund_amount_invalid")
    return None


def _problem(body: Any) -> Response | None:
    if not isinstance(body, dict):
        return error(400, "request body is not valid json", "request_invalid")
    extra = sorted(set(body) - REFUND_FIELDS)
    if extra:
        return error(400, f"{extra[0]} : is not a valid field", "request_invalid")
    refund_id = body.get("refund_id")
    if not isinstance(refund_id, str) or not REFUND_ID.match(refund_id):
        return error(400, "refund_id : invalid value provided", "refund_id_invalid")
    return _amount_problem(body.get("refund_amount"))


def _refundable(store: CashfreeGateway, key: Key, amount_minor: int) -> Response | None:
    order = store.orders[key]
    if order["order_status"] != "PAID":
        return error(400, "refund can be initiated only for a paid order", "order_not_paid")
    refunded = sum(minor(r["refund_amount"]) for r in store.refunds.get(key, []))
    if refunded + amount_minor > minor(order["order_amount"]):
        message = "refund amount is greater than the refundable amount"
        return error(400, message, "refund_amount_invalid")
    return None


def _entity(store: CashfreeGateway, key: Key, body: dict[str, Any]) -> dict[str, Any]:
    paid = next(p for p in store.payments[key] if p["payment_status"] == "SUCCESS")
    speed = str(body.get("refund_speed") or "STANDARD")
    return {
        "cf_payment_id": paid["cf_payment_id"],
        "cf_refund_id": str(secrets.randbelow(9 * 10**9) + 10**9),
        "refund_id": body["refund_id"],
        "order_id": key[1],
        "entity": "refund",
        "refund_amount": body["refund_amount"],
        "refund_currency": store.orders[key]["order_currency"],
        "refund_note": body.get("refund_note"),
        "refund_status": "PENDING",  # Cashfree settles refunds later (refund webhooks)
        "refund_arn": None,
        "refund_charge": 0,
        "status_description": "In Progress",
        "metadata": None,
        "refund_splits": [],
        "refund_type": "MERCHANT_INITIATED",
        "refund_mode": speed,
        "created_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "processed_at": None,
        "refund_speed": {"requested": speed, "accepted": speed, "processed": None},
    }


def _replayed(store: CashfreeGateway, client_id: str, call: Call) -> Response | None:
    """The answer to a repeated x-idempotency-key, or None for a new (or no) key."""
    idempotency_key = call.request.headers.get("x-idempotency-key")
    seen = store.refund_keys.get((client_id, idempotency_key)) if idempotency_key else None
    if seen is None:
        return None
    if seen[0] != call.body:
        message = "idempotency key used with a different request"
        return error(422, message, "request_invalid", "idempotency_error")
    return JSONResponse(seen[1])


def create_refund(store: CashfreeGateway, call: Call) -> Response:
    client_id = gate(call)
    if isinstance(client_id, Response):
        return client_id
    key = (client_id, call.request.path_params["order_id"])
    if key not in store.orders:
        return error(404, "order not found", "order_not_found")
    answer = _problem(call.body) or _replayed(store, client_id, call)
    if answer is not None:
        return answer
    body: dict[str, Any] = call.body
    if any(r["refund_id"] == body["refund_id"] for r in store.refunds.get(key, [])):
        return error(409, "refund with same refund_id exists", "refund_already_exists")
    refused = _refundable(store, key, minor(body["refund_amount"]))
    if refused is not None:
        return refused
    refund = _entity(store, key, body)
    store.refunds.setdefault(key, []).append(refund)
    idempotency_key = call.request.headers.get("x-idempotency-key")
    if idempotency_key:
        store.refund_keys[(client_id, idempotency_key)] = (body, refund)
    return JSONResponse(refund)
