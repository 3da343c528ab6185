"""Typed hub events. Each model mirrors one .avsc file in schemas/avro.

The .avsc files are the contract; these models are how Python code builds and
reads records. tests/unit/test_events.py proves every model round-trips
through its schema, so the two cannot drift apart silently. The models live
in one private module per domain; import them from here.
"""

from __future__ import annotations

from typing import TypeVar

from schemas.codec import Codec, DecodeError
from schemas.events._audit import AuditDirection, AuditOutcome, ProviderCallAudit
from schemas.events._base import (
    Contact,
    Event,
    EventHeader,
    entity_key,
    new_id,
    utcnow,
)
from schemas.events._catalog import CatalogAccount, SealedSecrets, TenantCatalogEntry
from schemas.events._commands import (
    CapturePayment,
    Channel,
    CommandPayload,
    ConnectorCommand,
    ConnectorResult,
    CreatePaymentOrder,
    FetchPaymentStatus,
    NotificationRequest,
    Priority,
    RefundPayment,
    ResultStatus,
    SendEmail,
    SendPush,
    SendSms,
    SendWhatsApp,
    UpdateAppProfile,
    UpdateDirectoryUser,
    UpdateSmsContact,
)
from schemas.events._fees import (
    Invoice,
    InvoiceDetails,
    InvoiceStatus,
    InvoiceStatusChanged,
    OrderStatus,
    PaymentOrderResult,
    PaymentRecorded,
    PaymentRequested,
    PaymentStatus,
)
from schemas.events._messages import (
    BulkRecipient,
    BulkReport,
    BulkSendRequest,
    DeliveryReceipt,
    MessageEvent,
    MessageStep,
    ProviderTally,
    ReceiptStatus,
)
from schemas.events._operations import (
    Alert,
    DeadLetter,
    DeadLetterState,
    DeadLetterStatus,
    DlqAction,
    DlqActionPhase,
    DlqAudit,
    KafkaHeader,
    Severity,
)
from schemas.events._payments import (
    PaymentEvent,
    PaymentEventKind,
    PaymentMatched,
    RawWebhook,
    raw_webhook_key,
)
from schemas.events._sync import (
    CdcSource,
    ChangeOp,
    EntityChange,
    EntityState,
    FieldChange,
    Value,
)

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
        TenantCatalogEntry,
        ProviderCallAudit,
        DeliveryReceipt,
        MessageEvent,
        BulkSendRequest,
        BulkReport,
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


__all__ = [
    "EVENT_MODELS",
    "Alert",
    "AuditDirection",
    "AuditOutcome",
    "BulkRecipient",
    "BulkReport",
    "BulkSendRequest",
    "CapturePayment",
    "CatalogAccount",
    "CdcSource",
    "ChangeOp",
    "Channel",
    "CommandPayload",
    "ConnectorCommand",
    "ConnectorResult",
    "Contact",
    "CreatePaymentOrder",
    "DeadLetter",
    "DeadLetterState",
    "DeadLetterStatus",
    "DeliveryReceipt",
    "DlqAction",
    "DlqActionPhase",
    "DlqAudit",
    "EntityChange",
    "EntityState",
    "Event",
    "EventHeader",
    "FetchPaymentStatus",
    "FieldChange",
    "Invoice",
    "InvoiceDetails",
    "InvoiceStatus",
    "InvoiceStatusChanged",
    "KafkaHeader",
    "MessageEvent",
    "MessageStep",
    "NotificationRequest",
    "OrderStatus",
    "PaymentEvent",
    "PaymentEventKind",
    "PaymentMatched",
    "PaymentOrderResult",
    "PaymentRecorded",
    "PaymentRequested",
    "PaymentStatus",
    "Priority",
    "ProviderCallAudit",
    "ProviderTally",
    "RawWebhook",
    "ReceiptStatus",
    "RefundPayment",
    "ResultStatus",
    "SealedSecrets",
    "SendEmail",
    "SendPush",
    "SendSms",
    "SendWhatsApp",
    "Severity",
    "TenantCatalogEntry",
    "UnexpectedEventError",
    "UpdateAppProfile",
    "UpdateDirectoryUser",
    "UpdateSmsContact",
    "Value",
    "decode_as",
    "decode_event",
    "encode_event",
    "entity_key",
    "new_id",
    "raw_webhook_key",
    "utcnow",
]
