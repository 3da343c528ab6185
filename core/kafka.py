"""Thin confluent-kafka wrappers: client config, awaitable delivery, record headers.

Every producer here partitions keys with murmur2, as Java clients (Kafka
Connect, so Debezium) do. librdkafka's default (CRC32) would put one key on
different partitions depending on who wrote it, and the stages' state, which
is partitioned like its input topics, would split one invoice's state in two.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from core.kafka_security import client_security
from core.settings import Settings
from schemas.codec import Codec
from schemas.events import Event, encode_event

HEADER_PREFIX = "hub."

# What confluent-kafka takes and gives as record headers.
Headers = list[tuple[str, str | bytes | None]]


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The base of every client config the hub builds: where the cluster is and how to
    reach it (TLS, SASL: core/kafka_security.py). No other module names bootstrap.servers
    (tests/unit/test_kafka_security.py checks), so no client can miss the security."""
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        # librdkafka backs a failed connection off up to 10 s (the Java client: 1 s). A
        # restarted process whose first TLS + SASL login to the group coordinator fails
        # (the broker busy with every client of the restart at once) would sit out that
        # whole backoff before it consumes again; 1 s bounds the stall like Java does.
        "reconnect.backoff.max.ms": 1_000,
        **client_security(settings),
        **extra,
    }


def producer_config(settings: Settings, client_id: str, **overrides: Any) -> dict[str, Any]:
    return client_config(
        settings,
        **{
            "client.id": client_id,
            "enable.idempotence": True,  # implies acks=all and ordered, de-duplicated retries
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "compression.type": "lz4",
            **overrides,
        },
    )


def transactional_config(
    settings: Settings,
    client_id: str,
    transactional_id: str,
    *,
    timeout_ms: int = 15_000,
    **overrides: Any,
) -> dict[str, Any]:
    """A transactional producer's config. `transactional_id` must be stable across restarts
    of one instance: the restarted one then fences and aborts what its predecessor left
    open, at once, instead of every read_committed reader waiting `timeout_ms` for it."""
    return producer_config(
        settings,
        client_id,
        **{
            "transactional.id": transactional_id,
            "transaction.timeout.ms": timeout_ms,
            # A transaction begun right after the last one's commit finds the
            # coordinator still writing its markers (CONCURRENT_TRANSACTIONS) and
            # retries after retry.backoff.ms: 100 ms by default, and it happens on
            # nearly every commit of a busy loop. 5 ms took send_offsets from ~105 ms
            # to ~11 ms here; the backoff still grows exponentially when a broker is away.
            "retry.backoff.ms": 5,
            "linger.ms": 2,
            **overrides,
        },
    )


def consumer_config(
    settings: Settings, group_id: str, *, static: bool = False, **overrides: Any
) -> dict[str, Any]:
    """`static`: a member with a fixed identity (KIP-345). A restarted instance takes
    its old place at once instead of waiting for the group to time the dead
    member out; the session timeout bounds how long a member that never comes
    back keeps its partitions."""
    identity = {"group.instance.id": f"{group_id}-{settings.instance_id}"} if static else {}
    return client_config(
        settings,
        **{
            "group.id": group_id,
            "client.id": group_id,
            # Offsets are committed by the code, only after the record's effects are durable.
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # Heartbeats come from librdkafka's own thread, not the processing loop,
            # so a short session only detects dead processes sooner.
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            # A read_committed fetch that arrived before the producer's commit marker
            # waits out fetch.wait.max.ms (500 ms by default) before it sees the
            # batch: on a pipeline of transactional hops that wait is the latency.
            "fetch.wait.max.ms": 25,
            **identity,
            **overrides,
        },
    )


def admin_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    return client_config(settings, **{"client.id": "hub-admin", **extra})


