"""Thin confluent-kafka wrappers: client config, awaitable delivery, record headers.

Every producer here partitions keys with murmur2, as Java clients and faust
(aiokafka) do. librdkafka's default (CRC32) would put one key on different
partitions depending on who wrote it, and the processors' tables, which are
partitioned like their input topics, would split one invoice's state in two.
"""

from __future__ import annotations

import asyncio
import threading
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

    A background thread serves delivery callbacks (librdkafka only calls them
    from poll/flush) and hands each result to the event loop that produced it.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(config)
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Message]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, err, msg)

        try:
            self._producer.produce(
                topic, value=value, key=key, headers=headers or [], on_delivery=on_delivery
            )
        except (BufferError, KafkaException) as exc:
            future.set_exception(DeliveryFailedError(str(exc)))
        return future

    def list_topics(self, timeout: float) -> Any:
        return self._producer.list_topics(timeout=timeout)

    def close(self, timeout: float = 10.0) -> int:
        remaining = int(self._producer.flush(timeout))
        self._closed.set()
        self._poller.join(timeout=1.0)
        return remaining


def _settle(future: asyncio.Future[Message], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(DeliveryFailedError(err))
    else:
        future.set_result(msg)
