"""Notification requests, connector commands and their results."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import Field

from schemas.events._base import Event, _Model, entity_key, new_id


class Channel(StrEnum):
    SMS = "SMS"
    EMAIL = "EMAIL"
    WHATSAPP = "WHATSAPP"


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
    # A named template of the tenant's (processors.templates) rendered with `variables`
    # in `locale`; `text`/`subject`/`html` are then ignored (and may be empty).
    template: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    locale: str | None = None
    # Set on the messages of a bulk send (BulkSendRequest): the report counts them.
    bulk_id: str | None = None

    def key(self) -> str:
        # Keyed by tenant: a school's messages share one partition, where its
        # quotas, per-recipient limits, bulk reports and message stories live.
        return self.header.tenant


class CreatePaymentOrder(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.CreatePaymentOrder"
    OPERATION: ClassVar[str] = "payment.create_order"

    amount_minor: int
    currency: str
    receipt: str
    notes: dict[str, str] = Field(default_factory=dict)
    # Where the gateway calls back (M-Pesa, Paytm take it per order) and where the
    # payer's browser returns after checkout (Stripe, PayPal). None: the account's own.
    callback_url: str | None = None
    return_url: str | None = None


class FetchPaymentStatus(_Model):
    """Ask the gateway what became of an order (a missed webhook, an IPN with ids only)."""

    SCHEMA: ClassVar[str] = "com.integrationhub.FetchPaymentStatus"
    OPERATION: ClassVar[str] = "payment.fetch_status"

    order_id: str
    # Why the hub asks: "missed_webhook", "ipn", "confirm" (for logs and the audit trail).
    reason: str = "missed_webhook"
    # What the order was for (0/"": unknown). A gateway whose status answer does not
    # repeat the amount (M-Pesa's STK query: the push fixed it) reports this one.
    amount_minor: int = 0
    currency: str = ""


class CapturePayment(_Model):
    """Capture an approved order (gateways that authorize first: PayPal)."""

    SCHEMA: ClassVar[str] = "com.integrationhub.CapturePayment"
    OPERATION: ClassVar[str] = "payment.capture"

    order_id: str


class RefundPayment(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.RefundPayment"
    OPERATION: ClassVar[str] = "payment.refund"

    payment_id: str
    order_id: str
    amount_minor: int
    currency: str
    reason: str = ""
    # The gateway's reference for the payment when it differs from payment_id (M-Pesa).
    gateway_reference: str = ""


class SendSms(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.SendSms"
    OPERATION: ClassVar[str] = "sms.send"

    to: str
    text: str
    # Where the provider posts this message's delivery receipts, for providers that
    # take it per message (Twilio's StatusCallback); None: the account's dashboard setting.
    callback_url: str | None = None
    # Template sends (MSG91's Flow API): the provider's template id and its variables;
    # India's DLT registration ids travel with them (TRAI).
    template_id: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    dlt_template_id: str | None = None
    dlt_entity_id: str | None = None


class SendEmail(_Model):
    SCHEMA: ClassVar[str] = "com.integrationhub.SendEmail"
    OPERATION: ClassVar[str] = "email.send"

    to: str
    to_name: str | None = None
    subject: str
    text: str
    html: str | None = None


class SendWhatsApp(_Model):
    """A WhatsApp Business template message (outside the 24 h window only templates go)."""

    SCHEMA: ClassVar[str] = "com.integrationhub.SendWhatsApp"
    OPERATION: ClassVar[str] = "whatsapp.send"

    to: str
    template: str  # the approved template's name at Meta
    language: str = "en"
    parameters: list[str] = Field(default_factory=list)  # the body's {{1}}, {{2}}, ...
    # Echoed in the status webhooks (biz_opaque_callback_data): ties a receipt to the message.
    callback_data: str | None = None
    text: str = ""  # the rendered text, for the message's story (not sent)


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
    | FetchPaymentStatus
    | CapturePayment
    | RefundPayment
    | SendWhatsApp
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
        FetchPaymentStatus,
        CapturePayment,
        RefundPayment,
        SendWhatsApp,
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
    # Where this command stands among its ordering key's (a change's LSN).
    ordering_version: int | None = None
    # The tenant's account to use (its label); None: the provider's primary.
    account: str | None = None

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
    # Not sent: a newer command for the same ordering key was delivered first.
    SUPERSEDED = "SUPERSEDED"


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
        # One result per command: keyed by its idempotency key, never by the
        # ordering key (a compacted topic keyed by row kept one result per row).
        return entity_key(self.header.tenant, self.idempotency_key)
