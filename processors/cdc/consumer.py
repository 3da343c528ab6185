"""`hub cdc consume`: Debezium change events -> sync streams and outbound sync commands.

Consume-transform-produce on the transactional stage runner (processors.runner):
each batch's state records, change records, connector commands, dead letters
and the newest LSN per row are committed together with the batch's input
offsets, or not at all. A consumer killed mid-stream
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
from typing import Any, Protocol

import structlog
from confluent_kafka import Message

from core.kafka import Record, event_record
from core.logging import configure_logging
from core.settings import Settings
from core.topics import CDC_GROUP, CDC_ROWS, cdc_topic, changes_topic, commands_topic, state_topic
from processors.cdc.changes import sync_records
from processors.cdc.envelope import Envelope, parse_key, parse_value
from processors.cdc.mapping import DEFAULT_MAPPING, Change, Target, commands_for, load_mapping
from processors.runner import Stage, StageRunner, StepContext
from schemas.codec import Codec, SchemaRegistryClient, make_codec
from schemas.events import entity_key

log = structlog.get_logger("cdc")

GROUP_ID = CDC_GROUP
STAGE = "cdc"


class Rows(Protocol):
    """Where applied LSNs are kept: a stage table in the runner, a dict in tests."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class MemoryRows(dict[str, Any]):
    def set(self, key: str, value: Any) -> None:
        self[key] = value


@dataclass
class Replays:
    """The newest LSN applied per row: a change Debezium sends again after its own
    restart (it resumes from its last flushed offset) is recognised and skipped.
    In the runner this is the `cdc-rows` table, restored after a restart of
    the consumer too."""

    applied: Rows = field(default_factory=MemoryRows)

    def seen(self, row: str, envelope: Envelope) -> bool:
        lsn = envelope.lsn
        if envelope.op == "r" or lsn is None:
            return False
        return bool(lsn <= self.applied.get(row, -1))

    def mark(self, row: str, envelope: Envelope) -> None:
        if envelope.op != "r" and envelope.lsn is not None:
            self.applied.set(row, envelope.lsn)


@dataclass
class CdcTranslator:
    """One change event in, the records to write out. No I/O."""

    tenant: str
    source: str
    targets: list[Target]
    codec: Codec
    schema_for: Any = None
    replays: Replays = field(default_factory=Replays)

    def records(self, msg: Message, replays: Replays | None = None) -> list[Record]:
        replays = replays or self.replays
        envelope = parse_value(msg.value(), self.schema_for)
        if envelope is None:
            return []  # Debezium's own tombstone after a delete; ours is written below
        row_id = parse_key(msg.key())
        entity = envelope.table
        row = f"{entity}:{row_id}"
        if replays.seen(row, envelope):
            log.info("cdc.replay_skipped", entity=entity, entity_id=row_id, lsn=envelope.lsn)
            return []
        out = self._sync(envelope, row_id)
        replays.mark(row, envelope)
        return out

    def _sync(self, envelope: Envelope, row_id: str) -> list[Record]:
        entity = envelope.table
        sync = sync_records(envelope, self.tenant, row_id)
        key = entity_key(self.tenant, row_id)
        out: list[Record] = []
        if sync.state is not None:
            out.append(event_record(self.codec, state_topic(self.source, entity), sync.state, key))
        else:
            out.append(Record(state_topic(self.source, entity), key, None, []))  # tombstone
        if sync.change is None:
            return out
        out.append(event_record(self.codec, changes_topic(self.source, entity), sync.change, key))
        change = Change(
            self.tenant,
            entity,
            row_id,
            envelope.op,
            sync.changed_fields,
            sync.row,
            str(envelope.lsn or envelope.tx_id or envelope.ts_ms),
            sync.change.header,
        )
        return out + [
            event_record(self.codec, commands_topic(c.provider), c)
            for c in commands_for(change, self.targets)
        ]


def translator_for(settings: Settings, codec: Codec) -> CdcTranslator:
    registry = (
        SchemaRegistryClient(settings.schema_registry_url) if settings.schema_registry_url else None
    )
    return CdcTranslator(
        settings.cdc_tenant,
        settings.cdc_source_name,
        load_mapping(settings.sync_mapping_file or DEFAULT_MAPPING),
        codec,
        registry.schema if registry else None,
    )


def stage(settings: Settings, codec: Codec) -> Stage:
    translator = translator_for(settings, codec)
    topics = tuple(cdc_topic(settings.cdc_source_name, t) for t in settings.tables)

    def step(ctx: StepContext, msg: Message) -> list[Record]:
        return translator.records(msg, Replays(ctx.table(CDC_ROWS)))

    log.info("cdc.targets", topics=topics, targets=[t.name for t in translator.targets])
    return Stage(STAGE, topics, step, tables=(CDC_ROWS,))


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, component="cdc-consumer")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    codec = make_codec(settings.schema_registry_url)
    StageRunner(settings, GROUP_ID, [stage(settings, codec)], codec).run(stop)
