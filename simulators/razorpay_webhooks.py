"""Razorpay payments and their signed webhooks, fired at the hub's ingress.

The body is serialized once; `X-Razorpay-Signature` is the lowercase hex
HMAC-SHA256 of exactly those bytes keyed with the tenant's webhook secret, and a
resend posts the very same bytes and headers (same event id), as Razorpay does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import string
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from core.tenants import TenantDirectory
from providers.razorpay import RazorpayAccount
from simulators.payments import KeepOpen
from simulators.state import (
    Order,
    Payment,
    SentWebhook,
    SimState,
    WebhookDelivery,
    random_id,
)

Outcome = Literal["captured", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("captured", "failed")
WEBHOOK_TIMEOUT = 15.0
USER_AGENT = "Razorpay-Webhook/v1"

FAILED_DEFAULTS = {
    "error_code": "BAD_REQUEST_ERROR",
    "error_description": "Payment failed due to insufficient funds in the account",
    "error_source": "customer",
    "error_step": "payment_authorization",
    "error_reason": "insufficient_funds",
}


class PayError(Exception):
    """A control request that cannot be honoured; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PayRequest:
    outcome: Outcome = "captured"
    method: str = "card"
    error_code: str | None = None
    error_description: str | None = None
    error_reason: str | None = None
    webhook_url: str | None = None
    email: str = "parent@example.com"
    contact: str = "+919876543210"
    # Less than the amount due: a partial payment (the order must allow them); None: all.
    amount: int | None = None


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def account_id(key_id: str) -> str:
    """A stable `acc_...` id per Razorpay key, as the merchant account id in events."""
    alphabet = string.digits + string.ascii_letters
    number = int(hashlib.sha256(key_id.encode()).hexdigest(), 16)
    chars = []
    for _ in range(14):
        number, rest = divmod(number, len(alphabet))
        chars.append(alphabet[rest])
    return "acc_" + "".join(chars)


def _instrument(method: str, captured: bool) -> dict[str, Any]:
    return {
        "card_id": random_id("card_") if method == "card" else None,
        "bank": "HDFC" if method == "netbanking" else None,
        "wallet": "paytm" if method == "wallet" else None,
        "vpa": ("success@razorpay" if captured else "failure@razorpay")
        if method == "upi"
        else None,
    }


def payment_entity(order: Order, payment_id: str, req: PayRequest) -> dict[str, Any]:
    captured = req.outcome == "captured"
    amount = req.amount if req.amount is not None else order.amount - order.amount_paid
    base_fee = round(amount * 0.02)
    tax = round(base_fee * 0.18)
    errors: dict[str, Any] = dict.fromkeys(FAILED_DEFAULTS)
    if not captured:
        errors = dict(FAILED_DEFAULTS)
        errors["error_code"] = req.error_code or errors["error_code"]
        errors["error_description"] = req.error_description or errors["error_description"]
        errors["error_reason"] = req.error_reason or errors["error_reason"]
    return {
        "id": payment_id,
        "entity": "payment",
        "amount": amount,
        "currency": order.currency,
        "status": "captured" if captured else "failed",
        "order_id": order.id,
        "invoice_id": None,
        "international": False,
        "method": req.method,
        "amount_refunded": 0,
        "refund_status": None,
        "captured": captured,
        "description": order.receipt,
        **_instrument(req.method, captured),
        "email": req.email,
        "contact": req.contact,
        "notes": dict(order.notes) if order.notes else [],
        "fee": base_fee + tax if captured else None,
        "tax": tax if captured else None,
        **errors,
        "acquirer_data": {},
        "created_at": int(time.time()),
    }


def _check_amount(order: Order, amount: int | None) -> None:
    due = order.amount - order.amount_paid
    if amount is None or amount == due:
        return
    if amount <= 0 or amount > due:
        raise PayError(400, f"amount must be between 1 and the {due} due on {order.id}")
    if not order.partial_payment:
        raise PayError(400, f"order {order.id} does not accept partial payments")


