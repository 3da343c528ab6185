"""The Paytm simulator's orders and payments: what initiate creates, what the payer pays.

A payment (the control plane's `pay`, or the checkout page's buttons) sets the
order's transaction (TXNID, STATUS, RESPCODE) and posts Paytm's callback: an HTML
form with CHECKSUMHASH under the merchant key, to the order's callbackUrl (or the
dashboard's, the simulator's default webhook URL).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from providers.paytm import PaytmAccount
from providers.paytm_webhooks import IST, signed_form
from simulators.common import FORM_TYPE, SimContext
from simulators.payments import PayAttempt, PayError, SentCallback

PROVIDER = "paytm"
# What each outcome looks like in Paytm's words: STATUS, RESPCODE, RESPMSG.
OUTCOMES: dict[str, tuple[str, str, str]] = {
    "success": ("TXN_SUCCESS", "01", "Txn Success"),
    "failed": (
        "TXN_FAILURE",
        "227",
        "Your payment has been declined by your bank. Please contact your bank for any queries.",
    ),
    "cancelled": ("TXN_FAILURE", "141", "User has not completed transaction."),
    "timeout": (
        "PENDING",
        "402",
        "Looks like the payment is not complete. Please wait while we confirm the status.",
    ),
}
BANKS = {"UPI": ("PPBL", ""), "CC": ("HDFC", "HDFC Bank"), "NB": ("ICICI", "ICICI Bank")}


@dataclass
class PaytmOrder:
    order_id: str
    mid: str
    tenant: str
    amount_minor: int
    currency: str
    txn_token: str
    callback_url: str | None
    # CREATED until a payment is attempted, then the transaction's STATUS.
    status: str = "CREATED"
    txn_id: str = ""
    bank_txn_id: str = ""
    paid_minor: int = 0
    payment_mode: str = ""
    gateway_name: str = ""
    bank_name: str = ""
    txn_date: str = ""
    resp_code: str = ""
    resp_msg: str = ""
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def refunded_minor(self) -> int:
        return sum(int(r["amount_minor"]) for r in self.refunds.values())


def rupee_text(amount_minor: int) -> str:
    return f"{amount_minor // 100}.{amount_minor % 100:02d}"


def _digits(n: int) -> str:
    return str(secrets.randbelow(10**n)).zfill(n)


class PaytmGateway:
    """Orders per (MID, orderId), as Paytm keeps them: an orderId is unique per merchant."""

    name = PROVIDER

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.orders: dict[tuple[str, str], PaytmOrder] = {}

    def account(self, mid: str) -> tuple[str, PaytmAccount] | None:
        """The tenant and account of a MID (None: Paytm knows no such merchant)."""
        for tenant, account in self.ctx.accounts(PROVIDER, PaytmAccount):
            if account.mid == mid:
                return tenant.id, account
        return None

    def find(self, order_id: str) -> PaytmOrder | None:
        return next((o for (_, oid), o in self.orders.items() if oid == order_id), None)

    def order(self, order_id: str) -> dict[str, Any] | None:
        found = self.find(order_id)
        if found is None:
            return None
        return {k: v for k, v in asdict(found).items() if k != "txn_token"}

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        order = self.find(order_id)
        if order is None:
            raise PayError(404, f"paytm has no order {order_id!r}")
        if order.status == "TXN_SUCCESS":
            raise PayError(409, f"order {order_id} is already paid")
        self._transact(order, attempt)
        result: dict[str, Any] = {
            "order_id": order.order_id,
            "payment_id": order.txn_id,
            "status": order.status,
        }
        if attempt.send_callback:
            result["callback"] = await self.ctx.callbacks.send(self._callback(order, attempt))
        return result

    def _transact(self, order: PaytmOrder, attempt: PayAttempt) -> None:
        status, code, message = OUTCOMES[attempt.outcome]
        mode = (attempt.method or "UPI").upper()
        gateway, bank = BANKS.get(mode, ("PPBL", ""))
        now = datetime.now(IST)
        order.status, order.resp_code, order.resp_msg = status, code, message
        # Every attempt is a new transaction (a retry after a failure gets its own TXNID).
        order.txn_id = now.strftime("%Y%m%d") + "1112128001101" + _digits(14)
        order.bank_txn_id = _digits(12) if status == "TXN_SUCCESS" else ""
        order.paid_minor = (
            attempt.amount_minor if attempt.amount_minor is not None else order.amount_minor
        )
        order.payment_mode, order.gateway_name, order.bank_name = mode, gateway, bank
        order.txn_date = now.strftime("%Y-%m-%d %H:%M:%S.0")

    def _callback(self, order: PaytmOrder, attempt: PayAttempt) -> SentCallback:
        found = self.account(order.mid)
        assert found is not None, "an order's MID has an account"
        fields = {
            "BANKNAME": order.bank_name,
            "BANKTXNID": order.bank_txn_id,
            "CURRENCY": attempt.currency or order.currency,
            "GATEWAYNAME": order.gateway_name,
            "MID": order.mid,
            "ORDERID": order.order_id,
            "PAYMENTMODE": order.payment_mode,
            "RESPCODE": order.resp_code,
            "RESPMSG": order.resp_msg,
            "STATUS": order.status,
            "TXNAMOUNT": rupee_text(order.paid_minor),
            "TXNDATE": order.txn_date,
            "TXNID": order.txn_id,
        }
        url = (
            attempt.callback_url
            or order.callback_url
            or self.ctx.webhook_url(PROVIDER, order.tenant)
        )
        return SentCallback(
            provider=PROVIDER,
            tenant=order.tenant,
            order_id=order.order_id,
            payment_id=order.txn_id,
            event=order.status,
            url=url,
            body=signed_form(fields, found[1].merchant_key.get_secret_value()),
            headers={"content-type": FORM_TYPE},
        )

    def reset(self) -> None:
        self.orders.clear()
