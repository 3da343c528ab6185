"""Cashfree Payments: the PG Orders API (x-api-version 2023-08-01) out, payment webhooks in.

Orders:  POST /orders, with x-client-id / x-client-secret / x-api-version headers.
Test connection: GET /orders/{PROBE_ORDER_ID}: a 404 for an order that does not exist
proves the credentials were accepted (a wrong pair gets 401 first).

Idempotency is twofold: the order id is derived from the command (the receipt), and
`x-idempotency-key` carries the command's key, so a retried create returns the order
it already created instead of a second one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import Category, Delivered, Outcome, Rejected, classify_failure, json_or_empty
from providers.spec import API, NormalizationError, Provider, Webhooks
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    PaymentEvent,
    PaymentEventKind,
    RawWebhook,
)

API_VERSION = "2023-08-01"
# Cashfree's order_id: 3-45 characters, alphanumeric, '_' and '-'.
ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{3,45}$")
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_-]{3,50}$")
# Cashfree requires a phone; the payer can correct it on the checkout page.
PLACEHOLDER_PHONE = "9999999999"
MAX_TAGS = 10
PROBE_ORDER_ID = "hub_probe_order"
# Cashfree documents no replay window; five minutes either way is the hub's choice.
TIMESTAMP_TOLERANCE_MS = 5 * 60 * 1000
CENTS = Decimal("0.01")


class CashfreeAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    client_secret: SecretStr  # also the webhook signing key


def order_id_for(receipt: str) -> str:
    """The receipt when Cashfree accepts it as an order id, else a stable hash of it."""
    if ORDER_ID.match(receipt):
        return receipt
    return "hub_" + hashlib.sha256(receipt.encode()).hexdigest()[:40]


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


class Cashfree:
    name = "cashfree"
    category: Category = "payment"
    payload_type = CreatePaymentOrder
    # GET of an order that does not exist: 404 means the credentials were accepted.
    probe_ok_statuses = frozenset({200, 404})

    def build_request(
        self, command: ConnectorCommand, payload: CreatePaymentOrder, tenant: Tenant, base_url: str
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
            f"{base_url.rstrip('/')}/orders",
            json=body,
            headers={**_headers(account), "x-idempotency-key": command.idempotency_key},
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        account = tenant.account("cashfree", CashfreeAccount, label)
        return httpx.Request(
            "GET", f"{base_url.rstrip('/')}/orders/{PROBE_ORDER_ID}", headers=_headers(account)
        )

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code == 200 and isinstance(body.get("order_id"), str):
            order_id = str(body["order_id"])
            return Delivered(
                order_id,
                200,
                {
                    "order_id": order_id,
                    "cf_order_id": str(body.get("cf_order_id") or ""),
                    "payment_session_id": str(body.get("payment_session_id") or ""),
                    "order_status": str(body.get("order_status") or ""),
                },
            )
        message = str(body.get("message") or response.reason_phrase or "error")
        code = str(body.get("code") or body.get("type") or "") or None
        if response.status_code == 409:
            # A retry of our own create carries the same x-idempotency-key and gets
            # the order back with 200; a 409 therefore means the order id is taken
            # by an order this key did not create (another command with the same
            # receipt, another integration). The body cannot prove otherwise: reject.
            return Rejected(message, 409, code)
        return classify_failure(response, message, code)


class CashfreeVerifier:
    """x-webhook-signature: base64 HMAC-SHA256 of x-webhook-timestamp + raw body.

    The key is the account's client secret. The timestamp is in milliseconds; one
    more than five minutes away from now (either way) is refused as a replay.
    Cashfree sends no event id header, so the ingress de-duplicates on the body hash.
    """

    signature_header = "x-webhook-signature"
    timestamp_header = "x-webhook-timestamp"
    event_id_header: str | None = None

    def sign(self, body: bytes, secret: str) -> str:
        """The signature of exactly these bytes (for Cashfree: timestamp + raw body)."""
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        timestamp = str(int(time.time() * 1000))
        return {
            self.timestamp_header: timestamp,
            self.signature_header: self.sign(timestamp.encode() + body, secret),
        }

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        received = headers.get(self.signature_header, "").strip()
        timestamp = headers.get(self.timestamp_header, "").strip()
        if not received or not (timestamp.isascii() and timestamp.isdigit()):
            return False
        if abs(int(timestamp) - time.time() * 1000) > TIMESTAMP_TOLERANCE_MS:
            return False
        expected = self.sign(timestamp.encode() + body, secret)
        return hmac.compare_digest(expected.encode(), received.encode())


# --- Webhooks: PAYMENT_*_WEBHOOK to the hub's PaymentEvent --------------------

_CASHFREE_KINDS = {
    "PAYMENT_SUCCESS_WEBHOOK": PaymentEventKind.CAPTURED,
    "PAYMENT_FAILED_WEBHOOK": PaymentEventKind.FAILED,
}


def _object(parent: Any, field: str) -> dict[str, Any]:
    value = parent.get(field) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise NormalizationError(f"cashfree webhook has no {field!r} object")
    return value


def _text(entity: dict[str, Any], field: str) -> str:
    value = entity.get(field)
    # cf_payment_id is a number in some payload versions, a string in others.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise NormalizationError(f"cashfree webhook has no valid {field!r}")
    return value


def _minor_units(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NormalizationError("cashfree webhook has no valid 'payment_amount'")
    try:
        minor = Decimal(str(value)) * 100  # str first: Decimal(0.1) is not 0.1
    except InvalidOperation:
        raise NormalizationError(f"payment_amount {value!r} is not a number") from None
    if not minor.is_finite() or minor != minor.to_integral_value():
        raise NormalizationError(f"payment_amount {value!r} has more than 2 decimals")
    return int(minor)


def _payment_time(payment: dict[str, Any]) -> datetime | None:
    value = payment.get("payment_time")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _optional(entity: dict[str, Any], field: str) -> str | None:
    value = entity.get(field)
    return value if isinstance(value, str) and value else None


def normalize_cashfree(raw: RawWebhook, body: dict[str, Any]) -> PaymentEvent | None:
    kind = _CASHFREE_KINDS.get(str(body.get("type")))
    if kind is None:
        return None  # PAYMENT_USER_DROPPED_WEBHOOK and others: nothing to record
    data = _object(body, "data")
    order, payment = _object(data, "order"), _object(data, "payment")
    found = data.get("error_details")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    return PaymentEvent(
        header=raw.header.caused(f"payments.payment.{kind.lower()}", source="normalizer"),
        provider=raw.provider,
        provider_event_id=raw.provider_event_id,
        kind=kind,
        payment_id=_text(payment, "cf_payment_id"),
        order_id=_text(order, "order_id"),
        amount_minor=_minor_units(payment.get("payment_amount")),
        currency=_text(payment, "payment_currency"),
        method=_optional(payment, "payment_group"),
        error_code=_optional(error, "error_code") if kind is PaymentEventKind.FAILED else None,
        error_description=(
            _optional(error, "error_description") or _optional(payment, "payment_message")
            if kind is PaymentEventKind.FAILED
            else None
        ),
        provider_created_at=_payment_time(payment),
    )


PROVIDER = Provider(
    name="cashfree",
    title="Cashfree Payments",
    category=Cashfree.category,
    account_model=CashfreeAccount,
    adapter=Cashfree(),
    base_urls={API: "https://api.cashfree.com/pg"},
    simulator_paths={API: "/cashfree"},
    summary="Payment gateway (India): PG orders (2023-08-01), payment webhooks",
    docs_url="https://www.cashfree.com/docs/api-reference/payments/previous/v2023-08-01/orders/create",
    # The client secret is also the webhook signing key: there is no separate one.
    webhooks=Webhooks(
        CashfreeVerifier(),
        normalize_cashfree,
        secret_field="client_secret",  # noqa: S106 - a field name
    ),
)
