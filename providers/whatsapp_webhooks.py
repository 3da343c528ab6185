"""WhatsApp Cloud API webhooks to the hub: the subscription check, the signature, the receipts.

Facts (../shared/providers.md section 15; Meta's "Webhooks" and "Status messages" pages):

- Subscription check: when the callback URL is configured in the app dashboard Meta calls
  it once with `GET ?hub.mode=subscribe&hub.verify_token=<yours>&hub.challenge=<n>`; the
  answer is 200 with the challenge as the plain-text body if the token is yours, else 403.
  `answer_subscription` decides, against every enabled account's `verify_token`.
- Every event is a POST of JSON signed with the app's secret:
  `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(key=app secret, msg=raw body)>`. There
  is no timestamp (no replay window): a redelivery is deduplicated on wamid + status.
  Meta publishes no test vector (unconfirmed); the construction is GitHub's, whose
  published vector the tests check, with the `pywa` package's validator as a second oracle.
- Status updates: `entry[].changes[].value.statuses[]`, each
  `{"id": "wamid...", "status": "sent"|"delivered"|"read"|"failed", "timestamp": "<unix s>",
  "recipient_id", "biz_opaque_callback_data"?, "errors"?: [{"code", "title", ...}]}`.
  Order is not guaranteed; `read` only comes when the user has read receipts on.
  Inbound `messages` (a parent's reply) and other fields (template status, account
  updates) are not receipts: ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from providers.spec import NormalizationError
from schemas.events import DeliveryReceipt, RawWebhook, ReceiptStatus

SIGNATURE_HEADER = "x-hub-signature-256"
SCHEME = "sha256="
# The subscription check's query parameters.
MODE, VERIFY_TOKEN, CHALLENGE = "hub.mode", "hub.verify_token", "hub.challenge"
SUBSCRIBE = "subscribe"
# A challenge is a short number; anything longer is not Meta's and is not echoed.
MAX_CHALLENGE = 256

STATUSES = {
    "sent": ReceiptStatus.SENT,  # Meta has it and sent it on: not final
    "delivered": ReceiptStatus.DELIVERED,
    "read": ReceiptStatus.READ,
    "failed": ReceiptStatus.UNDELIVERED,
}


class WhatsAppVerifier:
    """`X-Hub-Signature-256`: the hex HMAC-SHA256 of the raw body under the app secret."""

    signature_header = SIGNATURE_HEADER
    # No delivery id header: `event_id` reads wamid + status from the signed body.
    event_id_header: str | None = None

    def sign(self, body: bytes, secret: str) -> str:
        digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        return SCHEME + digest

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        return {SIGNATURE_HEADER: self.sign(body, secret)}

    def verify(self, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        given = headers.get(SIGNATURE_HEADER, "").strip()
        if not secret or not given.startswith(SCHEME) or not given.isascii():
            return False
        expected = self.sign(body, secret)
        # Hex digits are case-insensitive; Meta sends lower case.
        digest = given[len(SCHEME) :].lower()
        return hmac.compare_digest(expected.encode(), (SCHEME + digest).encode())


def answer_subscription(query: Mapping[str, str], tokens: Sequence[str]) -> str | None:
    """The challenge to echo when the verify token is one of `tokens`; None: refuse (403)."""
    challenge = query.get(CHALLENGE)
    given = query.get(VERIFY_TOKEN, "")
    if query.get(MODE) != SUBSCRIBE or not challenge or not given:
        return None
    if len(challenge) > MAX_CHALLENGE:
        return None
    # Every token is compared, each in constant time.
    matches = [hmac.compare_digest(given.encode(), t.encode()) for t in tokens if t]
    return challenge if any(matches) else None


# --- reading a delivery ---------------------------------------------------------------


def _changes(body: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise NormalizationError("whatsapp webhook has no entry array")
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise NormalizationError("whatsapp webhook entry has no changes array")
        for change in changes:
            if not isinstance(change, dict):
                raise NormalizationError("whatsapp webhook change is not an object")
            yield change


def _statuses(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for change in _changes(body):
        value = change.get("value")
        statuses = value.get("statuses") if isinstance(value, dict) else None
        if change.get("field") != "messages" or statuses is None:
            continue  # inbound messages, template or account updates: no receipt
        if not isinstance(statuses, list) or not all(isinstance(s, dict) for s in statuses):
            raise NormalizationError("whatsapp statuses is not an array of objects")
        found.extend(statuses)
    return found


def _one_status(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    try:
        statuses = _statuses(body)
    except NormalizationError:
        return None
    return statuses[0] if len(statuses) == 1 else None


def event_id(body: Mapping[str, Any]) -> str | None:
    """wamid:status for a delivery of one status (Meta's usual); else the body's hash."""
    status = _one_status(body)
    if status is None:
        return None
    wamid, word = status.get("id"), status.get("status")
    return f"{wamid}:{word}" if isinstance(wamid, str) and isinstance(word, str) else None


def event_type(body: Mapping[str, Any]) -> str | None:
    status = _one_status(body)
    if status is not None and isinstance(status.get("status"), str):
        return f"status.{status['status']}"
    try:
        fields = {str(c.get("field")) for c in _changes(body)}
    except NormalizationError:
        return None
    return fields.pop() if len(fields) == 1 else None


def _text(status: Mapping[str, Any], field: str) -> str:
    value = status.get(field)
    if not isinstance(value, str) or not value:
        raise NormalizationError(f"whatsapp status has no valid {field!r}")
    return value


def _occurred(status: Mapping[str, Any]) -> datetime | None:
    value = status.get("timestamp")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    return None


def _failure(status: Mapping[str, Any]) -> tuple[str | None, str | None]:
    errors = status.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return None, None
    code = first.get("code")
    title = first.get("title") or first.get("message")
    return (
        str(code) if code is not None else None,
        str(title) if title else None,
    )


def _receipt(raw: RawWebhook, status: Mapping[str, Any]) -> DeliveryReceipt:
    wamid, word = _text(status, "id"), _text(status, "status")
    code, description = _failure(status)
    recipient = status.get("recipient_id")
    opaque = status.get("biz_opaque_callback_data")
    return DeliveryReceipt(
        header=raw.header.caused(DeliveryReceipt.EVENT_TYPE, source="normalizer"),
        provider=raw.provider,
        provider_event_id=f"{wamid}:{word}",
        provider_ref=wamid,
        status=STATUSES.get(word, ReceiptStatus.SENT),  # unknown words: on its way, kept
        provider_status=word,
        recipient=recipient if isinstance(recipient, str) and recipient else None,
        error_code=code,
        error_description=description,
        occurred_at=_occurred(status),
        idempotency_key=opaque if isinstance(opaque, str) and opaque else None,
    )


def normalize_whatsapp(raw: RawWebhook, body: dict[str, Any]) -> list[DeliveryReceipt] | None:
    """Every status update of the delivery as a receipt; None when it carries none."""
    receipts = [_receipt(raw, status) for status in _statuses(body)]
    return receipts or None
