"""Mailgun's webhooks: the signature in the body, and events to delivery receipts.

Verification (Mailgun "Securing Webhooks"; the official SDK's
`mailgun.security.SecurityGuard.verify_webhook` is the oracle): the JSON body carries
`{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`, and
`signature` is the lowercase hex HMAC-SHA256 of `timestamp + token` (no separator)
keyed with the domain's HTTP webhook signing key. The body itself is not signed;
the ingress de-duplicates on `event-data.id`. A timestamp more than 300 s from now is
refused (providers.md; SDK 1.10.0's own default is 900 s). Mailgun also suggests
remembering used tokens: the event id dedup covers a replayed delivery.

Events (`event-data.event`) to ReceiptStatus:

| event | severity | status |
|---|---|---|
| delivered | | DELIVERED |
| failed | permanent | UNDELIVERED (error code `delivery-status.code`, "550") |
| failed | temporary | SENT (Mailgun retries it) |
| opened, clicked | | READ |
| accepted, anything else | | SENT (provider_status kept) |
| complained, unsubscribed | | no receipt: engagement, not delivery |

`provider_ref` is `event-data.message.headers.message-id`, the send's id without its
angle brackets (`Mailgun.classify` strips them the same way); the command's key comes
back in `event-data.user-variables.idempotency_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from providers.spec import NormalizationError
from schemas.events import DeliveryReceipt, RawWebhook, ReceiptStatus

TOLERANCE_SECONDS = 300
STATUSES: Mapping[str, ReceiptStatus] = {
    "accepted": ReceiptStatus.SENT,
    "delivered": ReceiptStatus.DELIVERED,
    "opened": ReceiptStatus.READ,
    "clicked": ReceiptStatus.READ,
}
NOT_RECEIPTS = frozenset({"complained", "unsubscribed"})


def signature_of(timestamp: str, token: str, signing_key: str) -> str:
    message = (timestamp + token).encode("utf-8")
    return hmac.new(signing_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_block(signing_key: str, token: str, timestamp: int | None = None) -> dict[str, str]:
    """The body's `signature` object as Mailgun sends it (the simulator and tests)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "timestamp": stamp,
        "token": token,
        "signature": signature_of(stamp, token, signing_key),
    }


def _signature(body: bytes) -> tuple[str, str, str] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    block = parsed.get("signature") if isinstance(parsed, dict) else None
    if not isinstance(block, dict):
        return None
    parts = (block.get("timestamp"), block.get("token"), block.get("signature"))
    if isinstance(parts[0], int) and not isinstance(parts[0], bool):
        parts = (str(parts[0]), parts[1], parts[2])
    timestamp, token, signature = parts
    if not (isinstance(timestamp, str) and isinstance(token, str) and isinstance(signature, str)):
        return None
    if not (timestamp.isascii() and timestamp.isdigit()) or not token or not signature:
        return None
    return timestamp, token, signature


class MailgunVerifier:
    """hex HMAC-SHA256(signing key, timestamp + token), all three inside the JSON body."""

    # Nothing is in a header: the ingress skips its "missing signature" check.
    signature_header = ""
    event_id_header: str | None = None  # the id is in the body: event-data.id

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def sign(self, body: bytes, secret: str) -> str:
        """The hex HMAC of exactly these bytes (for Mailgun: timestamp + token)."""
        return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {}  # Mailgun signs in the body (signature_block)

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        found = _signature(body)
        if found is None or not secret:
            return False
        timestamp, token, signature = found
        if abs(self.clock() - int(timestamp)) > TOLERANCE_SECONDS:
            return False
        expected = signature_of(timestamp, token, secret)
        return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


# --- what the ingress records ------------------------------------------------------


def _event_data(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    data = fields.get("event-data")
    return data if isinstance(data, dict) else None


def event_type(fields: Mapping[str, Any]) -> str | None:
    data = _event_data(fields)
    found = data.get("event") if data else None
    return found if isinstance(found, str) and found else None


def event_id(fields: Mapping[str, Any]) -> str | None:
    data = _event_data(fields)
    found = data.get("id") if data else None
    return found if isinstance(found, str) and found else None


# --- the normalizer ---------------------------------------------------------------


def _text(entity: Mapping[str, Any], field: str) -> str | None:
    value = entity.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return (value.strip() or None) if isinstance(value, str) else None


def _message_id(data: Mapping[str, Any]) -> str:
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    found = _text(headers, "message-id") if isinstance(headers, dict) else None
    if found is None:
        raise NormalizationError("mailgun event has no message.headers.message-id")
    return found.removeprefix("<").removesuffix(">")


def _status(event: str, severity: str | None) -> tuple[ReceiptStatus, str]:
    if event == "failed":
        final = severity == "permanent"
        status = ReceiptStatus.UNDELIVERED if final else ReceiptStatus.SENT
        return status, f"failed:{severity}" if severity else "failed"
    return STATUSES.get(event, ReceiptStatus.SENT), event


def _failure(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    found = data.get("delivery-status")
    delivery: Mapping[str, Any] = found if isinstance(found, dict) else {}
    code = _text(delivery, "code")
    description = (
        _text(delivery, "message") or _text(delivery, "description") or _text(data, "reason")
    )
    return code, description


def _occurred(data: Mapping[str, Any]) -> datetime | None:
    value = data.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def _idempotency_key(data: Mapping[str, Any]) -> str | None:
    variables = data.get("user-variables")
    return _text(variables, "idempotency_key") if isinstance(variables, dict) else None


def normalize_mailgun(raw: RawWebhook, fields: dict[str, Any]) -> DeliveryReceipt | None:
    data = _event_data(fields)
    if data is None:
        raise NormalizationError("mailgun webhook has no event-data object")
    event = _text(data, "event")
    if event is None:
        raise NormalizationError("mailgun event-data has no 'event'")
    if event in NOT_RECEIPTS:
        return None
    message_id = _message_id(data)
    status, provider_status = _status(event, _text(data, "severity"))
    failed = event == "failed"
    code, description = _failure(data) if failed else (None, None)
    return DeliveryReceipt(
        header=raw.header.caused(DeliveryReceipt.EVENT_TYPE, source="normalizer"),
        provider=raw.provider,
        provider_event_id=_text(data, "id") or f"{message_id}:{provider_status}",
        provider_ref=message_id,
        status=status,
        provider_status=provider_status,
        recipient=_text(data, "recipient"),
        error_code=code,
        error_description=description,
        occurred_at=_occurred(data),
        idempotency_key=_idempotency_key(data),
    )
