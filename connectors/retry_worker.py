"""The retry worker: re-delivers tier records to their command topic when they are due.

One consumer reads every retry tier of every provider. A tier holds records
in the order they failed, all with the same delay, so within a partition the
head record is always due first: when it is not due yet, the worker pauses
just that partition (seeking back to the record) until it is, and consumes
the others meanwhile. It sleeps in `consume()` until the next partition is
due instead of spinning. The re-delivered records and the tier's offsets
commit in one transaction, never past a record still waiting: a worker killed
at any point re-delivers nothing twice and loses nothing.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

import structlog
from confluent_kafka import Consumer, Message, TopicPartition

from connectors.tiers import due_at, original_topic
from core.dead_letters import Failure, build_dead_letter, source_of, worker_id
from core.kafka import (
    FatalConsumerError,
    Record,
    as_header_list,
    consume_batch,
    consume_error,
    consumer_config,
    event_record,
    transactional_config,
)
from core.kafka_preflight import check_connection
from core.logging import configure_logging
from core.settings import Settings
from core.topics import (
    RETRY_WORKER_GROUP,
    connector_stage,
    dlq_topic,
    retry_topic,
)
from core.transactions import FatalTransactionError, TransactionAbortedError, Transactor, die
from providers import names as provider_names
from schemas.codec import make_codec

log = structlog.get_logger("connectors.retry")

GROUP_ID = RETRY_WORKER_GROUP
TP = tuple[str, int]


@dataclass
class DueGate:
    """Which partitions wait until when (epoch ms)."""

    held: dict[TP, int] = field(default_factory=dict)

    def hold(self, tp: TP, until_ms: int) -> None:
        self.held[tp] = until_ms

    def release_due(self, now_ms: int) -> list[TP]:
        due = [tp for tp, until in self.held.items() if until <= now_ms]
        for tp in due:
            del self.held[tp]
        return due

    def wait_seconds(self, now_ms: int, longest: float = 1.0) -> float:
        if not self.held:
            return longest
        return max(0.0, min(longest, (min(self.held.values()) - now_ms) / 1000))

    def forget(self, tps: list[TP]) -> None:
        for tp in tps:
            self.held.pop(tp, None)


def provider_of(tier_topic: str) -> str:
    return tier_topic.split(".")[1]  # connector.<provider>.retry-<n>.v1


class RetryWorker:
    def __init__(self, settings: Settings, providers: list[str]) -> None:
        self.settings = settings
        self.codec = make_codec(settings.schema_registry_url)
        self.topics = [
            retry_topic(p, n) for p in providers for n in range(1, len(settings.tiers_for(p)) + 1)
        ]
        self.gate = DueGate()
        self.worker = worker_id()
        self.consumer = Consumer(consumer_config(settings, GROUP_ID, static=True))
        self.tx = Transactor(
            transactional_config(settings, GROUP_ID, f"{GROUP_ID}-{settings.instance_id}")
        )

    def _on_revoke(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.gate.forget([(tp.topic, tp.partition) for tp in partitions])

    def run(self, stop: threading.Event | None = None) -> None:
        check_connection(self.settings)  # refused credentials or TLS: an error now, not a hang
        self.tx.init()
        self.consumer.subscribe(self.topics, on_revoke=self._on_revoke)
        log.info("retry_worker.started", topics=self.topics)
        try:
            while stop is None or not stop.is_set():
                self.cycle()
        except (FatalConsumerError, FatalTransactionError) as exc:
            die(exc)
        self.consumer.close()

    def cycle(self) -> None:
        now = int(time.time() * 1000)
        due = self.gate.release_due(now)
        if due:
            self.consumer.resume([TopicPartition(t, p) for t, p in due])
        messages = consume_batch(self.consumer, 500, self.gate.wait_seconds(now))
        commits: dict[TP, int] = {}
        sends: list[Message] = []
        now = int(time.time() * 1000)
        for msg in messages:
            if consume_error(msg):
                continue
            tp = (msg.topic() or "", msg.partition() or 0)
            if tp in self.gate.held:
                continue  # behind a record that is not due: re-read after the resume
            when = due_at(as_header_list(msg.headers()))
            if when > now:
                self.consumer.pause([TopicPartition(*tp)])
                self.consumer.seek(TopicPartition(tp[0], tp[1], msg.offset() or 0))
                self.gate.hold(tp, when)
                continue
            sends.append(msg)
            commits[tp] = (msg.offset() or 0) + 1
        if sends:
            self._redeliver(sends, [TopicPartition(t, p, o) for (t, p), o in commits.items()])

    def _redeliver(self, messages: list[Message], offsets: list[TopicPartition]) -> None:
        records = [self._record_for(msg) for msg in messages]

        def produce() -> None:
            for record in records:
                self.tx.produce(record)

        try:
            self.tx.run(produce, offsets, self.consumer.consumer_group_metadata())
        except TransactionAbortedError:
            # Nothing of it happened: read those records again.
            for tp in self.consumer.committed(offsets, 30):
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))
            return
        log.info("retry.redelivered", count=len(messages))

    def _record_for(self, msg: Message) -> Record:
        headers = as_header_list(msg.headers())
        target = original_topic(headers)
        if target is not None:
            # Headers unchanged: the tier history travels on with the command.
            return Record(target, msg.key(), msg.value(), list(headers))
        stage = connector_stage(provider_of(msg.topic() or ""))
        error = ValueError("retry record without hub.retry.original_topic header")
        letter = build_dead_letter(
            source_of(msg), Failure(error, retryable=False), stage=stage, worker=self.worker
        )
        return event_record(self.codec, dlq_topic(stage), letter, key=msg.key())


def run(settings: Settings, providers: list[str] | None = None) -> None:
    configure_logging(settings.log_level, settings.log_format, component="retry-worker")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    RetryWorker(settings, providers or list(provider_names())).run(stop)
