"""The fee module's events, and what the hub tells it back."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.events._base import Contact, Event, entity_key, new_id


class InvoiceDetails(Event):
    """What an invoice and a request to collect it both say (not an event of its own)."""

    invoice_id: str
    student_id: str
    student_name: str
    description: str
    amount_minor: int
    currency: str = "INR"
    parent: Contact

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


class Invoice(InvoiceDetails):
    SCHEMA = "com.integrationhub.Invoice"
    EVENT_TYPE = "fees.invoice.issued"

    due_date: date | None = None


class PaymentRequested(InvoiceDetails):
    SCHEMA = "com.integrationhub.PaymentRequested"
    EVENT_TYPE = "fees.payment.requested"

    request_id: str = Field(default_factory=new_id)
    # The gateway to use; "" lets the school's payment routing choose, with failover.
    gateway: str = ""

    @classmethod
    def for_invoice(cls, invoice: Invoice, *, source: str, **extra: Any) -> PaymentRequested:
        """The fee module's "Pay Now" for an invoice: its details, caused by it."""
        details = {name: getattr(invoice, name) for name in InvoiceDetails.model_fields}
        return cls(
            **{
                **details,
                "header": invoice.header.caused(cls.EVENT_TYPE, source=source),
                **extra,
            }
        )


class OrderStatus(StrEnum):
    CREATED = "CREATED"
    FAILED = "FAILED"
    # This gateway could not create the order; the hub is asking the next one.
    FAILING_OVER = "FAILING_OVER"


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
    account: str | None = None  # the school's gateway account (its label)

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


class InvoiceStatus(StrEnum):
    UNPAID = "UNPAID"
    PAID = "PAID"
    PARTIALLY_PAID = "PARTIALLY_PAID"


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
    gateway: str | None = None  # the gateway that took the payment

    def key(self) -> str:
        return entity_key(self.header.tenant, self.invoice_id)


class PaymentStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    # A second successful payment on a paid invoice: flagged for a refund.
    DUPLICATE = "DUPLICATE"
    REFUNDED = "REFUNDED"


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
