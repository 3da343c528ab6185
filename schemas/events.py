"""Typed hub events. Each model mirrors one .avsc file in schemas/avro.

The .avsc files are the contract; these models are how Python code builds and
reads records. tests/schemas/test_events.py proves every model round-trips
through its schema, so the two cannot drift apart silently.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.codec import Codec, DecodeError


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


# --- inbound webhooks and payments ---------------------------------------


class RawWebhook(Event):
    SCHEMA = "com.integrationhub.RawWebhook"
    EVENT_TYPE = "webhook.received"

    provider: str
    provider_event_id: str
    provider_event_type: str | None = None
    content_type: str
    http_headers: dict[str, str]
    body: bytes
    received_at: datetime

    def key(self) -> str:
        return raw_webhook_key(self.provider, self.header.tenant, self.provider_event_id)


def raw_webhook_key(provider: str, tenant: str, provider_event_id: str) -> str:
    # Keyed by the provider's event id so every redelivery of one webhook lands
    # on the same partition as the dedup table entry that remembers it.
    return f"{provider}:{tenant}:{provider_event_id}"


class PaymentEventKind(StrEnum):
    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    FAILED = "FAILED"


class PaymentEvent(Event):
    SCHEMA = "com.integrationhub.PaymentEvent"
    EVENT_TYPE = "payments.payment.event"

    provider: str
    provider_event_id: str
    kind: PaymentEventKind
    payment_id: str
    order_id: str
    amount_minor: int
    currency: str
    method: str | None = None
    error_code: str | None = None
    error_description: str | None = None
    provider_created_at: datetime | None = None

    def key(self) -> str:
        return entity_key(self.header.tenant, self.order_id)


class PaymentMatched(Event):
    SCHEMA = "com.integrationhub.PaymentMatched"
    EVENT_TYPE = "payments.payment.matched"

    invoice_id: str
    request_id: str
    payment: PaymentEvent

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


# --- the fee module's events ---------------------------------------------


class Invoice(Event):
    SCHEMA = "com.integrationhub.Invoice"
    EVENT_TYPE = "fees.invoice.issued"

    invoice_id: str
    student_id: str
    student_name: str
    description: str
    amount_minor: int
    currency: str = "INR"
    due_date: date | None = None
    parent: Contact

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


class PaymentRequested(Event):
    SCHEMA = "com.integrationhub.PaymentRequested"
    EVENT_TYPE = "fees.payment.requested"

    request_id: str = Field(default_factory=new_id)
    invoice_id: str
    student_id: str
    student_name: str
    description: str
    amount_minor: int
    currency: str = "INR"
    gateway: str = "razorpay"
    parent: Contact

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


class OrderStatus(StrEnum):
    CREATED = "CREATED"
    FAILED = "FAILED"


class PaymentOrderResult(Event):
    SCHEMA = "com.integrationhub.PaymentOrderResult"
    EVENT_TYPE = "fees.payment.order"

    request_id: str
    invoice_id: str
    gateway: str
    status: OrderStatus
    order_id: str | None = None
    payment_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


class InvoiceStatus(StrEnum):
    UNPAID = "UNPAID"
    PAID = "PAID"


class InvoiceStatusChanged(Event):
    SCHEMA = "com.integrationhub.InvoiceStatusChanged"
    EVENT_TYPE = "fees.invoice.status_changed"

    invoice_id: str
    status: InvoiceStatus
    previous_status: InvoiceStatus
    paid_amount_minor: int
    currency: str
    order_id: str | None = None
    payment_id: str | None = None
    receipt_no: str | None = None

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


class PaymentStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class PaymentRecorded(Event):
    SCHEMA = "com.integrationhub.PaymentRecorded"
    EVENT_TYPE = "fees.payment.recorded"

    invoice_id: str
    order_id: str
    payment_id: str
    gateway: str
    status: PaymentStatus
    amount_minor: int
    currency: str
    method: str | None = None
    error_code: str | None = None
    error_description: str | None = None
    receipt_no: str | None = None
    receipt_url: str | None = None

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


# --- notifications and connectors -----------------------------------------


class Channel(StrEnum):
    SMS = "SMS"
    EMAIL = "EMAIL"


class Priority(StrEnum):
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"


class NotificationRequest(Event):
    SCHEMA = "com.integrationhub.NotificationRequest"
    EVENT_TYPE = "notifications.requested"

    notification_id: str = Field(default_factory=new_id)
    idempotency_key: str
    channel: Channel
    priority: Priority = Priority.NORMAL
    to: str
    to_name: str | None = None
    subject: str | None = None
    text: str
    html: str | None = None
    template: str | None = None

    def key(self) -> str:
        return entity_key(self.header.tenant, self.to)


class CreatePaymentOrder(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.CreatePaymentOrder"
    OPERATION: ClassVar[str] = "payment.create_order"

    amount_minor: int
    currency: str
    receipt: str
    notes: dict[str, str] = Field(default_factory=dict)


class SendSms(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.SendSms"
    OPERATION: ClassVar[str] = "sms.send"

    to: str
    text: str


class SendEmail(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.SendEmail"
    OPERATION: ClassVar[str] = "email.send"

    to: str
    to_name: str | None = None
    subject: str
    text: str
    html: str | None = None


class UpdateDirectoryUser(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.UpdateDirectoryUser"
    OPERATION: ClassVar[str] = "directory.update_user"

    user_email: str
    mobile_phone: str | None = None


class UpdateAppProfile(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.UpdateAppProfile"
    OPERATION: ClassVar[str] = "app.update_profile"

    student_id: str
    profile: dict[str, str | None]


class UpdateSmsContact(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.UpdateSmsContact"
    OPERATION: ClassVar[str] = "contacts.update"

    student_id: str
    phone: str


class SendPush(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.SendPush"
    OPERATION: ClassVar[str] = "push.send"

    topic: str
    title: str
    body: str
    data: dict[str, str] = Field(default_factory=dict)


CommandPayload = (
    CreatePaymentOrder
    | SendSms
    | SendEmail
    | UpdateDirectoryUser
    | UpdateAppProfile
    | UpdateSmsContact
    | SendPush
)
_PAYLOADS: dict[str, type[CommandPayload]] = {
    p.SCHEMA: p
    for p in (
        CreatePaymentOrder,
        SendSms,
        SendEmail,
        UpdateDirectoryUser,
        UpdateAppProfile,
        UpdateSmsContact,
        SendPush,
    )
}


class ConnectorCommand(Event):
    SCHEMA = "com.integrationhub.ConnectorCommand"
    EVENT_TYPE = "connector.command"

    command_id: str = Field(default_factory=new_id)
    idempotency_key: str
    provider: str
    payload: CommandPayload
    context: dict[str, str] = Field(default_factory=dict)
    ordering_key: str | None = None

    @property
    def operation(self) -> str:
        return self.payload.OPERATION

    def key(self) -> str:
        return entity_key(self.header.tenant, self.ordering_key or self.idempotency_key)

    def to_record(self) -> dict[str, Any]:
        record = self.model_dump()
        # Tag the union branch explicitly: SendSms's fields are a subset of SendEmail's.
        record["payload"] = (self.payload.SCHEMA, self.payload.model_dump())
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        name, body = record["payload"]
        return cls.model_validate({**record, "payload": _PAYLOADS[name].model_validate(body)})


class ResultStatus(StrEnum):
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class ConnectorResult(Event):
    SCHEMA = "com.integrationhub.ConnectorResult"
    EVENT_TYPE = "connector.result"

    command_id: str
    idempotency_key: str
    provider: str
    operation: str
    status: ResultStatus
    retryable: bool = False
    provider_ref: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int
    duplicate: bool = False
    details: dict[str, str] = Field(default_factory=dict)
    context: dict[str, str] = Field(default_factory=dict)
    ordering_key: str | None = None

    def key(self) -> str:
        # Same key as the command, so the result lands on the same partition
        # number as the command it answers (the idempotency ledger relies on it).
        return entity_key(self.header.tenant, self.ordering_key or self.idempotency_key)


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


# --- change data capture sync streams --------------------------------------

Value = bool | int | float | str | None


class CdcSource(_Model):
    db: str
    schema_: str = Field(alias="schema")
    table: str
    lsn: int | None = None
    tx_id: int | None = None
    committed_at: datetime
    snapshot: bool = False

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True
    )


class EntityState(Event):
    SCHEMA = "com.integrationhub.EntityState"
    EVENT_TYPE = "sync.entity.state"

    entity: str
    entity_id: str
    attributes: dict[str, Value]
    source: CdcSource

    def key(self) -> str:
        return entity_key(self.header.tenant, self.entity_id)


class ChangeOp(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class FieldChange(_Model):
    field: str
    old: Value = None
    new: Value = None


class EntityChange(Event):
    SCHEMA = "com.integrationhub.EntityChange"
    EVENT_TYPE = "sync.entity.changed"

    entity: str
    entity_id: str
    op: ChangeOp
    changes: list[FieldChange]
    source: CdcSource

    def key(self) -> str:
        return entity_key(self.header.tenant, self.entity_id)


EVENT_MODELS: dict[str, type[Event]] = {
    m.SCHEMA: m
    for m in (
        RawWebhook,
        PaymentEvent,
        PaymentMatched,
        Invoice,
        PaymentRequested,
        PaymentOrderResult,
        InvoiceStatusChanged,
        PaymentRecorded,
        NotificationRequest,
        ConnectorCommand,
        ConnectorResult,
        DeadLetter,
        EntityState,
        EntityChange,
        DeadLetterState,
        DlqAudit,
        Alert,
    )
}


class UnexpectedEventError(DecodeError):
    pass


def encode_event(codec: Codec, event: Event) -> bytes:
    return codec.encode(event.SCHEMA, event.to_record())


def decode_event(codec: Codec, data: bytes | None) -> Event:
    """Decode any hub event; every failure is a DecodeError (a poison pill)."""
    decoded = codec.decode(data)
    model = EVENT_MODELS.get(decoded.schema)
    if model is None:
        raise UnexpectedEventError(f"{decoded.schema} is not a hub event")
    try:
        return model.from_record(decoded.record)
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"{decoded.schema} record is not valid: {exc}") from exc


E = TypeVar("E", bound=Event)


def decode_as(codec: Codec, data: bytes | None, model: type[E]) -> E:
    event = decode_event(codec, data)
    if not isinstance(event, model):
        raise UnexpectedEventError(f"expected {model.SCHEMA}, got {event.SCHEMA}")
    return event
