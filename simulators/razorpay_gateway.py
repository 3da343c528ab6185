"""Razorpay as a payment gateway simulator: paying orders, their payments, refunds.

- `gateway(ctx)` is the shared control plane's view of Razorpay (simulators/payments.py):
  `pay` makes the payment on the order and posts Razorpay's signed `payment.*`
  webhook through `ctx.callbacks` (failed, cancelled and timed-out attempts are
  all `payment.failed`, with Razorpay's reason for each).
- `GET  /v1/orders/{id}/payments`  every payment of one of the key's orders, newest first.
- `POST /v1/payments/{id}/refund`  refunds a captured payment, in full or in part;
  `X-Refund-Idempotency` answers the same refund to a repeated request and a 400 to
  the same key with another body, as Razorpay documents.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.responses import JSONResponse, Response

from simulators.common import Call, SimContext
from simulators.payments import PayAttempt, PayError, SentCallback
from simulators.razorpay_common import AUTH_FAILED, error, invalid, key_id_of
from simulators.razorpay_webhooks import PayError as RazorpayPayError
from simulators.razorpay_webhooks import PayRequest, WebhookSender
from simulators.state import Payment, SimState, random_id

REFUND_FIELDS = frozenset({"amount", "speed", "notes", "receipt"})
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{10,}$")
MIN_REFUND = 100
METHODS = frozenset({"card", "netbanking", "wallet", "upi", "emi"})
UNKNOWN_ID = "The id provided does not exist"
DIFFERENT_REQUEST = "Different request with the same idempotency key has already been processed."
# How a payer's failed, cancelled or timed-out attempt reads in Razorpay's payment entity.
_NOT_PAID = {
    "failed": PayRequest(outcome="failed"),
    "cancelled": PayRequest(
        outcome="failed",
        error_description="Payment processing cancelled by user",
        error_reason="payment_cancelled",
    ),
    "timeout": PayRequest(
        outcome="failed",
        error_code="GATEWAY_ERROR",
        error_description="Payment was not completed on time.",
        error_reason="payment_timed_out",
    ),
}


@dataclass
class RazorpayGateway:
    """The control plane's Razorpay: orders and payments live in the shared SimState."""

    state: SimState
    sender: WebhookSender
    ctx: SimContext
    name: str = "razorpay"
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (key id, X-Refund-Idempotency) -> (the request body, the refund id it created)
    refund_keys: dict[tuple[str, str], tuple[Any, str]] = field(default_factory=dict)

    def order(self, order_id: str) -> dict[str, Any] | None:
        found = self.state.orders.get(order_id)
        if found is None:
            return None
        entity = found.entity()
        return {
            **entity,
            "order_id": found.id,
            "tenant": found.tenant,
            "amount_minor": found.amount,
            "payments": [p.id for p in self.state.payments.values() if p.order_id == found.id],
        }

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        request = self._request(order_id, attempt)
        try:
            hook = self.sender.make_payment(order_id, request)
        except RazorpayPayError as exc:
            raise PayError(exc.status, exc.message) from None
        result: dict[str, Any] = {
            "order_id": hook.order_id,
            "payment_id": hook.payment_id,
            "status": self.state.payments[hook.payment_id].entity["status"],
            "event": hook.event,
        }
        if attempt.send_callback:
            callback = SentCallback(
                provider=self.name,
                tenant=hook.tenant,
                order_id=hook.order_id,
                payment_id=hook.payment_id,
                event=hook.event,
                url=hook.url,
                body=hook.body,
                headers=hook.headers,
            )
            result["callback"] = await self.ctx.callbacks.send(callback)
        return result

    def _request(self, order_id: str, attempt: PayAttempt) -> PayRequest:
        order = self.state.orders.get(order_id)
        if order is None:
            raise PayError(404, f"order {order_id} does not exist")
        if attempt.currency is not None and attempt.currency != order.currency:
            raise PayError(400, f"order {order_id} is payable in {order.currency} only")
        method = attempt.method or "card"
        if method not in METHODS:
            raise PayError(400, f"method must be one of {', '.join(sorted(METHODS))}")
        base = _NOT_PAID.get(attempt.outcome, PayRequest(outcome="captured"))
        return replace(
            base,
            method=method,
            amount=attempt.amount_minor,
            webhook_url=attempt.callback_url or self.ctx.webhook_url(self.name, order.tenant),
        )

    def reset(self) -> None:
        self.refunds.clear()
        self.refund_keys.clear()


