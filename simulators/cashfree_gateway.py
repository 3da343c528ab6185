"""Cashfree as a payment gateway simulator: its orders, payments, refunds and webhooks.

`gateway(ctx)` holds the store the API routes (simulators/cashfree.py) serve, and
is the shared control plane's view of Cashfree (simulators/payments.py). Paying
an order records a payment attempt and posts Cashfree's webhook, signed as
Cashfree signs it: `x-webhook-signature` is the base64 HMAC-SHA256, keyed with the
app's client secret, of `x-webhook-timestamp` (milliseconds) followed directly by
the raw body; `x-webhook-version` is the API version the body is shaped for.

Outcomes: success -> PAYMENT_SUCCESS_WEBHOOK (order PAID); failed and timeout ->
PAYMENT_FAILED_WEBHOOK; cancelled -> PAYMENT_USER_DROPPED_WEBHOOK. A Cashfree
order is paid in full: a smaller amount is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from providers.cashfree import CashfreeAccount
from simulators.common import SimContext
from simulators.payments import PayAttempt, PayError, SentCallback

WEBHOOK_VERSION = "2023-08-01"
IST = timezone(timedelta(hours=5, minutes=30))
Key = tuple[str, str]  # (client id, order id): an app sees only its own orders

_EVENTS = {
    "success": ("SUCCESS", "PAYMENT_SUCCESS_WEBHOOK", "00::Transaction success"),
    "failed": ("FAILED", "PAYMENT_FAILED_WEBHOOK", "Transaction declined by the bank"),
    "timeout": ("FAILED", "PAYMENT_FAILED_WEBHOOK", "Transaction timed out"),
    "cancelled": ("USER_DROPPED", "PAYMENT_USER_DROPPED_WEBHOOK", "User dropped"),
}
_ERRORS = {
    "failed": ("TRANSACTION_DECLINED", "issuer bank declined the transaction", "auth_declined"),
    "timeout": ("TRANSACTION_TIMEOUT", "the payment was not completed in time", "timeout"),
    "cancelled": ("USER_DROPPED", "user dropped and did not complete the payment", "user_dropped"),
}


def sign(timestamp: str, body: bytes, secret: str) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def minor(amount: Any) -> int:
    return int(Decimal(str(amount)) * 100)


def now_ist() -> str:
    return datetime.now(IST).replace(microsecond=0).isoformat()


@dataclass
class CashfreeGateway:
    ctx: SimContext
    name: str = "cashfree"
    orders: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # (client id, idempotency key) -> (the request body, the order id it created)
    order_keys: dict[Key, tuple[Any, str]] = field(default_factory=dict)
    payments: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)
    refunds: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)
    # (client id, idempotency key) -> (the request body, the refund it created)
    refund_keys: dict[Key, tuple[Any, dict[str, Any]]] = field(default_factory=dict)

    def find(self, order_id: str) -> Key:
        """The one order with this id, whichever app created it."""
        found = [k for k in self.orders if k[1] == order_id]
        if not found:
            raise PayError(404, f"order {order_id} does not exist")
        if len(found) > 1:
            raise PayError(409, f"order id {order_id} is used by {len(found)} apps")
        return found[0]

    def order(self, order_id: str) -> dict[str, Any] | None:
        try:
            key = self.find(order_id)
        except PayError:
            return None
        entity = self.orders[key]
        return {
            **{k: v for k, v in entity.items() if not k.startswith("_")},
            "tenant": entity["_tenant"],
            "amount_minor": minor(entity["order_amount"]),
            "currency": entity["order_currency"],
            "status": entity["order_status"],
            "payments": [p["cf_payment_id"] for p in self.payments.get(key, [])],
        }

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        key = self.find(order_id)
        order = self.orders[key]
        self._check(order, attempt)
        payment = _payment(order, attempt)
        self.payments.setdefault(key, []).append(payment)
        if payment["payment_status"] == "SUCCESS":
            order["order_status"] = "PAID"
        result: dict[str, Any] = {
            "order_id": order_id,
            "payment_id": payment["cf_payment_id"],
            "status": payment["payment_status"],
            "event": _EVENTS[attempt.outcome][1],
        }
        if attempt.send_callback:
            callback = self._callback(key, order, payment, attempt)
            result["callback"] = await self.ctx.callbacks.send(callback)
        return result

    @staticmethod
    def _check(order: dict[str, Any], attempt: PayAttempt) -> None:
        if order["order_status"] != "ACTIVE":
            raise PayError(409, f"order {order['order_id']} is {order['order_status']}")
        due = minor(order["order_amount"])
        if attempt.amount_minor is not None and attempt.amount_minor != due:
            raise PayError(400, f"a Cashfree order is paid in full ({due})")
        if attempt.currency is not None and attempt.currency != order["order_currency"]:
            raise PayError(400, f"order is payable in {order['order_currency']} only")

    def _secret(self, client_id: str) -> str:
        for _tenant, account in self.ctx.accounts("cashfree", CashfreeAccount):
            if account.client_id == client_id:
                return account.client_secret.get_secret_value()
        raise PayError(409, f"no Cashfree app {client_id} any more")

    def _callback(
        self, key: Key, order: dict[str, Any], payment: dict[str, Any], attempt: PayAttempt
    ) -> SentCallback:
        event = _EVENTS[attempt.outcome][1]
        body = json.dumps(_webhook_body(order, payment, event), separators=(",", ":")).encode()
        timestamp = str(int(time.time() * 1000))
        meta = order.get("order_meta") or {}
        url = attempt.callback_url or meta.get("notify_url")
        return SentCallback(
            provider=self.name,
            tenant=order["_tenant"],
            order_id=order["order_id"],
            payment_id=payment["cf_payment_id"],
            event=event,
            url=url or self.ctx.webhook_url(self.name, order["_tenant"]),
            body=body,
            headers={
                "content-type": "application/json",
                "x-webhook-signature": sign(timestamp, body, self._secret(key[0])),
                "x-webhook-timestamp": timestamp,
                "x-webhook-version": WEBHOOK_VERSION,
                "x-webhook-attempt": "1",
                "x-idempotency-key": str(uuid.uuid4()),
            },
        )

    def reset(self) -> None:
        for store in (self.orders, self.order_keys, self.payments, self.refunds):
            store.clear()
        self.refund_keys.clear()


def _payment(order: dict[str, Any], attempt: PayAttempt) -> dict[str, Any]:
    status, _event, message = _EVENTS[attempt.outcome]
    method = attempt.method or "upi"
    when = now_ist()
    error = _ERRORS.get(attempt.outcome)
    return {
        "cf_payment_id": str(secrets.randbelow(9 * 10**9) + 10**9),  # digits, as a string
        "order_id": order["order_id"],
        "entity": "payment",
        "is_captured": status == "SUCCESS",
        "order_amount": order["order_amount"],
        "payment_amount": order["order_amount"],
        "payment_currency": order["order_currency"],
        "payment_status": status,
        "payment_message": message,
        "payment_time": when,
        "payment_completion_time": when,
        "bank_reference": str(secrets.randbelow(10**12)),
        "auth_id": None,
        "payment_group": method,
        "payment_method": {method: {"channel": "collect"}},
        "error_details": None
        if error is None
        else {
            "error_code": error[0],
            "error_description": error[1],
            "error_reason": error[2],
            "error_source": "customer",
            "error_code_raw": None,
            "error_description_raw": None,
        },
    }


_WEBHOOK_PAYMENT_FIELDS = (
    "cf_payment_id",
    "payment_status",
    "payment_amount",
    "payment_currency",
    "payment_message",
    "payment_time",
    "bank_reference",
    "auth_id",
    "payment_method",
    "payment_group",
)


def _webhook_body(order: dict[str, Any], payment: dict[str, Any], event: str) -> dict[str, Any]:
    customer = order.get("customer_details") or {}
    data: dict[str, Any] = {
        "order": {
            "order_id": order["order_id"],
            "order_amount": order["order_amount"],
            "order_currency": order["order_currency"],
            "order_tags": order.get("order_tags"),
        },
        "payment": {k: payment[k] for k in _WEBHOOK_PAYMENT_FIELDS},
        "customer_details": {
            "customer_name": customer.get("customer_name"),
            "customer_id": customer.get("customer_id"),
            "customer_email": customer.get("customer_email"),
            "customer_phone": customer.get("customer_phone"),
        },
        "payment_gateway_details": {
            "gateway_name": "CASHFREE",
            "gateway_order_id": order["cf_order_id"],
            "gateway_payment_id": payment["cf_payment_id"],
        },
        "payment_offers": None,
    }
    if payment["error_details"] is not None:
        data["error_details"] = payment["error_details"]
    return {"data": data, "event_time": now_ist(), "type": event}


def gateway(ctx: SimContext) -> CashfreeGateway:
    return CashfreeGateway(ctx)


def store_of(ctx: SimContext) -> CashfreeGateway:
    found = ctx.gateways["cashfree"]
    assert isinstance(found, CashfreeGateway)
    return found
