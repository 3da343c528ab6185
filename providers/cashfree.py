"""Cashfree Payments: the PG API (x-api-version 2023-08-01) out, payment webhooks in.

Every call carries x-client-id / x-client-secret / x-api-version headers.

- Create:  POST /orders. Idempotency is twofold: the order id is derived from the
  command (the receipt), and `x-idempotency-key` carries the command's key, so a
  retried create returns the order it already created instead of a second one.
- Status:  GET /orders/{order_id}/payments, every attempt at paying the order.
- Refund:  POST /orders/{order_id}/refunds, `refund_id` derived from the command's
  key (so a retry names the same refund) and `x-idempotency-key`.
- Test connection: GET /orders/{PROBE_ORDER_ID}: a 404 for an order that does not
  exist proves the credentials were accepted (a wrong pair gets 401 first).

The payer's page: Cashfree returns no checkout URL. Its hosted checkout is opened
by Cashfree's JS SDK with the order's `payment_session_id` (in the details), so
against Cashfree itself `payment_url` is left out. The simulator serves a
stand-in checkout at `<base>/checkout/{order_id}`, and that is the `payment_url`
when the base URL is not one of Cashfree's hosts.

Webhooks (verifier, normalizer) live in providers/cashfree_webhooks.py.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.tenants import Tenant
from providers.base import Delivered, Outcome, Rejected, classify_failure, json_or_empty
from providers.cashfree_webhooks import CashfreeVerifier, minor_units, normalize_cashfree
from providers.payments import GatewayAdapter, PaymentSnapshot
from providers.spec import API, NormalizationError, Provider, Webhooks
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    FetchPaymentStatus,
    RefundPayment,
)

__all__ = ["Cashfree", "CashfreeAccount", "CashfreeVerifier", "normalize_cashfree"]

API_VERSION = "2023-08-01"
# Cashfree's order_id: 3-45 characters, alphanumeric, '_' and '-'.
ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{3,45}$")
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_-]{3,50}$")
# Cashfree's refund_id: at most 40 characters; the hub keeps to the order id's charset.
REFUND_ID = re.compile(r"^[A-Za-z0-9_-]{3,40}$")
MAX_REFUND_NOTE = 100
# Cashfree requires a phone; the payer can correct it on the checkout page.
PLACEHOLDER_PHONE = "9999999999"
MAX_TAGS = 10
PROBE_ORDER_ID = "hub_probe_order"
CENTS = Decimal("0.01")
# Where Cashfree itself answers: no checkout page lives under these.
CASHFREE_HOSTS = ("cashfree.com",)
# A dropped attempt is not a failure (the webhook path records nothing for it either):
# the order stays open and the payer may try again.
_FAILED_STATUSES = frozenset({"FAILED"})


class CashfreeAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    client_secret: SecretStr  # also the webhook signing key


def order_id_for(receipt: str) -> str:
    """The receipt when Cashfree accepts it as an order id, else a stable hash of it."""
    if ORDER_ID.match(receipt):
        return receipt
    return "hub_" + hashlib.sha256(receipt.encode()).hexdigest()[:40]


def refund_id_for(idempotency_key: str) -> str:
    """The command's key when Cashfree accepts it as a refund id, else a stable hash of it."""
    if REFUND_ID.match(idempotency_key):
        return idempotency_key
    return "hub_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:36]


def rupees(amount_minor: int) -> Decimal:
    return (Decimal(amount_minor) / 100).quantize(CENTS)


def _customer(payload: CreatePaymentOrder, tenant: Tenant) -> dict[str, str]:
    notes = payload.notes
    given = notes.get("customer_id", "")
    # Derived from tenant and receipt: the same payer reference on every retry.
    derived = "hub_" + hashlib.sha256(f"{tenant.id}:{payload.receipt}".encode()).hexdigest()[:20]
    customer = {
        "customer_id": given if CUSTOMER_ID.match(given) else derived,
        "customer_phone": notes.get("customer_phone") or PLACEHOLDER_PHONE,
    }
    for field in ("customer_email", "customer_name"):
        if notes.get(field):
            customer[field] = notes[field]
    return customer