def gateway(ctx: SimContext) -> RazorpayGateway:
    return RazorpayGateway(state=ctx.state, sender=ctx.webhooks, ctx=ctx)


def _store(ctx: SimContext) -> RazorpayGateway:
    found = ctx.gateways["razorpay"]
    assert isinstance(found, RazorpayGateway)
    return found


def fetch_order_payments(ctx: SimContext, call: Call) -> Response:
    key_id = key_id_of(call)
    if key_id is None:
        return error(401, AUTH_FAILED)
    order = ctx.state.orders.get(call.request.path_params["order_id"])
    if order is None or order.key_id != key_id:
        return error(400, UNKNOWN_ID)
    found = [p.entity for p in ctx.state.payments.values() if p.order_id == order.id]
    items = list(reversed(found))  # created last, listed first
    return JSONResponse({"entity": "collection", "count": len(items), "items": items})


def _refund_problem(body: Any) -> JSONResponse | None:
    if not isinstance(body, dict):
        return invalid("The request body must be a valid JSON object.", "body")
    extra = sorted(set(body) - REFUND_FIELDS)
    if extra:
        names = ", ".join(extra)
        return invalid(
            f"{names} is/are not required and should not be sent", names, reason="extra_field_sent"
        )
    amount = body.get("amount")
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
        return invalid("The amount must be an integer.", "amount")
    if amount is not None and amount < MIN_REFUND:
        return invalid("The amount must be atleast INR 1.00", "amount")
    receipt = body.get("receipt")
    if receipt is not None and (not isinstance(receipt, str) or len(receipt) > 40):
        return invalid("receipt: the length must be no more than 40.", "receipt")
    return None


def _refundable(payment: Payment, amount: int | None) -> JSONResponse | int:
    """The amount to refund now, or Razorpay's 400 for this payment."""
    entity = payment.entity
    if entity["status"] == "refunded":
        return error(400, "The payment has been fully refunded already")
    if entity["status"] != "captured":
        return error(400, "Only captured payments can be refunded")
    left = int(entity["amount"]) - int(entity["amount_refunded"])
    wanted = left if amount is None else amount
    if wanted > left:
        return error(400, "The refund amount provided is greater than amount captured")
    return wanted


def _refund_entity(payment: Payment, amount: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": random_id("rfnd_"),
        "entity": "refund",
        "amount": amount,
        "currency": payment.entity["currency"],
        "payment_id": payment.id,
        "notes": body.get("notes") or [],
        "receipt": body.get("receipt"),
        "acquirer_data": {"arn": None},
        "created_at": int(time.time()),
        "batch_id": None,
        "status": "processed",
        "speed_processed": "normal",
        "speed_requested": str(body.get("speed") or "normal"),
    }


def _record_refund(payment: Payment, amount: int) -> None:
    entity = payment.entity
    entity["amount_refunded"] = int(entity["amount_refunded"]) + amount
    full = entity["amount_refunded"] >= entity["amount"]
    entity["refund_status"] = "full" if full else "partial"
    if full:
        entity["status"] = "refunded"


def _replayed(store: RazorpayGateway, key_id: str, key: str | None, body: Any) -> Response | None:
    """The answer a repeated X-Refund-Idempotency key gets, or None for a new key."""
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        return error(400, "The idempotency key must be at least 10 characters of A-Z, 0-9, -, _")
    seen = store.refund_keys.get((key_id, key))
    if seen is None:
        return None
    if seen[0] != body:
        return error(400, DIFFERENT_REQUEST)
    return JSONResponse(store.refunds[seen[1]])


def refund_payment(ctx: SimContext, call: Call) -> Response:
    key_id = key_id_of(call)
    if key_id is None:
        return error(401, AUTH_FAILED)
    payment = ctx.state.payments.get(call.request.path_params["payment_id"])
    if payment is None or payment.key_id != key_id:
        return error(400, UNKNOWN_ID)
    body: Any = {} if call.body is None else call.body
    store, key = _store(ctx), call.request.headers.get("x-refund-idempotency")
    answer = _refund_problem(body) or _replayed(store, key_id, key, body)
    if answer is not None:
        return answer
    amount = _refundable(payment, body.get("amount"))
    if isinstance(amount, JSONResponse):
        return amount
    refund = _refund_entity(payment, amount, body)
    _record_refund(payment, amount)
    store.refunds[refund["id"]] = refund
    if key is not None:
        store.refund_keys[(key_id, key)] = (body, refund["id"])
    return JSONResponse(refund)
