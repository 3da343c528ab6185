"""The shared parts: the event header, contacts, keys, and the Event base class."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    # Avro timestamp-millis keeps milliseconds; truncate so a decoded event equals its original.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def entity_key(tenant: str, entity_id: str) -> str:
    """Kafka key of every per-entity stream: per-tenant, per-entity ordering."""
    return f"{tenant}:{entity_id}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventHeader(_Model):
    event_id: str
    event_type: str
    tenant: str
    correlation_id: str
    causation_id: str | None = None
    occurred_at: datetime
    source: str

    @classmethod
    def new(
        cls,
        event_type: str,
        tenant: str,
        *,
        source: str,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> EventHeader:
        event_id = new_id()
        return cls(
            event_id=event_id,
            event_type=event_type,
            tenant=tenant,
            correlation_id=correlation_id or event_id,
            causation_id=causation_id,
            occurred_at=utcnow(),
            source=source,
        )

    def caused(self, event_type: str, *, source: str) -> EventHeader:
        """Header of an event this one causes: same tenant and flow, new id."""
        return EventHeader.new(
            event_type,
            self.tenant,
            source=source,
            correlation_id=self.correlation_id,
            causation_id=self.event_id,
        )


class Contact(_Model):
    name: str
    phone: str | None = None
    email: str | None = None


class Event(_Model):
    SCHEMA: ClassVar[str]
    EVENT_TYPE: ClassVar[str]

    header: EventHeader

    def key(self) -> str:
        raise NotImplementedError

    def to_record(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        return cls.model_validate(record)
