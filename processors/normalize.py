"""Provider webhooks to provider-neutral payment events. Pure.

A webhook type the hub does not act on (order.paid, refund.*) normalizes to
None and is skipped; a webhook the hub should understand but cannot (a
captured payment without an order id) raises NormalizationError and becomes a
dead letter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.events import PaymentEvent, PaymentEventKind, RawWebhook

SOURCE = "normalizer"


class NormalizationError(ValueError):
    pass


_RAZORPAY_KINDS = {
    "payment.authorized": PaymentEventKind.AUTHORIZED,
    "payment.captured": PaymentEventKind.CAPTURED,
    "payment.failed": PaymentEventKind.FAILED,
}


def _require(entity: dict[str, Any], field: str, kind: type) -> Any:
    value = entity.get(field)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise NormalizationError(f"payment entity has no valid {field!r}")
    return value


def _optional_str(entity: dict[str, Any], field: str) -> str | None:
    value = entity.get(field)
    return value if isinstance(value, str) and value else None


def normalize_razorpay(raw: RawWebhook, body: dict[str, Any]) -> PaymentEvent | None:
    kind = _RAZORPAY_KINDS.get(str(body.get("event")))
    if kind is None:
        return None
    try:
        entity = body["payload"]["payment"]["entity"]
    except (KeyError, TypeError):
        raise NormalizationError(f"{body.get('event')} without payload.payment.entity") from None
    if not isinstance(entity, dict):
        raise NormalizationError("payload.payment.entity is not an object")
    created = entity.get("created_at")
    return PaymentEvent(
        header=raw.header.caused(f"payments.payment.{kind.lower()}", source=SOURCE),
        provider=raw.provider,
        provider_event_id=raw.provider_event_id,
        kind=kind,
        payment_id=_require(entity, "id", str),
        order_id=_require(entity, "order_id", str),
        amount_minor=_require(entity, "amount", int),
        currency=_require(entity, "currency", str),
        method=_optional_str(entity, "method"),
        error_code=_optional_str(entity, "error_code"),
        error_description=_optional_str(entity, "error_description"),
        provider_created_at=(
            datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None
        ),
    )


NORMALIZERS: dict[str, Callable[[RawWebhook, dict[str, Any]], PaymentEvent | None]] = {
    "razorpay": normalize_razorpay,
}


def normalize(raw: RawWebhook) -> PaymentEvent | None:
    normalizer = NORMALIZERS.get(raw.provider)
    if normalizer is None:
        raise NormalizationError(f"no normalizer for provider {raw.provider!r}")
    try:
        body = orjson.loads(raw.body)
    except orjson.JSONDecodeError as exc:
        raise NormalizationError(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise NormalizationError("webhook body is not a JSON object")
    return normalizer(raw, body)


def is_duplicate(first_seen: float | None, now: float, retention_seconds: float) -> bool:
    """Seen within the retention window? An entry older than that is as good as gone."""
    return first_seen is not None and now - first_seen < retention_seconds


def expired(entries: dict[str, float], now: float, retention_seconds: float) -> list[str]:
    return [key for key, seen in entries.items() if now - seen >= retention_seconds]
