"""What a module uses to publish events to the hub.

    with EventProducer() as producer:
        producer.publish(Invoice(header=EventHeader.new(...), ...))

Each event is Avro-encoded with its schema, keyed `<tenant>:<entity id>` for
per-entity ordering, and sent by an idempotent producer (acks=all): a retried
send never duplicates or reorders a record. `flush()` (and leaving the `with`
block) waits for every acknowledgement and raises if any record was not
delivered, so a module never believes an event was published when it was not.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from core.kafka import event_headers, producer_config
from core.settings import Settings, get_settings
from core.topics import default_topic_for
from schemas.codec import Codec, make_codec
from schemas.events import Event, encode_event


class PublishError(Exception):
    def __init__(self, failures: list[tuple[str, str]]) -> None:
        lines = "; ".join(f"{key}: {error}" for key, error in failures[:5])
        super().__init__(f"{len(failures)} event(s) were not delivered: {lines}")
        self.failures = failures


class EventProducer:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client_id: str = "hub-producer",
        codec: Codec | None = None,
        **config: Any,
    ) -> None:
        settings = settings or get_settings()
        self.codec = codec or make_codec(settings.schema_registry_url)
        self._producer = Producer(producer_config(settings, client_id, **config))
        self._failures: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            key = (msg.key() or b"").decode("utf-8", "replace")
            with self._lock:
                self._failures.append((key, str(err)))

    def publish(self, event: Event, topic: str | None = None) -> str:
        """Queue `event` for delivery; returns the topic. Delivery is confirmed by flush()."""
        target = topic or default_topic_for(event.SCHEMA)
        if target is None:
            raise ValueError(f"{event.SCHEMA} has no default topic; pass topic=")
        value = encode_event(self.codec, event)
        while True:
            try:
                self._producer.produce(
                    target,
                    value=value,
                    key=event.key(),
                    headers=event_headers(event),
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                self._producer.poll(0.5)
        self._producer.poll(0)
        return target

    def publish_and_wait(
        self, event: Event, topic: str | None = None, timeout: float = 30.0
    ) -> Message:
        """Publish one event and return its acknowledged message (partition, offset)."""
        delivered: list[Message] = []
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered.append(msg)

        target = topic or default_topic_for(event.SCHEMA)
        if target is None:
            raise ValueError(f"{event.SCHEMA} has no default topic; pass topic=")
        self._producer.produce(
            target,
            value=encode_event(self.codec, event),
            key=event.key(),
            headers=event_headers(event),
            on_delivery=on_delivery,
        )
        self._producer.flush(timeout)
        if errors or not delivered:
            raise PublishError([(event.key(), str(errors[0]) if errors else "timed out")])
        return delivered[0]

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if remaining:
            failures.append(("*", f"{remaining} event(s) still unacknowledged after {timeout}s"))
        if failures:
            raise PublishError(failures)

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