def _headers(account: CashfreeAccount) -> dict[str, str]:
    return {
        "x-client-id": account.client_id,
        "x-client-secret": account.client_secret.get_secret_value(),
        "x-api-version": API_VERSION,
    }


def _failure(response: httpx.Response) -> Outcome:
    body = json_or_empty(response)
    message = str(body.get("message") or response.reason_phrase or "error")
    code = str(body.get("code") or body.get("type") or "") or None
    if response.status_code == 409:
        # A retry of our own call carries the same x-idempotency-key and gets the
        # order (refund) back with 200; a 409 therefore means the id is taken by
        # one this key did not create (another command, another integration).
        return Rejected(message, 409, code)
    return classify_failure(response, message, code)


def _checkout_url(response: httpx.Response, order_id: str) -> str | None:
    """The simulator's stand-in checkout page; None at Cashfree (its JS SDK opens it)."""
    url = response.request.url
    if any(url.host == h or url.host.endswith("." + h) for h in CASHFREE_HOSTS):
        return None
    base = str(url.copy_with(query=None)).removesuffix("/orders")
    return f"{base}/checkout/{order_id}"


def _order_of(response: httpx.Response) -> str:
    """The order id a status query asked about: /orders/{order_id}/payments."""
    parts = response.request.url.path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _attempt_time(payment: dict[str, Any]) -> str:
    # ISO 8601 with Cashfree's fixed +05:30 offset: the text orders like the time.
    for field in ("payment_completion_time", "payment_time"):
        value = payment.get(field)
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value).isoformat()
            except ValueError:
                continue
    return ""


def _latest(payments: list[dict[str, Any]]) -> dict[str, Any]:
    return max(payments, key=_attempt_time)  # max keeps the first of equal times


def _snapshot(order_id: str, payments: list[dict[str, Any]]) -> PaymentSnapshot:
    """Any successful attempt settles the order; else its latest attempt, if that failed."""
    success = [p for p in payments if p.get("payment_status") == "SUCCESS"]
    if success:
        chosen, status = _latest(success), "CAPTURED"
    elif payments and _latest(payments).get("payment_status") in _FAILED_STATUSES:
        chosen, status = _latest(payments), "FAILED"
    else:
        return PaymentSnapshot("PENDING", order_id)
    failed = status == "FAILED"
    raw_error = chosen.get("error_details")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    return PaymentSnapshot(
        status="FAILED" if failed else "CAPTURED",
        order_id=order_id,
        # The id the webhook's normalizer reports too: one payment, one payment_id.
        payment_id=str(chosen.get("cf_payment_id") or ""),
        amount_minor=minor_units(chosen.get("payment_amount")),
        currency=str(chosen.get("payment_currency") or ""),
        method=str(chosen.get("payment_group") or ""),
        error_code=str(error.get("error_code") or "") if failed else "",
        error_description=(
            str(error.get("error_description") or chosen.get("payment_message") or "")
            if failed
            else ""
        ),
    )


