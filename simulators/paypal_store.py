"""The PayPal simulator's state: tokens, orders, captures, and the payer's approval."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from providers.paypal import PayPalAccount
from simulators import paypal_webhooks as signing
from simulators.common import SimContext
from simulators.payments import PayAttempt, PayError, SentCallback
from simulators.state import random_id


def upper_id(length: int = 17) -> str:
    return random_id("", length).upper()


@dataclass
class PayPalSim:
    """PayPal's state: tokens, orders and refunds per client id (an app sees only its own)."""

    ctx: SimContext
    name: str = "paypal"
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> tenant, client
    orders: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (client id, operation, PayPal-Request-Id) -> (request body, status, answer)
    replies: dict[tuple[str, str, str], tuple[Any, dict[str, Any]]] = field(default_factory=dict)
    captures: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def reset(self) -> None:
        for store in (self.tokens, self.orders, self.replies, self.captures):
            store.clear()

    def find(self, order_id: str) -> dict[str, Any] | None:
        return next((o for (_, oid), o in self.orders.items() if oid == order_id), None)

    def order(self, order_id: str) -> dict[str, Any] | None:
        found = self.find(order_id)
        if found is None:
            return None
        return {
            "order_id": order_id,
            "tenant": found["_tenant"],
            "amount_minor": found["_amount_minor"],
            "currency": found["_currency"],
            "status": found["status"],
            "capture_id": found.get("_capture_id", ""),
        }

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        found = self.find(order_id)
        if found is None:
            raise PayError(404, f"paypal has no order {order_id}")
        if found["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            raise PayError(409, f"order {order_id} is {found['status']}, not awaiting the payer")
        if attempt.amount_minor not in (None, found["_amount_minor"]):
            raise PayError(400, "PayPal takes no partial payments: the payer approves the order")
        result: dict[str, Any] = {"order_id": order_id, "payment_id": "", "status": found["status"]}
        if attempt.outcome in ("cancelled", "timeout"):
            return result  # the payer left PayPal's page: no webhook
        found["status"] = "APPROVED"
        found["_decline"] = attempt.outcome == "failed"
        found["payment_source"] = {"paypal": _payer(found["_tenant"])}
        found["update_time"] = now()
        result["status"] = "APPROVED"
        if attempt.send_callback:
            body = signing.order_approved(public(found))
            result["callback"] = await self.send(
                found, "CHECKOUT.ORDER.APPROVED", body, attempt.callback_url
            )
        return result

    async def send(
        self, order: dict[str, Any], event: str, body: bytes, url: str | None = None
    ) -> dict[str, Any]:
        account = self.account(order["_client_id"])
        tenant = order["_tenant"]
        callback = SentCallback(
            provider="paypal",
            tenant=tenant,
            order_id=order["id"],
            payment_id=order.get("_capture_id", ""),
            event=event,
            url=url or self.ctx.webhook_url("paypal", tenant),
            body=body,
            headers=signing.signed_headers(
                body, account.webhook_id if account else "", order["_api_base"]
            ),
        )
        return await self.ctx.callbacks.send(callback)

    def account(self, client_id: str) -> PayPalAccount | None:
        found = (
            a for _, a in self.ctx.accounts("paypal", PayPalAccount) if a.client_id == client_id
        )
        return next(found, None)


def now() -> str:
    return signing.paypal_time(datetime.now(UTC))


def _payer(tenant: str) -> dict[str, Any]:
    return {
        "email_address": f"payer@{tenant}.example",
        "account_id": upper_id(13),
        "account_status": "VERIFIED",
        "name": {"given_name": "Test", "surname": "Payer"},
    }


def public(order: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in order.items() if not k.startswith("_")}
