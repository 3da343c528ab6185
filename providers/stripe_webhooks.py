"""Stripe's signed events in, and the one reading of a Checkout Session both paths share.

Verification (docs.stripe.com/webhooks#verify-manually, stripe-python's
`WebhookSignature`): `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
each v1 the hex HMAC-SHA256 of `f"{t}.{raw body}"` keyed by the endpoint's whole
signing secret (`whsec_...`). While a secret is being rolled Stripe signs with the
old and the new one, so any matching v1 is enough; `v0` (test-mode legacy) is
ignored. A timestamp more than five minutes from now is refused as a replay.

Events: the hub acts on Checkout Session events only.

- `checkout.session.completed` with `payment_status` "paid": CAPTURED. "unpaid"
  means an asynchronous method (a bank debit) is still settling: nothing yet.
- `checkout.session.async_payment_succeeded`: CAPTURED.
- `checkout.session.async_payment_failed`: FAILED.
- `checkout.session.expired`: FAILED ("expired"): the payer never paid, and a
  FAILED lets the fee flow offer a new payment link.

The order id is the session id (what the create returned); the payment id is the
PaymentIntent's (`pi_...`), on the webhook and the status query alike. A session
that expired before any PaymentIntent existed is its own payment id.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from providers.payments import PaymentSnapshot, SnapshotStatus
from providers.spec import NormalizationError
from schemas.events import PaymentEvent, PaymentEventKind, RawWebhook

SIGNATURE_HEADER = "stripe-signature"
SCHEME = "v1"
TOLERANCE_SECONDS = 300  # stripe-python's Webhook.DEFAULT_TOLERANCE
EXPIRED = "expired"
ASYNC_FAILED = "async_payment_failed"


class StripeVerifier:
    signature_header = SIGNATURE_HEADER
    # The event id is in the signed body (evt_...): see `event_id`.
    event_id_header: str | None = None

    def sign(self, body: bytes, secret: str) -> str:
        """The hex v1 signature of exactly these bytes (for Stripe: `t.` + raw body)."""
        return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = self.sign(timestamp.encode() + b"." + body, secret)
        return {SIGNATURE_HEADER: f"t={timestamp},{SCHEME}={signature}"}

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        parsed = parse_signature_header(headers.get(SIGNATURE_HEADER, ""))
        if parsed is None:
            return False
        timestamp, signatures = parsed
        if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return False
        expected = self.sign(timestamp.encode() + b"." + body, secret).encode()
        # Every candidate is compared, in constant time each.
        matches = [hmac.compare_digest(expected, s.encode()) for s in signatures]
        return any(matches)


def parse_signature_header(header: str) -> tuple[str, list[str]] | None:
    """The timestamp and every v1 signature of a Stripe-Signature header (None: unusable)."""
    timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamp = value
        elif name == SCHEME and value.isascii():
            signatures.append(value)
    if timestamp is None or not (timestamp.isascii() and timestamp.isdigit()) or not signatures:
        return None
    return timestamp, signatures


def event_id(body: Mapping[str, Any]) -> str | None:
    found = body.get("id")
    return found if isinstance(found, str) and found else None


# --- reading a Checkout Session -------------------------------------------------


def _text(entity: Mapping[str, Any], field: str) -> str:
    value = entity.get(field)
    if not isinstance(value, str) or not value:
        raise NormalizationError(f"stripe checkout session has no valid {field!r}")
    return value


def _amount(session: Mapping[str, Any]) -> int:
    value = session.get("amount_total")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NormalizationError(f"stripe checkout session amount_total {value!r} is invalid")
    return value


def _intent_id(session: Mapping[str, Any]) -> str:
    """The PaymentIntent's id whether the session carries it as an id or expanded."""
    intent = session.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    return intent if isinstance(intent, str) else ""


def payment_id_of(session: Mapping[str, Any]) -> str:
    return _intent_id(session) or _text(session, "id")


def method_of(session: Mapping[str, Any]) -> str:
    """The payment method type when the session offered exactly one; "" when unknown."""
    types = session.get("payment_method_types")
    if isinstance(types, list) and len(types) == 1 and isinstance(types[0], str):
        return types[0]
    return ""