class Cashfree(GatewayAdapter):
    name = "cashfree"
    payload_type = (CreatePaymentOrder, FetchPaymentStatus, RefundPayment)
    # GET of an order that does not exist: 404 means the credentials were accepted.
    probe_ok_statuses = frozenset({200, 404})

    def create_order(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = tenant.account("cashfree", CashfreeAccount, command.account)
        body: dict[str, Any] = {
            "order_id": order_id_for(payload.receipt),
            # float of a 2-place Decimal serialises as its exact decimal text (1234.5).
            "order_amount": float(rupees(payload.amount_minor)),
            "order_currency": payload.currency,
            "customer_details": _customer(payload, tenant),
            "order_tags": dict(list(payload.notes.items())[:MAX_TAGS]),
        }
        return httpx.Request(
            "POST",
            f"{base}/orders",
            json=body,
            headers={**_headers(account), "x-idempotency-key": command.idempotency_key},
        )

    def classify_order(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code != 200 or not isinstance(body.get("order_id"), str):
            return _failure(response)
        order_id = str(body["order_id"])
        details = {
            "order_id": order_id,
            "cf_order_id": str(body.get("cf_order_id") or ""),
            "payment_session_id": str(body.get("payment_session_id") or ""),
            "order_status": str(body.get("order_status") or ""),
        }
        checkout = _checkout_url(response, order_id)
        if checkout is not None:
            details["payment_url"] = checkout
        return Delivered(order_id, 200, details)

    def fetch_status(
        self, command: ConnectorCommand, payload: FetchPaymentStatus, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = tenant.account("cashfree", CashfreeAccount, command.account)
        return httpx.Request(
            "GET", f"{base}/orders/{payload.order_id}/payments", headers=_headers(account)
        )

    def classify_status(self, response: httpx.Response) -> Outcome:
        order_id = _order_of(response)
        if response.status_code == 404:
            return Delivered(None, 404, PaymentSnapshot("NOT_FOUND", order_id).to_details())
        if response.status_code != 200:
            return _failure(response)
        try:
            found = response.json()
        except ValueError:
            found = None
        if not isinstance(found, list) or not all(isinstance(p, dict) for p in found):
            return Rejected("cashfree payments answer is not a list of payments", 200)
        try:
            snapshot = _snapshot(order_id, found)
        except NormalizationError as exc:
            return Rejected(str(exc), 200)
        return Delivered(snapshot.payment_id or None, 200, snapshot.to_details())

    def refund(
        self, command: ConnectorCommand, payload: RefundPayment, tenant: Tenant, base: str
    ) -> httpx.Request:
        account = tenant.account("cashfree", CashfreeAccount, command.account)
        body: dict[str, Any] = {
            "refund_amount": float(rupees(payload.amount_minor)),
            "refund_id": refund_id_for(command.idempotency_key),
        }
        note = payload.reason.strip()[:MAX_REFUND_NOTE]
        if len(note) >= 3:  # Cashfree refuses a shorter note; none at all is fine
            body["refund_note"] = note
        return httpx.Request(
            "POST",
            f"{base}/orders/{payload.order_id}/refunds",
            json=body,
            headers={**_headers(account), "x-idempotency-key": command.idempotency_key},
        )

    def classify_refund(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code != 200:
            return _failure(response)
        refund_id = body.get("refund_id")
        if not isinstance(refund_id, str) or not refund_id:
            return Rejected("cashfree refund answer without a refund_id", 200)
        return Delivered(
            refund_id,
            200,
            {
                "refund_id": refund_id,
                "refund_status": str(body.get("refund_status") or ""),
                "cf_refund_id": str(body.get("cf_refund_id") or ""),
                "cf_payment_id": str(body.get("cf_payment_id") or ""),
            },
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        account = tenant.account("cashfree", CashfreeAccount, label)
        return httpx.Request(
            "GET", f"{base_url.rstrip('/')}/orders/{PROBE_ORDER_ID}", headers=_headers(account)
        )


PROVIDER = Provider(
    name="cashfree",
    title="Cashfree Payments",
    category="payment",
    account_model=CashfreeAccount,
    adapter=Cashfree(),
    base_urls={API: "https://api.cashfree.com/pg"},
    simulator_paths={API: "/cashfree"},
    summary="Payment gateway (India): PG orders (2023-08-01), status, refunds, payment webhooks",
    docs_url="https://www.cashfree.com/docs/api-reference/payments/previous/v2023-08-01/orders/create",
    # The client secret is also the webhook signing key: there is no separate one.
    webhooks=Webhooks(
        CashfreeVerifier(),
        normalize_cashfree,
        secret_field="client_secret",  # noqa: S106 - a field name
    ),
)
