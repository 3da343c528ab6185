"""Provider webhooks to provider-neutral payment events. Pure.

Each provider's own translation is declared with it (providers/<name>.py);
this dispatches to it.

A webhook type the hub does not act on (order.paid, refund.*) normalizes to
None and is skipped; a webhook the hub should understand but cannot (a
captured payment without an order id) raises NormalizationError and becomes a
dead letter.
"""

from __future__ import annotations

import orjson

import providers
from providers.spec import NormalizationError
from schemas.events import PaymentEvent, RawWebhook

__all__ = ["SOURCE", "NormalizationError", "expired", "is_duplicate", "normalize"]

SOURCE = "normalizer"


def normalize(raw: RawWebhook) -> PaymentEvent | None:
    declared = providers.registry().get(raw.provider)
    if declared is None or declared.webhooks is None:
        raise NormalizationError(f"no normalizer for provider {raw.provider!r}")
    try:
        body = orjson.loads(raw.body)
    except orjson.JSONDecodeError as exc:
        raise NormalizationError(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise NormalizationError("webhook body is not a JSON object")
    return declared.webhooks.normalize(raw, body)


def is_duplicate(first_seen: float | None, now: float, retention_seconds: float) -> bool:
    """Seen within the retention window? An entry older than that is as good as gone."""
    return first_seen is not None and now - first_seen < retention_seconds


def expired(entries: dict[str, float], now: float, retention_seconds: float) -> list[str]:
    return [key for key, seen in entries.items() if now - seen >= retention_seconds]
