"""Load dead letters and their operator states from Kafka (read-only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import Message

from core.kafka import read_one, read_to_end
from core.settings import Settings
from core.topics import DLQ_STATE, dlq_topic
from hub.dlq.model import DlqRecord, dead_letter_id, parse_id
from providers import stages as all_stages
from schemas.codec import Codec, DecodeError
from schemas.events import DeadLetter, DeadLetterState, decode_as

Progress = Callable[[int], None]


def _written_at(msg: Message) -> datetime:
    _, ms = msg.timestamp()
    return datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else datetime.now(UTC)


def load_states(settings: Settings, codec: Codec) -> dict[str, DeadLetterState]:
    """The newest state of every dead letter an operator acted on (committed only)."""
    states: dict[str, DeadLetterState] = {}
    for msg in read_to_end(settings, DLQ_STATE):
        key = (msg.key() or b"").decode()
        if msg.value() is None:
            states.pop(key, None)
            continue
        try:
            states[key] = decode_as(codec, msg.value(), DeadLetterState)
        except DecodeError:
            continue
    return states


def load_dead_letters(
    settings: Settings,
    codec: Codec,
    stages: list[str] | None = None,
    progress: Progress | None = None,
) -> tuple[list[DlqRecord], int]:
    """Every dead letter of the stages (default: all), with its state; and how many
    records in the dead-letter topics could not be read as dead letters."""
    states = load_states(settings, codec)
    records: list[DlqRecord] = []
    unreadable = 0
    for stage in stages or all_stages():
        for msg in read_to_end(settings, dlq_topic(stage)):
            if progress:
                progress(1)
            try:
                letter = decode_as(codec, msg.value(), DeadLetter)
            except DecodeError:
                unreadable += 1
                continue
            record_id = dead_letter_id(stage, msg.partition() or 0, msg.offset() or 0)
            records.append(
                DlqRecord(record_id, stage, letter, _written_at(msg), states.get(record_id))
            )
    return records, unreadable


def load_one(settings: Settings, codec: Codec, record_id: str) -> DlqRecord | None:
    stage, partition, offset = parse_id(record_id)
    msg = read_one(settings, dlq_topic(stage), partition, offset)
    if msg is None:
        return None
    letter = decode_as(codec, msg.value(), DeadLetter)
    state = load_states(settings, codec).get(record_id)
    return DlqRecord(record_id, stage, letter, _written_at(msg), state)
