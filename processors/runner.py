"""The transactional stage runner: every stateful stage of the hub runs on it.

Per batch, one Kafka transaction holds:
1. the outputs of every record (the stages' pure step functions decide them),
2. a dead letter for every record a step could not process (with the reason),
3. the batch's state changes, on the stages' compacted state topics,
4. the batch's input offsets.
Either all of it becomes visible to read_committed consumers or none of it.
A process killed at any point (SIGKILL included) therefore never leaves a
state that has "seen" an input whose outputs are missing: the input is read
again, against the state as it was before it.

State lives in memory, per input partition, and is restored from its state
topic (read_committed, up to the log's high watermark) when the partition is
assigned. State records are written to the same partition number as the
input record that caused them, and the group uses the range assignor, so an
instance owns partition p of every input and of every state topic at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from core.dead_letters import Failure, build_dead_letter, source_of, worker_id
from core.kafka import (
    FatalConsumerError,
    Record,
    consume_batch,
    consume_error,
    consumer_config,
    event_record,
    next_offsets,
    read_to_end,
    transactional_config,
)
from core.kafka_preflight import check_connection
from core.settings import Settings
from core.topics import dlq_topic, table_topic
from core.transactions import FatalTransactionError, TransactionAbortedError, Transactor, die
from processors.state import StateStore, Table
from schemas.codec import Codec

log = structlog.get_logger("processors.runner")

# Bounded so that a crashed instance's open transaction blocks read_committed
# readers for seconds, not the client default of a minute.
TRANSACTION_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class StepContext:
    """What a step sees of the runner: the tables of one partition, and the time."""

    store: StateStore
    partition: int
    now: float

    def table(self, name: str) -> Table:
        return self.store.table(name, self.partition)


Step = Callable[[StepContext, Message], list[Record]]
Tick = Callable[[StepContext], list[Record]]


@dataclass(frozen=True)
class Stage:
    name: str  # its dead letters go to dlq.<name>.v1
    inputs: tuple[str, ...]
    step: Step
    tables: tuple[str, ...] = ()
    # Timed work over a partition's state (sweeps), in its own transaction.
    tick: Tick | None = None
    tick_seconds: float = 60.0


def stage_producer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    return transactional_config(
        settings,
        group_id,
        f"{group_id}-{settings.instance_id}",
        timeout_ms=TRANSACTION_TIMEOUT_MS,
    )


class StageRunner:
    def __init__(
        self,
        settings: Settings,
        group_id: str,
        stages: Sequence[Stage],
        codec: Codec,
        *,
        batch_size: int = 500,
        poll_timeout: float = 0.2,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.stages = list(stages)
        self.codec = codec
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.worker = worker_id()
        self.by_topic = {topic: stage for stage in stages for topic in stage.inputs}
        self.store = StateStore(tuple(t for stage in stages for t in stage.tables))
        self.next_tick = {stage.name: time.monotonic() + stage.tick_seconds for stage in stages}
        self.consumer = Consumer(
            consumer_config(
                settings,
                group_id,
                static=True,
                # Partition p of every input to one instance: state is per partition.
                **{"partition.assignment.strategy": "range"},
            )
        )
        self.tx = Transactor(stage_producer_config(settings, group_id))

    # --- lifecycle ------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        check_connection(self.settings)  # refused credentials or TLS: an error now, not a hang
        self.tx.init()
        self.consumer.subscribe(
            list(self.by_topic),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info("stages.started", group=self.group_id, stages=[s.name for s in self.stages])
        try:
            while not stop.is_set():
                self.cycle()
        except (FatalConsumerError, FatalTransactionError) as exc:
            die(exc)
        self.consumer.close()
        log.info("stages.stopped", group=self.group_id)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in partitions})
        # Committed offsets first: with read_committed this waits until a
        # transaction still committing them is decided, so the state read next
        # holds that transaction's writes too.
        consumer.committed(partitions, timeout=60)
        started = time.monotonic()
        for table in self.store.tables:
            for partition in numbers:
                self.store.load(table, partition, self._restore(table, partition))
        log.info(
            "state.restored",
            partitions=numbers,
            entries={t: sum(self.store.size(t, p) for p in numbers) for t in self.store.tables},
            ms=round((time.monotonic() - started) * 1000),
        )

    def _restore(self, table: str, partition: int) -> dict[str, Any]:
        entries: dict[str, Any] = {}
        for msg in read_to_end(self.settings, table_topic(table), [partition]):
            key = (msg.key() or b"").decode()
            value = msg.value()
            if value is None:
                entries.pop(key, None)
            else:
                entries[key] = orjson.loads(value)
        return entries

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in {tp.partition for tp in partitions}:
            self.store.drop(partition)

    # --- one cycle --------------------------------------------------------------

    def cycle(self) -> None:
        batch = consume_batch(self.consumer, self.batch_size, self.poll_timeout)
        messages = [m for m in batch if not _is_error(m)]
        ticking = self._due_ticks(time.monotonic())
        if not messages and not ticking:
            return
        now = time.time()
        records = [r for msg in messages for r in self._step(msg, now)]
        records += [r for stage in ticking for r in self._tick(stage, now)]
        records += self._state_records()
        try:
            self.tx.run(
                lambda: _produce_all(self.tx, records),
                next_offsets(messages),
                self.consumer.consumer_group_metadata() if messages else None,
            )
        except TransactionAbortedError:
            self.store.undo_batch()
            self._rewind(messages)
            return
        self.store.commit_batch()

    def _step(self, msg: Message, now: float) -> list[Record]:
        stage = self.by_topic[msg.topic() or ""]
        self.store.begin_record()
        try:
            return stage.step(StepContext(self.store, msg.partition() or 0, now), msg)
        except Exception as exc:  # one record that cannot be processed must not stop the stream
            self.store.undo_record()
            return [self._dead_letter(stage, msg, exc)]

    def _dead_letter(self, stage: Stage, msg: Message, exc: Exception) -> Record:
        letter = build_dead_letter(
            source_of(msg), Failure(exc, retryable=False), stage=stage.name, worker=self.worker
        )
        log.warning(
            "record.dead_lettered",
            stage=stage.name,
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            error_class=letter.error_class,
            error=letter.error_message,
            tenant=letter.header.tenant,
            correlation_id=letter.header.correlation_id,
        )
        return event_record(self.codec, dlq_topic(stage.name), letter, key=msg.key())

    def _due_ticks(self, now: float) -> list[Stage]:
        due = [s for s in self.stages if s.tick is not None and now >= self.next_tick[s.name]]
        for stage in due:
            self.next_tick[stage.name] = now + stage.tick_seconds
        return due

    def _tick(self, stage: Stage, now: float) -> list[Record]:
        assert stage.tick is not None
        records = []
        for partition in self.store.partitions():
            self.store.begin_record()
            try:
                records += stage.tick(StepContext(self.store, partition, now))
            except Exception:  # a sweep that fails is retried at the next tick
                self.store.undo_record()
                log.exception("stage.tick_failed", stage=stage.name, partition=partition)
        return records

    def _state_records(self) -> list[Record]:
        return [
            Record(
                table_topic(change.table),
                change.key.encode(),
                None if change.value is None else orjson.dumps(change.value),
                [],
                partition=change.partition,
            )
            for change in self.store.changes()
        ]

    def _rewind(self, messages: Iterable[Message]) -> None:
        """Back to the last committed offsets: the aborted batch is read again."""
        partitions = {(m.topic() or "", m.partition() or 0) for m in messages}
        if not partitions:
            return
        committed = self.consumer.committed([TopicPartition(t, p) for t, p in partitions], 30)
        for tp in committed:
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))


def _produce_all(tx: Transactor, records: list[Record]) -> None:
    for record in records:
        tx.produce(record)


def _is_error(msg: Message) -> bool:
    error = consume_error(msg)
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("kafka.consume_error", error=str(error))
    return True