def event_headers(event: Event) -> Headers:
    """Routing and tracing facts as Kafka headers, readable without decoding the value."""
    h = event.header
    return [
        (f"{HEADER_PREFIX}event_id", h.event_id.encode()),
        (f"{HEADER_PREFIX}event_type", h.event_type.encode()),
        (f"{HEADER_PREFIX}schema", event.SCHEMA.encode()),
        (f"{HEADER_PREFIX}tenant", h.tenant.encode()),
        (f"{HEADER_PREFIX}correlation_id", h.correlation_id.encode()),
    ]


def as_header_list(raw: object) -> list[tuple[str, bytes | None]]:
    """Headers as a list of (key, bytes) pairs, whatever shape a client handed them over in."""
    items = raw.items() if isinstance(raw, dict) else raw if isinstance(raw, list | tuple) else ()
    return [(str(k), v.encode() if isinstance(v, str) else v) for k, v in items]


def header_value(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == f"{HEADER_PREFIX}{name}" and value is not None:
            return value.decode("utf-8", "replace")
    return None


@dataclass(frozen=True)
class Record:
    """A record to produce: what a stage decided, before any I/O."""

    topic: str
    key: bytes | str | None
    value: bytes | None  # None: a tombstone
    headers: Headers
    # Set where a record must sit beside its input (a stage's state, a ledger
    # entry): the same partition number as the record that caused it.
    partition: int | None = None


def event_record(codec: Codec, topic: str, event: Event, key: bytes | str | None = None) -> Record:
    return Record(
        topic,
        key if key is not None else event.key(),
        encode_event(codec, event),
        event_headers(event),
    )


class DeliveryFailedError(Exception):
    def __init__(self, error: KafkaError | str) -> None:
        super().__init__(str(error))
        self.error = error


class AsyncProducer:
    """A confluent-kafka Producer whose `produce` returns a future of the delivery report.

    librdkafka only runs delivery callbacks inside poll()/flush(). A poller task
    on the event loop calls poll(0) while deliveries are outstanding, so each
    callback resolves its future on the loop's own thread. (A separate poll
    thread costs far more: every callback then fights the event loop for the GIL.)
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(config)
        # No acknowledgement can arrive before the batch leaves (linger.ms), so
        # polling faster than that only burns the loop's time.
        self._poll_interval = max(0.001, float(config.get("linger.ms", 5)) / 2000)
        self._in_flight = 0
        self._wake: asyncio.Event | None = None
        self._poller: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        assert self._wake is not None
        while True:
            if self._in_flight == 0:
                self._wake.clear()
                await self._wake.wait()
            self._producer.poll(0)
            await asyncio.sleep(self._poll_interval)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Message]:
        loop = asyncio.get_running_loop()
        if self._poller is None:
            self._wake = asyncio.Event()
            self._poller = loop.create_task(self._poll(), name="kafka-delivery-poller")
        future: asyncio.Future[Message] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self._in_flight -= 1
            _settle(future, err, msg)

        try:
            self._producer.produce(
                topic, value=value, key=key, headers=headers or [], on_delivery=on_delivery
            )
        except (BufferError, KafkaException) as exc:
            future.set_exception(DeliveryFailedError(str(exc)))
            return future
        self._in_flight += 1
        assert self._wake is not None
        self._wake.set()
        return future

    def list_topics(self, timeout: float) -> Any:
        return self._producer.list_topics(timeout=timeout)

    def close(self, timeout: float = 10.0) -> int:
        if self._poller is not None:
            self._poller.cancel()
        return int(self._producer.flush(timeout))


def _settle(future: asyncio.Future[Message], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(DeliveryFailedError(err))
    else:
        future.set_result(msg)


def watermarks(
    consumer: Consumer, topic: str, partition: int, timeout: float = 10.0
) -> tuple[int, int]:
    """(low, high) offsets of a partition, riding out leader elections (new topics, restarts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and (
                error.retriable() or error.code() in _ELECTION_ERRORS
            )
            if not retriable or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


_ELECTION_ERRORS = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def _reader(settings: Settings, isolation: str) -> Consumer:
    return Consumer(
        client_config(
            settings,
            **{
                "group.id": f"hub-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": isolation,
                "enable.partition.eof": True,
            },
        )
    )


def high_watermarks(
    settings: Settings, topic: str, partitions: list[int] | None = None
) -> dict[int, tuple[int, int]]:
    """partition -> (low, high) as the log has them, open transactions included.

    A read_committed consumer reports the last stable offset as the high mark,
    which stops short of a transaction still being decided."""
    consumer = _reader(settings, "read_uncommitted")
    try:
        if partitions is None:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            partitions = sorted(metadata.partitions)
        return {p: watermarks(consumer, topic, p) for p in partitions}
    finally:
        consumer.close()


def read_to_end(
    settings: Settings,
    topic: str,
    partitions: list[int] | None = None,
    *,
    start: dict[int, int] | None = None,
    timeout: float = 60.0,
) -> Iterator[Message]:
    """Every committed record of `topic` (or of some partitions, from `start` offsets),
    oldest first, up to the log's high watermark when called. Reads without
    joining a group; commits nothing.

    The end is the high watermark, not the last stable offset: a transaction
    open below it (its commit marker on the way) is waited for, so a state
    topic read here holds every write a committed transaction made. The end is
    recognised by partition EOF at or past the mark, since the last offsets of
    a transactional topic are commit markers no consumer ever sees.
    """
    marks = high_watermarks(settings, topic, partitions)
    first = {p: max(low, (start or {}).get(p, low)) for p, (low, _high) in marks.items()}
    remaining = {p: high for p, (_low, high) in marks.items() if high > first[p]}
    if not remaining:
        return
    consumer = _reader(settings, "read_committed")
    try:
        consumer.assign([TopicPartition(topic, p, first[p]) for p in remaining])
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for msg in consume_batch(consumer, 1000, 0.5):
                error = msg.error()
                if error is None:
                    yield msg
                elif error.code() == KafkaError._PARTITION_EOF:
                    partition = msg.partition() or 0
                    if (msg.offset() or 0) >= remaining.get(partition, 0):
                        remaining.pop(partition, None)
        if remaining:
            raise TimeoutError(
                f"{topic} partitions {sorted(remaining)} not read to the end in {timeout:.0f}s"
            )
    finally:
        consumer.close()


def read_one(settings: Settings, topic: str, partition: int, offset: int) -> Message | None:
    """The record at one offset, or None if there is none (compacted, expired, not yet written)."""
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"hub-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
        )
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                return None  # end of partition: nothing at that offset
            return msg if msg.offset() == offset else None
        return None
    finally:
        consumer.close()


class FatalConsumerError(RuntimeError):
    """The consumer can do nothing more (e.g. its static member id was fenced after a
    broker restart): the process must end, and its supervisor start a fresh one."""


def consume_error(msg: Message) -> KafkaError | None:
    """A consumed message's error; raises FatalConsumerError for a fatal one, which a
    loop that only logged it would turn into a process that never consumes again."""
    error = msg.error()
    # librdkafka hands the fatal error to the application as a _FATAL event, whose
    # error object does not always carry the fatal flag itself.
    if error is not None and (error.fatal() or error.code() == KafkaError._FATAL):
        raise FatalConsumerError(str(error))
    return error


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after `messages`: the highest per partition, plus one."""
    highest: dict[tuple[str, int], int] = {}
    for msg in messages:
        tp = (msg.topic() or "", msg.partition() or 0)
        highest[tp] = max(highest.get(tp, -1), msg.offset() or 0)
    return [
        TopicPartition(topic, partition, offset + 1)
        for (topic, partition), offset in highest.items()
    ]


def consume_batch(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Up to `max_messages`, as soon as one is there.

    librdkafka's consume(n, timeout) waits until n messages arrived or the
    timeout passed, so on a quiet stream every record would sit out the whole
    timeout. Block for the first message only; then take what is already
    fetched without waiting.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)] if max_messages > 1 else [first]
