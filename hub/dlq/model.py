"""Dead letters as an operator sees them: an id, a status, filters. Pure.

A dead letter's id is where it sits: `<stage>:<partition>:<offset>` in
`dlq.<stage>.v1`. Its status comes from the compacted `hub.dlq.state.v1`:
pending (nobody acted), replayed, or purged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from core.topics import dlq_topic
from schemas.events import DeadLetter, DeadLetterState, DeadLetterStatus


class Status(StrEnum):
    PENDING = "pending"
    REPLAYED = "replayed"
    PURGED = "purged"


def dead_letter_id(stage: str, partition: int, offset: int) -> str:
    return f"{stage}:{partition}:{offset}"


class BadIdError(ValueError):
    pass


def parse_id(text: str) -> tuple[str, int, int]:
    match = re.fullmatch(r"([a-z0-9-]+):(\d+):(\d+)", text.strip())
    if not match:
        raise BadIdError(
            f"{text!r} is not a dead letter id (<stage>:<partition>:<offset>, "
            "as `hub dlq list` shows them)"
        )
    return match[1], int(match[2]), int(match[3])


@dataclass(frozen=True)
class DlqRecord:
    id: str
    stage: str
    letter: DeadLetter
    written_at: datetime
    state: DeadLetterState | None = None

    @property
    def topic(self) -> str:
        return dlq_topic(self.stage)

    @property
    def status(self) -> Status:
        if self.state is None:
            return Status.PENDING
        return Status.REPLAYED if self.state.status is DeadLetterStatus.REPLAYED else Status.PURGED


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """An ISO time (`2026-11-22T10:00`) or an age (`30m`, `2h`, `7d`) before now."""
    now = now or datetime.now(UTC)
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO time nor an age like 30m, 2h, 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DlqFilter:
    """What `hub dlq list/replay/purge` select; every field narrows the selection."""

    stage: str | None = None
    topic: str | None = None  # the original topic the record failed on
    tenant: str | None = None
    provider: str | None = None
    error: str | None = None  # error class, or text in the message
    since: datetime | None = None
    until: datetime | None = None
    statuses: frozenset[Status] = frozenset({Status.PENDING})
    ids: frozenset[str] = frozenset()
    # Resuming an action: leave out what that action already did.
    not_done_by: str | None = None

    def matches(self, record: DlqRecord) -> bool:
        letter = record.letter
        checks = [
            not self.ids or record.id in self.ids,
            record.status in self.statuses,
            self.stage is None or record.stage == self.stage,
            self.topic is None or letter.original_topic == self.topic,
            self.tenant is None or letter.header.tenant == self.tenant,
            self.provider is None or letter.provider == self.provider,
            self.error is None
            or self.error == letter.error_class
            or self.error.lower() in letter.error_message.lower(),
            self.since is None or letter.last_failure_at >= self.since,
            self.until is None or letter.last_failure_at <= self.until,
            self.not_done_by is None
            or record.state is None
            or record.state.action_id != self.not_done_by,
        ]
        return all(checks)

    def describe(self) -> dict[str, object]:
        """The filter as JSON-able data, for the audit record."""
        out: dict[str, object] = {
            k: v
            for k, v in {
                "stage": self.stage,
                "topic": self.topic,
                "tenant": self.tenant,
                "provider": self.provider,
                "error": self.error,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
            }.items()
            if v is not None
        }
        out["statuses"] = sorted(self.statuses)
        if self.ids:
            out["ids"] = sorted(self.ids)
        if self.not_done_by:
            out["resumes"] = self.not_done_by
        return out


def select(
    records: list[DlqRecord], dlq_filter: DlqFilter, limit: int | None = None
) -> list[DlqRecord]:
    chosen = [r for r in records if dlq_filter.matches(r)]
    chosen.sort(key=lambda r: (r.letter.last_failure_at, *_position(r.id)))
    return chosen if limit is None else chosen[:limit]


def _position(record_id: str) -> tuple[str, int, int]:
    return parse_id(record_id)  # numeric: offset 9 before offset 10
