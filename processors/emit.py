"""What a processing step decides to send: an event and the topic it goes to."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import Event


@dataclass(frozen=True)
class Emit:
    topic: str
    event: Event
