"""SendGrid's Event Webhook: the signed batch of mail events, and its delivery receipts.

Signature (SendGrid's "Signed Event Webhook"; sendgrid-python's
`sendgrid.helpers.eventwebhook.EventWebhook.verify_signature` is the oracle):

- `X-Twilio-Email-Event-Webhook-Signature`: the base64 DER ECDSA signature, P-256
  with SHA-256, of `X-Twilio-Email-Event-Webhook-Timestamp` + the raw body (the
  timestamp's text, then the body's bytes, nothing between);
- the verification key is the account's public key, as SendGrid's dashboard shows it
  (Mail Settings > Event Webhook > Signature Verification): base64 DER
  SubjectPublicKeyInfo. A real account pastes that key into `webhook_public_key`;
  a PEM (with its BEGIN/END lines) is accepted too.

It is a public key, not a secret: `SendGridAccount.webhook_public_key` is a SecretStr
only because the ingress looks up a verifier's key through the account's secret field.

No replay window is enforced: the library checks none, SendGrid documents none, and
whether its retries (for up to 24 hours, unconfirmed) are signed anew is not
documented. The ingress de-duplicates a delivery by its body's hash.

The body is a JSON array of events (the ingress reads it as `{"items": [...]}`):
`{"email", "timestamp", "event", "sg_message_id": "<X-Message-Id>.filter…",
"sg_event_id", "reason"?, "status"?, ...custom_args at the top level}`. The send's
`custom_args` (`idempotency_key`, `command_id`) come back as top-level fields.

Event to receipt: delivered DELIVERED; bounce and dropped UNDELIVERED (error code the
bounce's `status`, "5.1.1", description its `reason`); processed and deferred SENT
(SendGrid retries a deferral itself); open and click READ; spamreport, unsubscribe
and group (un)subscribes are not receipts (left out); any other event SENT with its
name kept. The receipt's `provider_ref` is `sg_message_id` before its first ".": the
X-Message-Id the send's answer carried (`SendGrid.classify`).

Simulated and demo accounts: `event_webhook_keypair(api_key)` derives a P-256 key pair
from the account's API key, so the demo tenant file (catalog/tenant_file.py) can write
the public key and the simulator can sign with the matching private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from providers.spec import NormalizationError
from schemas.events import DeliveryReceipt, RawWebhook, ReceiptStatus

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
CURVE = ec.SECP256R1()
# The order of P-256's base point: a private key is an integer in [1, ORDER - 1].
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

STATUSES: Mapping[str, ReceiptStatus] = {
    "processed": ReceiptStatus.SENT,
    "deferred": ReceiptStatus.SENT,
    "delivered": ReceiptStatus.DELIVERED,
    "bounce": ReceiptStatus.UNDELIVERED,
    "dropped": ReceiptStatus.UNDELIVERED,
    "open": ReceiptStatus.READ,
    "click": ReceiptStatus.READ,
}
# Engagement events that say nothing about delivery: no receipt.
NOT_RECEIPTS = frozenset({"spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe"})


# --- keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class EventWebhookKeys:
    private_key: ec.EllipticCurvePrivateKey
    public_key: str  # base64 DER SubjectPublicKeyInfo, as SendGrid's dashboard shows it


def public_key_text(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def event_webhook_keypair(seed: str) -> EventWebhookKeys:
    """A P-256 key pair derived from `seed` (sha256): demo and simulated accounts only.

    The demo tenant file derives it from the account's API key and writes its public
    key; the simulator derives the private key from the same API key to sign."""
    # The private scalar is sha256(seed) as a big-endian integer, reduced into [1, n - 1].
    digest = int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest(), "big")
    private_key = ec.derive_private_key(digest % ORDER or 1, CURVE)
    return EventWebhookKeys(private_key, public_key_text(private_key.public_key()))


@lru_cache(maxsize=64)
def load_public_key(text: str) -> ec.EllipticCurvePublicKey | None:
    """The account's verification key (base64 DER, or PEM); None when it is not a P-256 key."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            der = base64.b64decode("".join(text.split()), validate=True)
            key = serialization.load_der_public_key(der)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != CURVE.name:
        return None
    return key


