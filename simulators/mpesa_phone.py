"""The M-Pesa simulator's store and the parent's phone: STK prompts answered, paybill paid.

`MpesaSim` is the gateway the control plane pays into (`POST /_sim/payments/mpesa/
orders/{CheckoutRequestID}/pay`): the phone accepts (ResultCode 0, with metadata),
is cancelled (1032), cannot be reached (1037) or has too little money (1), and M-Pesa
posts the STK callback to the CallBackURL the push gave, token included.

`paybill` is a parent paying the school's paybill from the phone's menu: a C2B
confirmation to the ConfirmationURL the school registered (or, if it registered
none, the hub's default URL with the account's token, as if set up by Safaricom).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.tenants import Tenant
from providers.mpesa import MpesaAccount
from providers.mpesa_callbacks import NAIROBI
from simulators.common import SimContext
from simulators.payments import PayAttempt, PayError, SentCallback
from simulators.state import random_id

PROVIDER = "mpesa"
JSON = {"content-type": "application/json"}
# What the phone's answer becomes in the callback: (ResultCode, ResultDesc).
RESULTS: dict[str, tuple[int, str]] = {
    "success": (0, "The service request is processed successfully."),
    "cancelled": (1032, "Request cancelled by user"),
    "timeout": (1037, "DS timeout user cannot be reached"),
    "failed": (1, "The balance is insufficient for the transaction."),
}
STATUS = {0: "PAID", 1032: "CANCELLED", 1037: "TIMEOUT", 1: "FAILED"}


def receipt_number() -> str:
    return random_id("", 10).upper()


def nairobi_stamp(when: float | None = None) -> str:
    return datetime.fromtimestamp(when or time.time(), NAIROBI).strftime("%Y%m%d%H%M%S")


def account_of(ctx: SimContext, tenant_id: str) -> MpesaAccount | None:
    for tenant, account in ctx.accounts(PROVIDER, MpesaAccount):
        if tenant.id == tenant_id:
            return account
    return None


@dataclass
class Registration:
    confirmation_url: str
    validation_url: str
    response_type: str


@dataclass
class MpesaSim:
    ctx: SimContext
    name: str = PROVIDER
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    # access token -> (tenant id, consumer key, expires at)
    tokens: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    # (tenant id, shortcode) -> where C2B payments are confirmed
    registrations: dict[tuple[str, str], Registration] = field(default_factory=dict)
    reversals: list[dict[str, Any]] = field(default_factory=list)
    c2b_payments: list[dict[str, Any]] = field(default_factory=list)

    def issue_token(self, tenant: Tenant, consumer_key: str, lifetime: int = 3599) -> str:
        token = secrets.token_urlsafe(21)
        self.tokens[token] = (tenant.id, consumer_key, time.time() + lifetime)
        return token

    def token_tenant(self, token: str) -> str | None:
        found = self.tokens.get(token)
        return found[0] if found is not None and found[2] > time.time() else None

    def order(self, order_id: str) -> dict[str, Any] | None:
        found = self.orders.get(order_id)
        return dict(found) if found is not None else None

    def open_prompt_for(self, phone: str) -> dict[str, Any] | None:
        return next(
            (o for o in self.orders.values() if o["phone"] == phone and o["status"] == "PENDING"),
            None,
        )

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise PayError(404, f"no STK push {order_id}")
        if order["status"] != "PENDING":
            raise PayError(409, f"the prompt for {order_id} was already answered")
        amount_minor = (
            order["amount_minor"] if attempt.amount_minor is None else attempt.amount_minor
        )
        if amount_minor <= 0 or amount_minor % 100:
            raise PayError(400, "M-Pesa moves whole shillings: amount_minor must be x100")
        code, description = RESULTS[attempt.outcome]
        order.update(status=STATUS[code], result_code=code, result_desc=description)
        if code == 0:
            order.update(receipt=receipt_number(), paid_minor=amount_minor, paid_at=nairobi_stamp())
        result: dict[str, Any] = {
            "order_id": order_id,
            "payment_id": order_id,
            "status": order["status"],
            "result_code": code,
            "receipt": order.get("receipt"),
        }
        if attempt.send_callback:
            result["callback"] = await self._send_stk_callback(order, attempt.callback_url)
        return result

    async def _send_stk_callback(self, order: dict[str, Any], url: str | None) -> dict[str, Any]:
        body = json.dumps({"Body": {"stkCallback": stk_callback(order)}}).encode()
        return await self.ctx.callbacks.send(
            SentCallback(
                provider=PROVIDER,
                tenant=order["tenant"],
                order_id=order["order_id"],
                payment_id=order["order_id"],
                event="stk_callback",
                url=url or order["callback_url"],
                body=body,
                headers=dict(JSON),
            )
        )

    async def paybill(
        self, tenant_id: str, bill_ref: str, amount_minor: int, msisdn: str, send: bool = True
    ) -> dict[str, Any]:
        account = account_of(self.ctx, tenant_id)
        if account is None:
            raise PayError(404, f"tenant {tenant_id!r} has no mpesa account")
        if amount_minor <= 0 or amount_minor % 100:
            raise PayError(400, "M-Pesa moves whole shillings: amount_minor must be x100")
        payment = c2b_confirmation(account.shortcode, bill_ref, amount_minor, msisdn)
        self.c2b_payments.append({**payment, "_tenant": tenant_id})
        result: dict[str, Any] = {"payment_id": payment["TransID"], "status": "PAID"}
        if send:
            url = self._confirmation_url(tenant_id, account)
            result["callback"] = await self.ctx.callbacks.send(
                SentCallback(
                    provider=PROVIDER,
                    tenant=tenant_id,
                    order_id=f"c2b:{bill_ref}",
                    payment_id=payment["TransID"],
                    event="c2b_confirmation",
                    url=url,
                    body=json.dumps(payment).encode(),
                    headers=dict(JSON),
                )
            )
        return result

    def _confirmation_url(self, tenant_id: str, account: MpesaAccount) -> str:
        registered = self.registrations.get((tenant_id, account.shortcode))
        if registered is not None:
            return registered.confirmation_url
        default = self.ctx.webhook_url(PROVIDER, tenant_id)
        token = account.callback_token.get_secret_value()
        return f"{default}?token={token}&kind=confirmation"

    def reset(self) -> None:
        self.orders.clear()
        self.tokens.clear()
        self.registrations.clear()
        self.reversals.clear()
        self.c2b_payments.clear()


def stk_callback(order: dict[str, Any]) -> dict[str, Any]:
    """The stkCallback object M-Pesa posts: metadata only for a successful payment."""
    callback: dict[str, Any] = {
        "MerchantRequestID": order["merchant_request_id"],
        "CheckoutRequestID": order["order_id"],
        "ResultCode": order["result_code"],
        "ResultDesc": order["result_desc"],
    }
    if order["result_code"] == 0:
        callback["CallbackMetadata"] = {
            "Item": [
                {"Name": "Amount", "Value": order["paid_minor"] / 100},
                {"Name": "MpesaReceiptNumber", "Value": order["receipt"]},
                {"Name": "Balance"},
                {"Name": "TransactionDate", "Value": int(order["paid_at"])},
                {"Name": "PhoneNumber", "Value": int(order["phone"])},
            ]
        }
    return callback


def c2b_confirmation(
    shortcode: str, bill_ref: str, amount_minor: int, msisdn: str
) -> dict[str, Any]:
    return {
        "TransactionType": "Pay Bill",
        "TransID": receipt_number(),
        "TransTime": nairobi_stamp(),
        "TransAmount": f"{amount_minor / 100:.2f}",
        "BusinessShortCode": shortcode,
        "BillRefNumber": bill_ref,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": msisdn,
        "FirstName": "PARENT",
        "MiddleName": "",
        "LastName": "",
    }
