"""Watch topics for events: what the demo story and the tests wait on.

A watcher reads every partition of its topics from a point in time (not as a
group member, so it never disturbs the hub's own consumers) and keeps the
events it decoded, so a check can ask for one that arrived before it asked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from core.kafka import client_config, consume_batch
from core.settings import Settings
from schemas.codec import Codec, DecodeError, make_codec
from schemas.events import Event, decode_event

E = TypeVar("E", bound=Event)


_LEADERS_MOVING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class TopicWatcher:
    def __init__(
        self,
        settings: Settings,
        topics: list[str],
        *,
        since_ms: int | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.codec = codec or make_codec(settings.schema_registry_url)
        self.events: list[tuple[str, Event]] = []
        self.undecodable: list[tuple[str, bytes | None]] = []
        self._consumer = Consumer(
            {
                **client_config(settings),
                "group.id": f"hub-watcher-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        since = since_ms if since_ms is not None else int(time.time() * 1000)
        wanted = []
        for topic in topics:
            metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
            wanted += [TopicPartition(topic, p, since) for p in metadata.partitions]
        starts = self._offsets_for_times(wanted)
        # offsets_for_times answers -1 (end) where nothing is that new: start at the end.
        self._consumer.assign(starts)

    def _offsets_for_times(self, wanted: list[TopicPartition]) -> list[TopicPartition]:
        # A topic created a moment ago may not have its leaders known to every broker
        # yet (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE): those pass, so ask again.
        deadline = time.monotonic() + 15
        while True:
            try:
                return list(self._consumer.offsets_for_times(wanted, timeout=10))
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                code = error.code() if isinstance(error, KafkaError) else None
                if code not in _LEADERS_MOVING or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def poll(self, timeout: float = 0.2) -> None:
        for msg in consume_batch(self._consumer, 500, timeout):
            if msg.error():
                continue
            topic = msg.topic() or ""
            try:
                self.events.append((topic, decode_event(self.codec, msg.value())))
            except DecodeError:
                self.undecodable.append((topic, msg.value()))

    def find(
        self,
        model: type[E],
        predicate: Callable[[E], bool] = lambda _e: True,
        topic: str | None = None,
    ) -> list[E]:
        return [
            e
            for t, e in self.events
            if isinstance(e, model) and (topic is None or t == topic) and predicate(e)
        ]

    def wait_for(
        self,
        model: type[E],
        predicate: Callable[[E], bool] = lambda _e: True,
        *,
        topic: str | None = None,
        timeout: float = 10.0,
        count: int = 1,
    ) -> list[E]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(model, predicate, topic)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{len(found)}/{count} {model.__name__} event(s) after {timeout:.0f}s"
                )
            self.poll()

    def settle(self, seconds: float) -> None:
        """Keep reading for a while (to show that something does NOT arrive)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
