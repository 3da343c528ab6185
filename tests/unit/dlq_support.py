"""Shared builders for the dead-letter and retry-tier unit tests: letters, records, states."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from core.dead_letters import Failure, SourceRecord, build_dead_letter
from core.topics import commands_topic, connector_stage
from hub.dlq.model import DlqRecord, dead_letter_id
from schemas.events import DeadLetter, DeadLetterState, DeadLetterStatus, EventHeader

TENANT = "greenwood"
PROVIDER = "twilio"
STAGE = connector_stage(PROVIDER)
COMMAND_TOPIC = commands_topic(PROVIDER)
KEY = b"greenwood:idem-1"
VALUE = b"\xc3\x01\x00\xff not decoded here \x80"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def source_headers(tenant: str = TENANT) -> list[tuple[str, bytes | None]]:
    return [
        ("hub.event_id", b"evt-1"),
        ("hub.tenant", tenant.encode()),
        ("hub.correlation_id", b"corr-1"),
        ("traceparent", b"00-abc-def-01"),
        ("empty", None),
    ]


def source(
    *,
    topic: str = COMMAND_TOPIC,
    partition: int = 0,
    offset: int = 7,
    key: bytes | None = KEY,
    value: bytes | None = VALUE,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
) -> SourceRecord:
    return SourceRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=1_767_225_600_123,
        key=key,
        value=value,
        headers=list(headers) if headers is not None else source_headers(),
    )


def letter(
    *,
    stage: str = STAGE,
    topic: str = COMMAND_TOPIC,
    tenant: str = TENANT,
    provider: str | None = PROVIDER,
    error: BaseException | None = None,
    retryable: bool = False,
    last_failure_at: datetime = NOW,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
) -> DeadLetter:
    built = build_dead_letter(
        source(topic=topic, headers=headers if headers is not None else source_headers(tenant)),
        Failure(error or RuntimeError("twilio 400 [21211]: invalid number"), retryable=retryable),
        stage=stage,
        worker="host:1",
        provider=provider,
    )
    return built.model_copy(update={"last_failure_at": last_failure_at})


def state(
    record_id: str,
    status: DeadLetterStatus = DeadLetterStatus.REPLAYED,
    action_id: str = "act-1",
) -> DeadLetterState:
    return DeadLetterState(
        header=EventHeader.new(DeadLetterState.EVENT_TYPE, "hub", source="test"),
        dead_letter_id=record_id,
        status=status,
        action_id=action_id,
        target_topic=COMMAND_TOPIC if status is DeadLetterStatus.REPLAYED else None,
        actor="ops@host",
    )


def record(
    offset: int = 0,
    *,
    stage: str = STAGE,
    partition: int = 0,
    dead: DeadLetter | None = None,
    written_at: datetime = NOW,
    status: DeadLetterStatus | None = None,
    action_id: str = "act-1",
) -> DlqRecord:
    record_id = dead_letter_id(stage, partition, offset)
    return DlqRecord(
        id=record_id,
        stage=stage,
        letter=dead if dead is not None else letter(stage=stage),
        written_at=written_at,
        state=state(record_id, status, action_id) if status is not None else None,
    )
