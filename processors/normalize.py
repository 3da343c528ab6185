"""Provider webhooks to provider-neutral payment events. Pure.

Each provider's own translation is declared with it (providers/<name>.py);
this dispatches to it.

A webhook type the hub does not act on (order.paid, refund.*) normalizes to
None and is skipped; a webhook the hub should understand but cannot (a
captured payment without an order id) raises NormalizationError and becomes a
dead letter.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson

import providers
from providers.payments import FollowUp
from providers.spec import NormalizationError
from schemas.events import (
    ConnectorCommand,
    DeliveryReceipt,
    PaymentEvent,
    RawWebhook,
)

__all__ = [
    "SOURCE",
    "FollowUp",
    "NormalizationError",
    "expired",
    "follow_up_command",
    "is_duplicate",
    "normalize",
]

SOURCE = "normalizer"


def _fields(raw: RawWebhook, body_format: str, arrays: bool = False) -> dict[str, object]:
    if body_format != "json":
        try:
            return dict(parse_qsl(raw.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise NormalizationError(f"webhook body is not UTF-8: {exc}") from exc
    try:
        body = orjson.loads(raw.body)
    except orjson.JSONDecodeError as exc:
        raise NormalizationError(f"webhook body is not JSON: {exc}") from exc
    if isinstance(body, list) and arrays:
        return {"items": body}  # a batch of events, as the ingress read it
    if not isinstance(body, dict):
        raise NormalizationError("webhook body is not a JSON object")
    return body


def normalize(
    raw: RawWebhook,
) -> PaymentEvent | FollowUp | DeliveryReceipt | list[DeliveryReceipt] | None:
    declared = providers.registry().get(raw.provider)
    if declared is None or declared.webhooks is None:
        raise NormalizationError(f"no normalizer for provider {raw.provider!r}")
    webhooks = declared.webhooks
    return webhooks.normalize(raw, _fields(raw, webhooks.body_format, webhooks.json_arrays))


def follow_up_command(raw: RawWebhook, follow_up: FollowUp) -> ConnectorCommand:
    """The call that settles what a webhook could only announce, on the gateway's account
    that signed it. Keyed by the delivery: a redelivered webhook asks once."""
    payload = follow_up.payload()
    return ConnectorCommand(
        header=raw.header.caused(f"connector.{payload.OPERATION}", source=SOURCE),
        idempotency_key=f"{payload.OPERATION}:{raw.provider}:{raw.provider_event_id}",
        provider=raw.provider,
        payload=payload,
        context={"order_id": follow_up.order_id, "reason": follow_up.reason},
        account=raw.account,
    )


def is_duplicate(first_seen: float | None, now: float, retention_seconds: float) -> bool:
    """Seen within the retention window? An entry older than that is as good as gone."""
    return first_seen is not None and now - first_seen < retention_seconds


def expired(entries: dict[str, float], now: float, retention_seconds: float) -> list[str]:
    return [key for key, seen in entries.items() if now - seen >= retention_seconds]
