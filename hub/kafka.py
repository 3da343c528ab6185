"""Thin confluent-kafka wrappers: client config, awaitable delivery, record headers.

Every producer here partitions keys with murmur2, as Java clients and faust
(aiokafka) do. librdkafka's default (CRC32) would put one key on different
partitions depending on who wrote it, and the processors' tables, which are
partitioned like their input topics, would split one invoice's state in two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hub.settings import Settings
from schemas.events import Event

HEADER_PREFIX = "hub."

# What confluent-kafka takes and gives as record headers.
Headers = list[tuple[str, str | bytes | None]]


def producer_config(settings: Settings, client_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": client_id,
        "enable.idempotence": True,  # implies acks=all and ordered, de-duplicated retries
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "lz4",
        **overrides,
    }


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "client.id": group_id,
        # Offsets are committed by the code, only after the record's effects are durable.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **overrides,
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap_servers, "client.id": "hub-admin"}


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
