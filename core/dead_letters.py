"""Build the dead letter for a record a stage could not process. Pure.

The original key, value and headers travel untouched, so a replay puts back
exactly what arrived; the rest says where it came from and why it failed.
Tenant and correlation id come from the record's `hub.*` headers, because a
poison pill's value may not decode at all.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Message

from core.kafka import as_header_list, header_value
from core.masking import mask_text
from schemas.events import DeadLetter, EventHeader, KafkaHeader, utcnow

UNKNOWN_TENANT = "unknown"
STACK_LIMIT = 4000


@dataclass(frozen=True)
class SourceRecord:
    """Where a failed record was read: what a consumer knows of any message."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Failure:
    error: BaseException
    retryable: bool
    attempts: int = 1
    first_failure_at: datetime | None = None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def short_stack(error: BaseException) -> str:
    text = "".join(traceback.format_exception(error, limit=6))
    return text[-STACK_LIMIT:]


def build_dead_letter(
    record: SourceRecord,
    failure: Failure,
    *,
    stage: str,
    worker: str,
    provider: str | None = None,
    idempotency_key: str | None = None,
) -> DeadLetter:
    now = utcnow()
    tenant = header_value(record.headers, "tenant") or UNKNOWN_TENANT
    correlation_id = header_value(record.headers, "correlation_id")
    header = EventHeader.new(
        DeadLetter.EVENT_TYPE,
        tenant,
        source=stage,
        correlation_id=correlation_id,
        causation_id=header_value(record.headers, "event_id"),
    )
    timestamp = (
        datetime.fromtimestamp(record.timestamp_ms / 1000, UTC) if record.timestamp_ms else None
    )
    return DeadLetter(
        header=header,
        stage=stage,
        worker=worker,
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
        original_timestamp=timestamp,
        original_key=record.key,
        original_value=record.value,
        original_headers=[KafkaHeader(key=k, value=v) for k, v in record.headers],
        error_class=type(failure.error).__name__,
        # Masked: an error's text may quote what failed (a provider's answer echoing the
        # request's credentials); the original record travels untouched, for a replay.
        error_message=mask_text(str(failure.error) or type(failure.error).__name__),
        stack=mask_text(short_stack(failure.error)),
        retryable=failure.retryable,
        attempts=failure.attempts,
        first_failure_at=failure.first_failure_at or now,
        last_failure_at=now,
        provider=provider or header_value(record.headers, "provider"),
        idempotency_key=idempotency_key or header_value(record.headers, "idempotency_key"),
    )


def source_of(msg: Message) -> SourceRecord:
    """A consumed confluent-kafka message as the source of a possible dead letter."""
    _, timestamp = msg.timestamp()
    return SourceRecord(
        msg.topic() or "",
        msg.partition() or 0,
        msg.offset() or 0,
        timestamp if timestamp > 0 else None,
        msg.key(),
        msg.value(),
        as_header_list(msg.headers()),
    )
