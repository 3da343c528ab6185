"""What a processing step decides to send: an event and the topic it goes to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.kafka import Record, event_record
from schemas.codec import Codec
from schemas.events import Event


@dataclass(frozen=True)
class Emit:
    topic: str
    event: Event
    # Set when a stream is re-keyed (an order link is keyed by order, not by
    # invoice); otherwise the event's own key.
    key: str | None = None

    @property
    def record_key(self) -> str:
        return self.key or self.event.key()


def to_records(codec: Codec, emits: Iterable[Emit]) -> list[Record]:
    return [event_record(codec, e.topic, e.event, e.record_key) for e in emits]
