"""Normalizer stage: raw webhooks -> de-duplicated, provider-neutral payment events
and delivery receipts.

The dedup table remembers each webhook's `<provider>:<tenant>:<event id>` (the
raw topic's key, so it is partitioned exactly like its input) with the time
it was first seen, and forgets it after HUB_DEDUP_RETENTION_HOURS. Providers
retry one event for a day (Razorpay: 24 h), well inside the default 72 h.
The entry and the payment event it goes with are written in one transaction:
a webhook is never "seen" without its event.
"""

from __future__ import annotations

import structlog
from confluent_kafka import Message

from core.kafka import Record
from core.settings import Settings
from core.topics import (
    NOTIFICATION_UPDATES,
    PAYMENT_EVENTS,
    RAW_WEBHOOKS,
    SEEN_WEBHOOKS,
    commands_topic,
)
from processors.emit import Emit, to_records
from processors.normalize import FollowUp, expired, follow_up_command, is_duplicate, normalize
from processors.runner import Stage, StepContext
from schemas.codec import Codec
from schemas.events import DeliveryReceipt, RawWebhook, decode_as

log = structlog.get_logger("processors.stages.normalizer")

SWEEP_SECONDS = 60.0


def stage(settings: Settings, codec: Codec) -> Stage:
    retention = settings.dedup_retention_hours * 3600

    def step(ctx: StepContext, msg: Message) -> list[Record]:
        raw = decode_as(codec, msg.value(), RawWebhook)
        key = raw.key()
        seen = ctx.table(SEEN_WEBHOOKS)
        if is_duplicate(seen.get(key), ctx.now, retention):
            log.info("webhook.duplicate_dropped", key=key, tenant=raw.header.tenant)
            return []
        payment = normalize(raw)
        seen.set(key, ctx.now)
        if payment is None:
            log.info(
                "webhook.ignored", event_type=raw.provider_event_type, tenant=raw.header.tenant
            )
            return []
        if isinstance(payment, FollowUp):
            command = follow_up_command(raw, payment)
            log.info(
                "webhook.follow_up",
                operation=command.operation,
                order_id=payment.order_id,
                tenant=raw.header.tenant,
            )
            return to_records(codec, [Emit(commands_topic(raw.provider), command)])
        if isinstance(payment, DeliveryReceipt | list):
            receipts = payment if isinstance(payment, list) else [payment]
            # The messenger keys a tenant's messages by tenant (processors.messaging).
            return to_records(codec, [Emit(NOTIFICATION_UPDATES, r) for r in receipts])
        return to_records(codec, [Emit(PAYMENT_EVENTS, payment)])

    def forget_old_webhooks(ctx: StepContext) -> list[Record]:
        seen = ctx.table(SEEN_WEBHOOKS)
        stale = expired(dict(seen.items()), ctx.now, retention)
        for key in stale:
            seen.delete(key)
        if stale:
            log.info("dedup.swept", forgotten=len(stale), partition=ctx.partition)
        return []

    return Stage(
        "normalizer",
        (RAW_WEBHOOKS,),
        step,
        tables=(SEEN_WEBHOOKS,),
        tick=forget_old_webhooks,
        tick_seconds=SWEEP_SECONDS,
    )
