"""Messages after the send: delivery receipts, each message's story, bulk sends and reports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from schemas.events._base import Event, _Model, entity_key
from schemas.events._commands import Channel


class ReceiptStatus(StrEnum):
    # On its way (queued, sent to the carrier): not final, changes nothing but the story.
    SENT = "SENT"
    DELIVERED = "DELIVERED"  # final: the handset / mailbox has it
    UNDELIVERED = "UNDELIVERED"  # final: accepted by the provider, never arrived
    READ = "READ"  # after DELIVERED (WhatsApp read receipts, email opens)


class DeliveryReceipt(Event):
    """A provider's word on a message it accepted, normalized from its callback."""

    SCHEMA = "com.integrationhub.DeliveryReceipt"
    EVENT_TYPE = "messages.receipt"

    provider: str
    provider_event_id: str
    # The provider's message id, as its send answer gave it (Twilio's SM..., MSG91's
    # request id, Africa's Talking's ATXid_..., SendGrid's X-Message-Id, wamid...).
    provider_ref: str
    status: ReceiptStatus
    provider_status: str  # the provider's own word ("undelivered", "Failed", "bounce")
    recipient: str | None = None
    error_code: str | None = None
    error_description: str | None = None
    occurred_at: datetime | None = None
    # The command's idempotency key where the provider echoes it back (SendGrid's
    # custom_args, Mailgun's user-variables, WhatsApp's biz_opaque_callback_data).
    idempotency_key: str | None = None

    def key(self) -> str:
        return self.header.tenant


class MessageStep(StrEnum):
    REQUESTED = "REQUESTED"
    REJECTED = "REJECTED"  # never sent: an unknown template, a missing variable, no provider
    WAITING = "WAITING"  # over a rate limit: held, never dropped
    ROUTED = "ROUTED"  # a command to a provider account
    SENT = "SENT"  # the provider accepted it
    SEND_FAILED = "SEND_FAILED"  # the provider refused it or could not be reached
    RECEIPT = "RECEIPT"  # a delivery receipt (any status)
    FAILING_OVER = "FAILING_OVER"  # on to the next provider, and why
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # final: no provider could deliver it


class MessageEvent(Event):
    """One step of one message's story (`hub messages show ID` reads them in order)."""

    SCHEMA = "com.integrationhub.MessageEvent"
    EVENT_TYPE = "messages.step"

    message_id: str
    step: MessageStep
    channel: Channel
    to: str
    provider: str | None = None
    account: str | None = None
    provider_ref: str | None = None
    attempt: int = 0  # which provider attempt (1: the first account tried)
    detail: str = ""
    cost_minor: int | None = None
    bulk_id: str | None = None

    def key(self) -> str:
        return self.header.tenant


class BulkRecipient(_Model):
    to: str
    to_name: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    # Caller's own id for the row (a student id): shown in the report's failures.
    reference: str | None = None


class BulkSendRequest(Event):
    """One part of a bulk send: a bulk of 20,000 recipients arrives in parts (producers
    split it) so no record exceeds Kafka's message size; parts may come in any order."""

    SCHEMA = "com.integrationhub.BulkSendRequest"
    EVENT_TYPE = "messages.bulk.requested"

    bulk_id: str
    channel: Channel
    template: str
    locale: str | None = None
    part: int = 1
    parts: int = 1
    first_index: int = 0  # the position of this part's first recipient in the whole bulk
    total_recipients: int
    batch_size: int = 100
    recipients: list[BulkRecipient]

    def key(self) -> str:
        return self.header.tenant


class ProviderTally(_Model):
    provider: str
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    cost_minor: int = 0


class BulkReport(Event):
    """Where a bulk send stands (compacted: the newest report per bulk)."""

    SCHEMA = "com.integrationhub.BulkReport"
    EVENT_TYPE = "messages.bulk.report"

    bulk_id: str
    channel: Channel
    template: str
    total: int
    accepted: int = 0  # recipients the hub has taken in (parts arrived)
    released: int = 0  # handed to a provider (the batches so far)
    sent: int = 0  # accepted by a provider, no final receipt yet
    delivered: int = 0
    failed: int = 0  # final failures (after the alternate provider)
    rejected: int = 0  # never sent: a template variable missing for that row
    pending: int = 0  # not yet final
    retried_on_alternate: int = 0
    by_provider: list[ProviderTally] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)  # "<to> (<reference>): <reason>", first 100
    complete: bool = False

    def key(self) -> str:
        return entity_key(self.header.tenant, self.bulk_id)
