"""Normalizer stage: raw webhooks -> de-duplicated, provider-neutral payment events.

The dedup table remembers each webhook's `<provider>:<tenant>:<event id>` (the
raw topic's key, so it is partitioned exactly like its input) with the time
it was first seen, and forgets it after HUB_DEDUP_RETENTION_HOURS. Providers
retry one event for a day (Razorpay: 24 h), well inside the default 72 h.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import structlog

from hub.settings import Settings
from hub.topics import PAYMENT_EVENTS, PROCESSOR_TABLES, RAW_WEBHOOKS
from processors.emit import Emit
from processors.normalize import expired, is_duplicate, normalize
from processors.stage import Stage
from schemas.events import RawWebhook, decode_as

log = structlog.get_logger("processors.normalizer")

SEEN_WEBHOOKS = PROCESSOR_TABLES[0]


def register(app: faust.App, stage: Stage, settings: Settings) -> None:
    retention = settings.dedup_retention_hours * 3600
    # use_partitioner: keys here hash (murmur2) to their input partition, so the
    # changelog partition is the same either way, and the sweep below may
    # delete outside of stream iteration.
    seen = app.Table(
        SEEN_WEBHOOKS, default=None, partitions=settings.topic_partitions, use_partitioner=True
    )

    async def handle(value: bytes | None) -> list[Emit]:
        raw = decode_as(stage.codec, value, RawWebhook)
        key = raw.key()
        now = time.time()
        if is_duplicate(seen.get(key), now, retention):
            log.info("webhook.duplicate_dropped", key=key, tenant=raw.header.tenant)
            return []
        payment = normalize(raw)
        seen[key] = now
        if payment is None:
            log.info(
                "webhook.ignored", event_type=raw.provider_event_type, tenant=raw.header.tenant
            )
            return []
        return [Emit(PAYMENT_EVENTS, payment)]

    @app.agent(stage.topic(RAW_WEBHOOKS), name="normalizer")
    async def normalizer(stream: Any) -> None:
        async for event in stream.events():
            await stage.process(event.message, handle(event.value))

    @app.timer(interval=60.0)
    async def forget_old_webhooks() -> None:
        stale = expired(dict(seen.items()), time.time(), retention)
        for key in stale:
            del seen[key]
        if stale:
            log.info("dedup.swept", forgotten=len(stale))