def _apply(order: Order, outcome: Outcome, amount: int) -> None:
    """The order after one payment: paid once nothing is due, else attempted."""
    order.attempts += 1
    if outcome == "captured":
        order.amount_paid += amount
    order.status = "paid" if order.amount_paid >= order.amount else "attempted"


class WebhookSender:
    def __init__(
        self,
        state: SimState,
        tenants: TenantDirectory,
        url_template: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._state = state
        self._tenants = tenants
        self._url_template = url_template
        self._transport = transport

    def default_url(self, tenant_id: str) -> str:
        return self._url_template.format(tenant=tenant_id, provider="razorpay")

    async def pay(self, order_id: str, req: PayRequest) -> dict[str, Any]:
        """Pay (or fail) an order, then fire the signed `payment.*` webhook."""
        hook = self.make_payment(order_id, req)
        self._state.webhooks[hook.event_id] = hook
        return await self._deliver(hook, hook.url)

    def make_payment(self, order_id: str, req: PayRequest) -> SentWebhook:
        """Pay (or fail) an order at Razorpay; the signed webhook it would send, unsent."""
        order = self._state.orders.get(order_id)
        if order is None:
            raise PayError(404, f"order {order_id} does not exist")
        if order.status == "paid":
            raise PayError(409, f"order {order_id} is already paid")
        _check_amount(order, req.amount)
        found = self._tenants.find_account("razorpay", key_id=order.key_id)
        if found is None or found[0].id != order.tenant:
            raise PayError(409, f"tenant {order.tenant} has no Razorpay account {order.key_id}")
        account = found[1].config
        assert isinstance(account, RazorpayAccount)
        payment_id = random_id("pay_")
        entity = payment_entity(order, payment_id, req)
        _apply(order, req.outcome, entity["amount"])
        self._state.payments[payment_id] = Payment(
            id=payment_id,
            order_id=order.id,
            key_id=order.key_id,
            tenant=order.tenant,
            entity=entity,
        )
        return self._webhook(order, account, entity, req)

    def _webhook(
        self, order: Order, account: RazorpayAccount, entity: dict[str, Any], req: PayRequest
    ) -> SentWebhook:
        event = f"payment.{req.outcome}"
        body = json.dumps(
            {
                "entity": "event",
                "account_id": account_id(order.key_id),
                "event": event,
                "contains": ["payment"],
                "payload": {"payment": {"entity": entity}},
                "created_at": int(time.time()),
            },
            separators=(",", ":"),
        ).encode()
        event_id = random_id("evt_")
        secret = account.webhook_secret.get_secret_value()
        return SentWebhook(
            event_id=event_id,
            event=event,
            tenant=order.tenant,
            order_id=order.id,
            payment_id=str(entity["id"]),
            url=req.webhook_url or self.default_url(order.tenant),
            body=body,
            headers={
                "Content-Type": "application/json",
                "X-Razorpay-Signature": sign(body, secret),
                "X-Razorpay-Event-Id": event_id,
                "User-Agent": USER_AGENT,
            },
        )

    async def resend(self, event_id: str, webhook_url: str | None = None) -> dict[str, Any]:
        """Post the exact same bytes and headers again (Razorpay's retry)."""
        hook = self._state.webhooks.get(event_id)
        if hook is None:
            raise PayError(404, f"webhook event {event_id} does not exist")
        return await self._deliver(hook, webhook_url or hook.url)

    async def _deliver(self, hook: SentWebhook, url: str) -> dict[str, Any]:
        status: int | None = None
        error: str | None = None
        transport = KeepOpen(self._transport) if self._transport is not None else None
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT, transport=transport) as client:
                response = await client.post(url, content=hook.body, headers=hook.headers)
            status = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        hook.deliveries.append(
            WebhookDelivery(url=url, status=status, error=error, sent_at=time.time())
        )
        return {
            "event_id": hook.event_id,
            "event": hook.event,
            "payment_id": hook.payment_id,
            "order_id": hook.order_id,
            "webhook_url": url,
            "webhook_status": status,
            "error": error,
        }
