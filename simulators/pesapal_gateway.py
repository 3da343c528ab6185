"""Pesapal's side of a payment: its orders, IPN registrations and tokens, and `pay`.

The store the API routes (simulators/pesapal.py) serve; a payment sends the IPN
as a GET to the registered URL, as Pesapal does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import Headers

from providers.currency_units import json_number, to_major
from providers.pesapal import PesapalAccount, ipn_url
from simulators.common import SimContext, bearer_token
from simulators.payments import GatewaySim, PayAttempt, PayError, SentCallback
from simulators.state import random_id

OUTCOMES = {"success": (1, "COMPLETED"), "failed": (2, "FAILED")}


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class PesapalSim:
    """Tokens, IPNs and orders, per merchant (consumer key)."""

    ctx: SimContext
    name: str = "pesapal"
    tokens: dict[str, tuple[str, str, float]] = field(
        default_factory=dict
    )  # token -> key, tenant, until
    ipns: dict[str, dict[str, Any]] = field(default_factory=dict)  # ipn_id -> registration
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # tracking id -> order

    def __post_init__(self) -> None:
        self.seed_ipns()

    def seed_ipns(self) -> None:
        for tenant, account in self.ctx.accounts("pesapal", PesapalAccount):
            url = ipn_url(
                self.ctx.webhook_url(self.name, tenant.id), account.ipn_token.get_secret_value()
            )
            self.ipns[account.ipn_id] = registration(
                account.consumer_key, account.ipn_id, url, "GET"
            )

    def caller(self, headers: Headers) -> tuple[str, str] | None:
        """(consumer key, tenant id) of a valid, unexpired token."""
        found = self.tokens.get(bearer_token(headers) or "")
        if found is None or found[2] < time.time():
            return None
        return found[0], found[1]

    def order(self, order_id: str) -> dict[str, Any] | None:
        found = self.orders.get(order_id)
        return None if found is None else {k: v for k, v in found.items() if not k.startswith("_")}

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise PayError(404, f"no pesapal order {order_id!r}")
        if order["status_code"] == 1:
            raise PayError(409, f"{order_id} is already paid")
        outcome = OUTCOMES.get(attempt.outcome)
        if outcome is None:  # cancelled or abandoned: Pesapal has nothing to announce
            return {
                "order_id": order_id,
                "payment_id": "",
                "status": order["payment_status_description"],
            }
        self._settle(order, attempt, *outcome)
        result: dict[str, Any] = {
            "order_id": order_id,
            "payment_id": order["confirmation_code"],
            "status": order["payment_status_description"],
        }
        if attempt.send_callback:
            result["callback"] = await self._send_ipn(order, attempt.callback_url)
        return result

    def _settle(
        self, order: dict[str, Any], attempt: PayAttempt, code: int, described: str
    ) -> None:
        currency = attempt.currency or order["currency"]
        amount_minor = (
            order["amount_minor"] if attempt.amount_minor is None else attempt.amount_minor
        )
        order.update(
            status_code=code,
            payment_status_description=described,
            confirmation_code=random_id("", 10).upper(),
            payment_method=attempt.method or "MpesaKE",
            payment_account="2547******89",
            paid_currency=currency,
            paid_amount=json_number(to_major(amount_minor, currency)),
            description="Payment completed" if code == 1 else "Unable to authorize the payment",
        )

    async def _send_ipn(self, order: dict[str, Any], override: str | None) -> dict[str, Any]:
        registered = self.ipns[order["_notification_id"]]["url"]
        base = override or registered
        ids = {
            "OrderTrackingId": order["order_tracking_id"],
            "OrderMerchantReference": order["merchant_reference"],
            "OrderNotificationType": "IPNCHANGE",
        }
        url = f"{base}{'&' if '?' in base else '?'}{urlencode(ids)}"
        callback = SentCallback(
            provider=self.name,
            tenant=order["_tenant"],
            order_id=order["order_tracking_id"],
            payment_id=order["confirmation_code"],
            event="IPNCHANGE",
            url=url,
            body=b"",
            headers={"accept": "application/json"},
            method="GET",
        )
        return await self.ctx.callbacks.send(callback)

    def reset(self) -> None:
        self.tokens.clear()
        self.orders.clear()
        self.ipns.clear()
        self.seed_ipns()


def gateway(ctx: SimContext) -> GatewaySim:
    return PesapalSim(ctx)


def sim_of(ctx: SimContext) -> PesapalSim:
    sim = ctx.gateways["pesapal"]
    assert isinstance(sim, PesapalSim)
    return sim


def registration(consumer_key: str, ipn_id: str, url: str, kind: str) -> dict[str, Any]:
    return {
        "url": url,
        "created_date": now_utc().isoformat(),
        "ipn_id": ipn_id,
        "ipn_notification_type": 0 if kind == "GET" else 1,
        "ipn_notification_type_description": kind,
        "ipn_status": 1,
        "ipn_status_description": "Active",
        "_merchant": consumer_key,
    }


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}
