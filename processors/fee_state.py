"""One invoice's state, and what the fee rules read from outside it. Pure.

Shared by the two halves of the fee ledger: processors.fees (payment
requests and gateway orders) and processors.fee_payments (payments).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from core.tenants import TenantDirectory
from processors.emit import Emit
from processors.gateways import GatewayHealth, HealthView
from schemas.events import Contact, EventHeader, InvoiceDetails, InvoiceStatus

SOURCE = "reconciler"
# Routing channel naming the gateway accounts whose duplicate payments the hub
# refunds by itself (the school's policy); unlisted: flagged for a person to decide.
REFUNDS = "refunds"


@dataclass(frozen=True)
class FeeContext:
    tenants: TenantDirectory
    payment_url_template: str
    receipt_url_template: str
    # Where gateways call back ({provider}, {tenant}); "" leaves it to the account's setting.
    webhook_url_template: str = ""
    # Where the payer's browser returns after checkout ({tenant}, {invoice_id}).
    return_url_template: str = ""
    health: GatewayHealth | None = None
    # How long a created order may go without a payment before the gateway is asked.
    poll_after_seconds: float = 900.0
    max_polls: int = 3

    def payment_url(self, tenant: str, order_id: str, invoice_id: str) -> str:
        return self.payment_url_template.format(
            order_id=order_id, tenant=tenant, invoice_id=invoice_id
        )

    def receipt_url(self, tenant: str, receipt_no: str) -> str:
        return self.receipt_url_template.format(receipt_no=receipt_no, tenant=tenant)

    def callback_url(self, provider: str, tenant: str) -> str | None:
        if not self.webhook_url_template:
            return None
        return self.webhook_url_template.format(provider=provider, tenant=tenant)

    def return_url(self, tenant: str, invoice_id: str) -> str | None:
        if not self.return_url_template:
            return None
        return self.return_url_template.format(tenant=tenant, invoice_id=invoice_id)

    def school(self, tenant: str) -> str:
        account = self.tenants.get(tenant)
        return account.name if account and account.name else tenant

    def health_views(self) -> dict[str, HealthView]:
        return self.health.views() if self.health else {}

    def refunds_automatically(self, tenant: str, account: str | None) -> bool:
        found = self.tenants.get(tenant)
        return bool(found and account and account in found.routing.get(REFUNDS, ()))


class GatewayAttempt(BaseModel):
    """One payment request's way through the school's gateways."""

    plan: list[tuple[str, str]]  # (provider, account label), in the order to try
    tried: list[str] = Field(default_factory=list)  # labels already asked
    provider: str
    label: str
    amount_minor: int
    currency: str
    order_id: str | None = None
    payment_url: str | None = None  # where the payer pays it (the gateway's checkout)
    ordered_at: float | None = None  # when the gateway created the order (epoch s)
    polls: int = 0
    settled: bool = False  # a payment (or a final failure) was seen for the order

    def next_choice(self) -> tuple[str, str] | None:
        return next(((p, label) for p, label in self.plan if label not in self.tried), None)


class InvoiceState(BaseModel):
    tenant: str
    invoice_id: str
    student_id: str = ""
    student_name: str = ""
    description: str = ""
    amount_minor: int = 0
    currency: str = "INR"
    parent: Contact | None = None
    status: InvoiceStatus = InvoiceStatus.UNPAID
    paid_amount_minor: int = 0
    correlation_id: str | None = None
    # request id -> gateway order id (None until the gateway answered)
    requests: dict[str, str | None] = Field(default_factory=dict)
    # request id -> which gateways it went to, and the order it got
    attempts: dict[str, GatewayAttempt] = Field(default_factory=dict)
    # "<payment id>:<kind>" of every payment event already applied
    applied: list[str] = Field(default_factory=list)
    receipt_no: str | None = None
    gateway: str | None = None  # the gateway that took the (first) payment

    @property
    def due_minor(self) -> int:
        return max(0, self.amount_minor - self.paid_amount_minor)


@dataclass
class Transition:
    state: InvoiceState
    emits: list[Emit] = field(default_factory=list)


def header_for(cause: EventHeader, event_type: str, state: InvoiceState) -> EventHeader:
    # Everything about one invoice shares the flow's correlation id, whichever
    # event caused it, so one query finds Mrs. Sharma's whole payment.
    return EventHeader.new(
        event_type,
        cause.tenant,
        source=SOURCE,
        correlation_id=state.correlation_id or cause.correlation_id,
        causation_id=cause.event_id,
    )


def with_details(state: InvoiceState | None, src: InvoiceDetails) -> InvoiceState:
    base = state or InvoiceState(tenant=src.header.tenant, invoice_id=src.invoice_id)
    return base.model_copy(
        update={
            "student_id": src.student_id,
            "student_name": src.student_name,
            "description": src.description,
            "amount_minor": src.amount_minor,
            "currency": src.currency,
            "parent": src.parent,
            "correlation_id": base.correlation_id or src.header.correlation_id,
        }
    )
