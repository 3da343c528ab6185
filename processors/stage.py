"""Faust plumbing every processor stage shares: send decisions, dead-letter failures.

A stage's work for one record is a function returning the events to emit.
`Stage.process` runs it and sends the result, or, if anything about the
record fails (it does not decode, it is not valid, a rule rejects it), sends
the record untouched to the stage's dead-letter topic with the reason, and
the stream carries on with the next record. Offsets are committed by faust
after the producer is flushed, so an emitted event is durable before the
record that caused it counts as done (at-least-once).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust
import structlog
from faust.types import Message

from hub.dead_letters import Failure, SourceRecord, build_dead_letter, worker_id
from hub.kafka import as_header_list, event_headers
from hub.topics import dlq_topic
from processors.emit import Emit
from schemas.codec import Codec
from schemas.events import Event, encode_event

log = structlog.get_logger("processors")


def source_record(message: Message) -> SourceRecord:
    timestamp = message.timestamp
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(timestamp * 1000) if timestamp else None,
        key=message.key,
        value=message.value,
        headers=as_header_list(message.headers),
    )


class Stage:
    def __init__(self, app: faust.App, name: str, codec: Codec) -> None:
        self.app = app
        self.name = name
        self.codec = codec
        self.worker = worker_id()
        self._topics: dict[str, Any] = {}

    def topic(self, *names: str) -> Any:
        """A raw-bytes faust topic (the codec does the Avro part, per record)."""
        key = ",".join(names)
        if key not in self._topics:
            self._topics[key] = self.app.topic(
                *names,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
            )
        return self._topics[key]

    async def send(self, emits: list[Emit]) -> None:
        for emit in emits:
            await self.send_event(emit.topic, emit.event, emit.record_key)

    async def send_event(self, topic: str, event: Event, key: str | None = None) -> None:
        await self.topic(topic).send(
            key=(key or event.key()).encode(),
            value=encode_event(self.codec, event),
            headers=event_headers(event),
        )

    async def process(self, message: Message, work: Awaitable[list[Emit]]) -> None:
        try:
            emits = await work
        except Exception as exc:  # any failure of one record must not stop the stream
            await self.dead_letter(source_record(message), exc)
            return
        await self.send(emits)

    async def dead_letter(
        self, record: SourceRecord, exc: BaseException, *, retryable: bool = False
    ) -> None:
        letter = build_dead_letter(
            record, Failure(exc, retryable), stage=self.name, worker=self.worker
        )
        log.warning(
            "record.dead_lettered",
            stage=self.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_class=letter.error_class,
            error=letter.error_message,
            tenant=letter.header.tenant,
            correlation_id=letter.header.correlation_id,
        )
        await self.send_event(
            dlq_topic(self.name), letter, key=(record.key or b"").decode("utf-8", "replace")
        )
