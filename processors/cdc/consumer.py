"""`hub cdc consume`: Debezium change events -> sync streams and outbound sync commands.

Consume-transform-produce in Kafka transactions: each batch's state records,
change records, connector commands and dead letters are committed together
with the batch's input offsets, or not at all. A consumer killed mid-stream
therefore neither loses a change nor writes one twice, and a command it
wrote once is the only command for that change (the connectors' idempotency
keys, derived from the change's LSN, cover the call itself).

Per-entity order holds end to end: Debezium keys by primary key, the outputs
are keyed by the row (state, changes) or carry it as the ordering key
(commands).
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from hub.dead_letters import Failure, build_dead_letter, source_of, worker_id
from hub.kafka import (
    Record,
    consume_batch,
    consumer_config,
    event_record,
    next_offsets,
    producer_config,
)
from hub.logging import configure_logging
from hub.settings import Settings
from hub.topics import CDC_GROUP, cdc_topic, changes_topic, commands_topic, dlq_topic, state_topic
from processors.cdc.changes import sync_records
from processors.cdc.envelope import Envelope, parse_key, parse_value
from processors.cdc.mapping import DEFAULT_MAPPING, Change, Target, commands_for, load_mapping
from schemas.codec import Codec, SchemaRegistryClient, make_codec
from schemas.events import entity_key

log = structlog.get_logger("cdc")

GROUP_ID = CDC_GROUP
STAGE = "cdc"


@dataclass
class Replays:
    """The newest LSN applied per row: a change Debezium sends again after its own
    restart (it resumes from its last flushed offset) is recognised and skipped."""

    applied: dict[str, int] = field(default_factory=dict)

    def seen(self, row: str, envelope: Envelope) -> bool:
        lsn = envelope.lsn
        if envelope.op == "r" or lsn is None:
            return False
        return lsn <= self.applied.get(row, -1)

    def mark(self, row: str, envelope: Envelope) -> None:
        if envelope.op != "r" and envelope.lsn is not None:
            self.applied[row] = envelope.lsn


@dataclass
class CdcTranslator:
    """One change event in, the records to write out. No I/O."""

    tenant: str
    source: str
    targets: list[Target]
    codec: Codec
    schema_for: Any = None
    replays: Replays = field(default_factory=Replays)

    def records(self, msg: Message) -> list[Record]:
        envelope = parse_value(msg.value(), self.schema_for)
        if envelope is None:
            return []  # Debezium's own tombstone after a delete; ours is written below
        row_id = parse_key(msg.key())
        entity = envelope.table
        row = f"{entity}:{row_id}"
        if self.replays.seen(row, envelope):
            log.info("cdc.replay_skipped", entity=entity, entity_id=row_id, lsn=envelope.lsn)
            return []
        sync = sync_records(envelope, self.tenant, row_id)
        key = entity_key(self.tenant, row_id)
        out: list[Record] = []
        if sync.state is not None:
            out.append(event_record(self.codec, state_topic(self.source, entity), sync.state, key))
        else:
            out.append(Record(state_topic(self.source, entity), key, None, []))  # tombstone
        if sync.change is not None:
            out.append(
                event_record(self.codec, changes_topic(self.source, entity), sync.change, key)
            )
            cause = sync.change.header
            change = Change(
                self.tenant,
                entity,
                row_id,
                envelope.op,
                sync.changed_fields,
                sync.row,
                str(envelope.lsn or envelope.tx_id or envelope.ts_ms),
                cause,
            )
            out += [
                event_record(self.codec, commands_topic(c.provider), c)
                for c in commands_for(change, self.targets)
            ]
        self.replays.mark(row, envelope)
        return out


class CdcConsumer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        codec = make_codec(settings.schema_registry_url)
        registry = (
            SchemaRegistryClient(settings.schema_registry_url)
            if settings.schema_registry_url
            else None
        )
        self.translator = CdcTranslator(
            settings.cdc_tenant,
            settings.cdc_source_name,
            load_mapping(settings.sync_mapping_file or DEFAULT_MAPPING),
            codec,
            registry.schema if registry else None,
        )
        self.codec = codec
        self.worker = worker_id()
        self.topics = [cdc_topic(settings.cdc_source_name, t) for t in settings.tables]
        self.consumer = Consumer(consumer_config(settings, GROUP_ID))
        self.producer = Producer(
            producer_config(
                settings,
                GROUP_ID,
                **{"transactional.id": f"{GROUP_ID}-{self.worker}", "linger.ms": 2},
            )
        )

    def _handle(self, msg: Message) -> list[Record]:
        try:
            return self.translator.records(msg)
        except Exception as exc:  # one bad change must not stop the stream
            letter = build_dead_letter(
                source_of(msg), Failure(exc, retryable=False), stage=STAGE, worker=self.worker
            )
            log.warning(
                "record.dead_lettered",
                stage=STAGE,
                error=str(exc),
                topic=msg.topic(),
                offset=msg.offset(),
            )
            return [event_record(self.codec, dlq_topic(STAGE), letter, msg.key())]

    def run(self, stop: threading.Event) -> None:
        self.producer.init_transactions(30)
        self.consumer.subscribe(self.topics)
        log.info(
            "cdc.started", topics=self.topics, targets=[t.name for t in self.translator.targets]
        )
        try:
            while not stop.is_set():
                messages = [m for m in consume_batch(self.consumer, 500, 0.5) if not m.error()]
                if messages:
                    self._transact(messages)
        finally:
            self.consumer.close()

    def _transact(self, messages: list[Message]) -> None:
        self.producer.begin_transaction()
        try:
            for msg in messages:
                for record in self._handle(msg):
                    self.producer.produce(
                        record.topic, key=record.key, value=record.value, headers=record.headers
                    )
            self.producer.send_offsets_to_transaction(
                next_offsets(messages), self.consumer.consumer_group_metadata()
            )
            self.producer.commit_transaction(60)
        except KafkaException as exc:
            log.error("cdc.transaction_aborted", error=str(exc))
            self.producer.abort_transaction(30)
            self._rewind(messages)

    def _rewind(self, messages: list[Message]) -> None:
        """Back to the last committed offsets: the aborted batch is read again."""
        partitions = {(m.topic() or "", m.partition() or 0) for m in messages}
        committed = self.consumer.committed([TopicPartition(t, p) for t, p in partitions], 10)
        for tp in committed:
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))
        self.translator.replays = Replays()


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, component="cdc-consumer")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    CdcConsumer(settings).run(stop)