def sign_events(
    body: bytes, private_key: ec.EllipticCurvePrivateKey, timestamp: int | None = None
) -> dict[str, str]:
    """The two headers SendGrid signs an event batch with (for the simulator and tests)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = private_key.sign(stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    return {
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
        TIMESTAMP_HEADER: stamp,
    }


# How far a batch's signed timestamp may be from now. Assumed, not documented by
# SendGrid: it signs each POST when it sends it, retries included (as Stripe and
# Svix do); a retry carrying its first attempt's timestamp would be refused.
TOLERANCE_SECONDS = 300


class SendGridEventVerifier:
    """ECDSA P-256/SHA-256 over timestamp + body, checked with the account's public key."""

    signature_header = SIGNATURE_HEADER
    timestamp_header = TIMESTAMP_HEADER
    event_id_header: str | None = None  # a batch has no id: the ingress hashes the body
    # Signed with SendGrid's private key, checked with a public one: there is no shared
    # secret to sign with (tests/unit/test_provider_declarations.py skips the HMAC check).
    certificate_signed = True

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def sign(self, body: bytes, secret: str) -> str:
        raise NotImplementedError("SendGrid signs with a private key: use sign_events()")

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        raise NotImplementedError("SendGrid signs with a private key: use sign_events()")

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        received = headers.get(SIGNATURE_HEADER, "").strip()
        timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
        if not received or not (timestamp.isascii() and timestamp.isdigit()):
            return False
        # The timestamp is signed, but SendGrid documents no window: without one, a
        # captured batch would verify for ever. Stripe's five minutes, either way.
        if abs(self.clock() - int(timestamp)) > TOLERANCE_SECONDS:
            return False
        key = load_public_key(secret)
        if key is None:
            return False
        try:
            signature = base64.b64decode(received, validate=True)
            key.verify(signature, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            return False
        return True


# --- what the ingress records ------------------------------------------------------


def event_type(fields: Mapping[str, Any]) -> str | None:
    """The batch's distinct event names, in their first order ("processed,delivered")."""
    items = fields.get("items")
    if not isinstance(items, list):
        return None
    names = [i["event"] for i in items if isinstance(i, dict) and isinstance(i.get("event"), str)]
    return ",".join(dict.fromkeys(names)) or None


# --- the normalizer ---------------------------------------------------------------


def _text(item: Mapping[str, Any], field: str) -> str | None:
    value = item.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return (value.strip() or None) if isinstance(value, str) else None


def _occurred(item: Mapping[str, Any]) -> datetime | None:
    value = item.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def _receipt(raw: RawWebhook, item: Mapping[str, Any]) -> DeliveryReceipt | None:
    event = _text(item, "event")
    if event is None:
        raise NormalizationError("sendgrid event has no 'event'")
    if event in NOT_RECEIPTS:
        return None
    message_id = _text(item, "sg_message_id")
    if message_id is None:
        raise NormalizationError(f"sendgrid {event!r} event has no 'sg_message_id'")
    status = STATUSES.get(event, ReceiptStatus.SENT)
    failed = status is ReceiptStatus.UNDELIVERED
    return DeliveryReceipt(
        header=raw.header.caused(DeliveryReceipt.EVENT_TYPE, source="normalizer"),
        provider=raw.provider,
        provider_event_id=_text(item, "sg_event_id") or f"{message_id}:{event}",
        provider_ref=message_id.split(".", 1)[0],
        status=status,
        provider_status=event,
        recipient=_text(item, "email"),
        error_code=_text(item, "status") if failed else None,
        error_description=_text(item, "reason") if failed else None,
        occurred_at=_occurred(item),
        idempotency_key=_text(item, "idempotency_key"),
    )


def normalize_sendgrid_events(
    raw: RawWebhook, fields: dict[str, Any]
) -> list[DeliveryReceipt] | None:
    items = fields.get("items")
    if not isinstance(items, list):
        raise NormalizationError("sendgrid event webhook body is not a JSON array of events")
    receipts: list[DeliveryReceipt] = []
    for item in items:
        if not isinstance(item, dict):
            raise NormalizationError("sendgrid event webhook holds an event that is not an object")
        receipt = _receipt(raw, item)
        if receipt is not None:
            receipts.append(receipt)
    return receipts or None  # only engagement events: nothing for the hub
