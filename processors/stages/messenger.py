"""Messenger stage: notification requests and bulk sends -> provider commands, and
their results and receipts -> each message's story and every bulk's report.

Keyed by tenant (NotificationRequest and BulkSendRequest are): a school's
messages, quotas, per-recipient limits, receipt links and bulk sends live in
one partition's table. Connector results (keyed by command) and delivery
receipts (keyed by tenant, from the normalizer) reach it re-keyed through
notifications.updates.v1. Each decision, its table changes and what it emits
commit in one transaction (processors.runner).
"""

from __future__ import annotations

import structlog
from confluent_kafka import Message

import providers
from core.kafka import Record
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import (
    BULK_REQUESTS,
    MESSAGE_STATES,
    NOTIFICATION_REQUESTS,
    NOTIFICATION_UPDATES,
    results_topic,
)
from processors import bulk, message_flow
from processors.emit import Emit, to_records
from processors.message_policy import CHANNEL_CATEGORY
from processors.messaging import MessengerContext
from processors.messaging_config import MessagingConfig, load_messaging
from processors.runner import Stage, StepContext
from processors.state import Table
from schemas.codec import Codec
from schemas.events import (
    BulkSendRequest,
    ConnectorResult,
    DeliveryReceipt,
    Event,
    NotificationRequest,
    UnexpectedEventError,
    decode_as,
    decode_event,
)

log = structlog.get_logger("processors.stages.messenger")

NAME = "messenger"
MESSAGING = tuple(
    name for name, p in providers.registry().items() if p.category in set(CHANNEL_CATEGORY.values())
)
RESULT_TOPICS = tuple(results_topic(p) for p in MESSAGING)


class Messenger:
    def __init__(self, ctx: MessengerContext, codec: Codec, table: str = MESSAGE_STATES) -> None:
        self.ctx = ctx
        self.codec = codec
        self.table = table
        # Bulks whose report is due; None: all (after a start, every report once).
        self.dirty: set[str] | None = None

    def step(self, ctx: StepContext, msg: Message) -> list[Record]:
        topic = msg.topic()
        if topic in RESULT_TOPICS:
            return self._rekey(msg)
        table = ctx.table(self.table)
        event = decode_event(self.codec, msg.value())
        if isinstance(event, NotificationRequest):
            emits = message_flow.on_request(table, event, self.ctx, ctx.now)
        elif isinstance(event, BulkSendRequest):
            emits = bulk.accept_part(table, event, self.ctx, ctx.now)
            self._touch(event.header.tenant, event.bulk_id)
        else:
            emits = self._update(table, event, ctx.now)
        return to_records(self.codec, emits)

    def _rekey(self, msg: Message) -> list[Record]:
        result = decode_as(self.codec, msg.value(), ConnectorResult)
        if "message" not in result.context:
            return []  # not one of the messenger's commands (a directory sync's)
        update = Emit(NOTIFICATION_UPDATES, result, key=result.header.tenant)
        return to_records(self.codec, [update])

    def _update(self, table: Table, event: Event, now: float) -> list[Emit]:
        if isinstance(event, ConnectorResult):
            if event.context.get("bulk"):
                self._touch(event.header.tenant, event.context["bulk"])
            return message_flow.on_result(table, event, self.ctx, now)
        if isinstance(event, DeliveryReceipt):
            emits = message_flow.on_receipt(table, event, self.ctx, now)
            for emit in emits:
                bulk_id = getattr(emit.event, "bulk_id", None)
                if bulk_id:
                    self._touch(event.header.tenant, bulk_id)
            return emits
        raise UnexpectedEventError(f"the messenger does not take {event.SCHEMA}")

    def _touch(self, tenant: str, bulk_id: str) -> None:
        if self.dirty is not None:
            self.dirty.add(bulk.bulk_key(tenant, bulk_id))

    def sweep(self, ctx: StepContext) -> list[Record]:
        table = ctx.table(self.table)
        emits = message_flow.tick(table, self.ctx, ctx.now)
        for emit in emits:
            bulk_id = getattr(emit.event, "bulk_id", None)
            if bulk_id:
                self._touch(emit.event.header.tenant, bulk_id)
        dirty = self.dirty
        every = {bulk.bulk_key(b.tenant, b.bulk_id) for b in bulk.bulks(table)}
        released, _ = bulk.tick(table, self.ctx, ctx.now, every if dirty is None else dirty)
        if dirty is not None:
            dirty -= every
        else:
            self.dirty = set()
        return to_records(self.codec, emits + released)


def stage(
    settings: Settings,
    tenants: TenantDirectory,
    codec: Codec,
    *,
    config: MessagingConfig | None = None,
    is_open: message_flow.OpenCheck | None = None,
) -> Stage:
    ctx = MessengerContext(
        tenants=tenants,
        config=config or load_messaging(settings.messaging_config),
        is_open=is_open or (lambda _tenant, _provider, _label: False),
        webhook_url_template=settings.webhook_url_template,
        receipt_deadline_seconds=settings.receipt_deadline_seconds,
    )
    messenger = Messenger(ctx, codec)
    return Stage(
        NAME,
        (*RESULT_TOPICS, NOTIFICATION_REQUESTS, BULK_REQUESTS, NOTIFICATION_UPDATES),
        messenger.step,
        tables=(MESSAGE_STATES,),
        tick=messenger.sweep,
        tick_seconds=settings.messenger_tick_seconds,
    )