def _intent_failure(session: Mapping[str, Any]) -> tuple[str, str] | None:
    """The expanded PaymentIntent's failure (code, message) when it has failed for good."""
    intent = session.get("payment_intent")
    if not isinstance(intent, dict):
        return None
    found = intent.get("last_payment_error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code = str(error.get("decline_code") or error.get("code") or "")
    message = str(error.get("message") or "")
    if intent.get("status") == "canceled":
        return code or "canceled", message or "payment intent canceled"
    # A completed session still unpaid with a failed attempt: an async method failed.
    if session.get("status") == "complete" and intent.get("status") == "requires_payment_method":
        return code or ASYNC_FAILED, message
    return None


def _settlement(session: Mapping[str, Any]) -> tuple[SnapshotStatus, str, str]:
    """The session's state in the hub's words, with the failure's code and message."""
    if session.get("payment_status") == "paid":
        return "CAPTURED", "", ""
    if session.get("status") == EXPIRED:
        return "FAILED", EXPIRED, "checkout session expired before payment"
    failure = _intent_failure(session)
    if failure is not None:
        return "FAILED", *failure
    return "PENDING", "", ""


def session_snapshot(session: Mapping[str, Any]) -> PaymentSnapshot:
    """What a status query's session (its PaymentIntent expanded) says about the order."""
    status, code, message = _settlement(session)
    settled = status != "PENDING"
    return PaymentSnapshot(
        status,
        order_id=_text(session, "id"),
        # Settled: the id the webhook names too; pending: the intent, if there is one yet.
        payment_id=payment_id_of(session) if settled else _intent_id(session),
        amount_minor=_amount(session),
        currency=_text(session, "currency").upper(),
        method=method_of(session),
        error_code=code,
        error_description=message,
    )


# --- the normalizer ---------------------------------------------------------------


def _kind_of(event_type: str, session: Mapping[str, Any]) -> PaymentEventKind | None:
    if event_type == "checkout.session.completed":
        # "unpaid": an asynchronous method is still settling; its own event follows.
        paid = session.get("payment_status") == "paid"
        return PaymentEventKind.CAPTURED if paid else None
    return {
        "checkout.session.async_payment_succeeded": PaymentEventKind.CAPTURED,
        "checkout.session.async_payment_failed": PaymentEventKind.FAILED,
        "checkout.session.expired": PaymentEventKind.FAILED,
    }.get(event_type)


def _session_of(body: Mapping[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    session = data.get("object") if isinstance(data, dict) else None
    if not isinstance(session, dict) or session.get("object") != "checkout.session":
        raise NormalizationError("stripe checkout event carries no checkout.session object")
    return session


def _created(body: Mapping[str, Any]) -> datetime | None:
    value = body.get("created")
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, UTC)


def _failure(event_type: str) -> tuple[str, str]:
    if event_type == "checkout.session.expired":
        return EXPIRED, "checkout session expired before payment"
    return ASYNC_FAILED, "the asynchronous payment failed"


def normalize_stripe(raw: RawWebhook, body: dict[str, Any]) -> PaymentEvent | None:
    event_type = str(body.get("type") or "")
    if not event_type.startswith("checkout.session."):
        return None  # payment_intent.*, charge.* and others: the session events suffice
    session = _session_of(body)
    kind = _kind_of(event_type, session)
    if kind is None:
        return None
    failed = kind is PaymentEventKind.FAILED
    code, description = _failure(event_type) if failed else (None, None)
    return PaymentEvent(
        header=raw.header.caused(f"payments.payment.{kind.lower()}", source="normalizer"),
        provider=raw.provider,
        provider_event_id=raw.provider_event_id,
        kind=kind,
        payment_id=payment_id_of(session),
        order_id=_text(session, "id"),
        amount_minor=_amount(session),
        currency=_text(session, "currency").upper(),
        method=method_of(session) or None,
        error_code=code,
        error_description=description,
        provider_created_at=_created(body),
    )
