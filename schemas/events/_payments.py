"""Inbound webhooks and provider-neutral payment events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from schemas.events._base import Event, entity_key


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
    # The tenant's account whose webhook secret verified the signature.
    account: str | None = None

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
    # The gateway's own reference for the money where it differs from payment_id
    # (M-Pesa's receipt number, while payment_id is the CheckoutRequestID): a refund names it.
    gateway_reference: str | None = None

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
