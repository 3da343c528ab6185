"""Cashfree's webhooks: the timestamped signature and PAYMENT_*_WEBHOOK to PaymentEvent.

Split from providers/cashfree.py (the adapter) to keep each module short; the
minor-units reading of Cashfree's rupee amounts is shared with the status query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from providers.spec import NormalizationError
from schemas.events import PaymentEvent, PaymentEventKind, RawWebhook

# Cashfree documents no replay window; five minutes either way is the hub's choice.
TIMESTAMP_TOLERANCE_MS = 5 * 60 * 1000


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


def text_field(entity: dict[str, Any], field: str) -> str:
    value = entity.get(field)
    # cf_payment_id is a number in some payload versions, a string in others.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise NormalizationError(f"cashfree webhook has no valid {field!r}")
    return value


def minor_units(value: Any) -> int:
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
        payment_id=text_field(payment, "cf_payment_id"),
        order_id=text_field(order, "order_id"),
        amount_minor=minor_units(payment.get("payment_amount")),
        currency=text_field(payment, "payment_currency"),
        method=_optional(payment, "payment_group"),
        error_code=_optional(error, "error_code") if kind is PaymentEventKind.FAILED else None,
        error_description=(
            _optional(error, "error_description") or _optional(payment, "payment_message")
            if kind is PaymentEventKind.FAILED
            else None
        ),
        provider_created_at=_payment_time(payment),
    )
