"""Dead letters, what operators did with them, and alerts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from schemas.events._base import Event, _Model


class KafkaHeader(_Model):
    key: str
    value: bytes | None = None


class DeadLetter(Event):
    SCHEMA = "com.integrationhub.DeadLetter"
    EVENT_TYPE = "hub.dead_letter"

    stage: str
    worker: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_timestamp: datetime | None = None
    original_key: bytes | None = None
    original_value: bytes | None = None
    original_headers: list[KafkaHeader] = Field(default_factory=list)
    error_class: str
    error_message: str
    stack: str | None = None
    retryable: bool
    attempts: int = 1
    first_failure_at: datetime
    last_failure_at: datetime
    provider: str | None = None
    idempotency_key: str | None = None

    def key(self) -> str:
        return (self.original_key or b"").decode("utf-8", "replace")


class DeadLetterStatus(StrEnum):
    REPLAYED = "REPLAYED"
    PURGED = "PURGED"


class DeadLetterState(Event):
    SCHEMA = "com.integrationhub.DeadLetterState"
    EVENT_TYPE = "hub.dead_letter.state"

    dead_letter_id: str
    status: DeadLetterStatus
    action_id: str
    target_topic: str | None = None
    actor: str

    def key(self) -> str:
        return self.dead_letter_id


class DlqAction(StrEnum):
    REPLAY = "REPLAY"
    PURGE = "PURGE"


class DlqActionPhase(StrEnum):
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class DlqAudit(Event):
    SCHEMA = "com.integrationhub.DlqAudit"
    EVENT_TYPE = "hub.dlq.audit"

    action_id: str
    action: DlqAction
    phase: DlqActionPhase
    actor: str
    filter: str
    target: str | None = None
    selected: int
    done: int = 0
    skipped: int = 0
    message: str | None = None

    def key(self) -> str:
        return self.action_id


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class Alert(Event):
    SCHEMA = "com.integrationhub.Alert"
    EVENT_TYPE = "hub.alert"

    rule: str
    severity: Severity
    subject: str
    observed: float
    threshold: float
    window_seconds: float
    message: str

    def key(self) -> str:
        return f"{self.rule}:{self.subject}"
