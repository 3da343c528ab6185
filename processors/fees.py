"""Fee reconciliation: one invoice's state and what each event does to it. Pure.

`apply(state, event, ctx)` returns the new state and the events to emit; the
faust agent only loads and stores the state and sends what this returns.
Everything here is safe to apply twice: a redelivered payment request
creates no second order (the request id is remembered and the gateway call
carries an idempotency key), a redelivered payment changes nothing (the
payment id is remembered), and every notification's idempotency key is
derived from the payment, so a connector never sends it twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from core.tenants import TenantDirectory
from core.topics import (
    INVOICE_STATUS,
    NOTIFICATION_REQUESTS,
    ORDER_LINKS,
    PAYMENT_ORDERS,
    PAYMENTS_RECORDED,
    commands_topic,
)
from processors import messages
from processors.emit import Emit
from schemas.events import (
    Channel,
    ConnectorCommand,
    ConnectorResult,
    Contact,
    CreatePaymentOrder,
    Event,
    EventHeader,
    Invoice,
    InvoiceDetails,
    InvoiceStatus,
    InvoiceStatusChanged,
    NotificationRequest,
    OrderStatus,
    PaymentEvent,
    PaymentEventKind,
    PaymentMatched,
    PaymentOrderResult,
    PaymentRecorded,
    PaymentRequested,
    PaymentStatus,
    Priority,
    ResultStatus,
    entity_key,
)

SOURCE = "reconciler"


@dataclass(frozen=True)
class FeeContext:
    tenants: TenantDirectory
    payment_url_template: str
    receipt_url_template: str

    def payment_url(self, tenant: str, order_id: str, invoice_id: str) -> str:
        return self.payment_url_template.format(
            order_id=order_id, tenant=tenant, invoice_id=invoice_id
        )

    def receipt_url(self, tenant: str, receipt_no: str) -> str:
        return self.receipt_url_template.format(receipt_no=receipt_no, tenant=tenant)

    def school(self, tenant: str) -> str:
        account = self.tenants.get(tenant)
        return account.name if account and account.name else tenant


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
    # "<payment id>:<kind>" of every payment event already applied
    applied: list[str] = Field(default_factory=list)
    receipt_no: str | None = None


@dataclass
class Transition:
    state: InvoiceState
    emits: list[Emit] = field(default_factory=list)


def _header(cause: EventHeader, event_type: str, state: InvoiceState) -> EventHeader:
    # Everything about one invoice shares the flow's correlation id, whichever
    # event caused it, so one query finds Mrs. Sharma's whole payment.
    return EventHeader.new(
        event_type,
        cause.tenant,
        source=SOURCE,
        correlation_id=state.correlation_id or cause.correlation_id,
        causation_id=cause.event_id,
    )


def _with_details(state: InvoiceState | None, src: InvoiceDetails) -> InvoiceState:
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


def on_invoice(state: InvoiceState | None, invoice: Invoice) -> Transition:
    return Transition(_with_details(state, invoice))


def _order_failed(req: PaymentRequested, state: InvoiceState, code: str, message: str) -> Emit:
    return Emit(
        PAYMENT_ORDERS,
        PaymentOrderResult(
            header=_header(req.header, PaymentOrderResult.EVENT_TYPE, state),
            request_id=req.request_id,
            invoice_id=req.invoice_id,
            gateway=req.gateway,
            status=OrderStatus.FAILED,
            error_code=code,
            error_message=message,
        ),
    )


def receipt_for_gateway(request_id: str) -> str:
    # Razorpay caps receipt at 40 characters and, with unique_receipt, treats it
    # as the idempotency key of order creation: two requests must never share
    # one, so a long id is hashed rather than cut.
    receipt = f"rcpt_{request_id}"
    if len(receipt) <= 40:
        return receipt
    return f"rcpt_{hashlib.sha256(request_id.encode()).hexdigest()[:35]}"


def on_payment_requested(
    state: InvoiceState | None, req: PaymentRequested, ctx: FeeContext
) -> Transition:
    if state is not None and req.request_id in state.requests:
        return Transition(state)
    new = _with_details(state, req) if state is None or not state.description else state
    # Remember the request whatever the answer, so its redelivery is a no-op.
    new = new.model_copy(update={"requests": {**new.requests, req.request_id: None}})
    if new.status is InvoiceStatus.PAID:
        return Transition(
            new, [_order_failed(req, new, "ALREADY_PAID", "the invoice is already paid")]
        )
    tenant = ctx.tenants.get(req.header.tenant)
    if tenant is None or not tenant.has(req.gateway):
        return Transition(
            new,
            [
                _order_failed(
                    req,
                    new,
                    "GATEWAY_NOT_CONFIGURED",
                    f"{req.gateway} is not set up for this school",
                )
            ],
        )
    command = ConnectorCommand(
        header=_header(req.header, "connector.payment.create_order", new),
        idempotency_key=f"payment-order:{req.request_id}",
        provider=req.gateway,
        payload=CreatePaymentOrder(
            amount_minor=req.amount_minor,
            currency=req.currency,
            receipt=receipt_for_gateway(req.request_id),
            notes={
                "invoice_id": req.invoice_id,
                "student_id": req.student_id,
                "request_id": req.request_id,
            },
        ),
        context={"invoice_id": req.invoice_id, "request_id": req.request_id},
    )
    return Transition(new, [Emit(commands_topic(req.gateway), command)])


def order_results(result: ConnectorResult, ctx: FeeContext) -> list[Emit]:
    """A gateway's answer to order creation, for the fee module and the order matcher."""
    invoice_id = result.context.get("invoice_id")
    request_id = result.context.get("request_id")
    if result.operation != CreatePaymentOrder.OPERATION or not invoice_id or not request_id:
        return []
    header = result.header.caused(PaymentOrderResult.EVENT_TYPE, source=SOURCE)
    if result.status is ResultStatus.DELIVERED and result.provider_ref:
        order = PaymentOrderResult(
            header=header,
            request_id=request_id,
            invoice_id=invoice_id,
            gateway=result.provider,
            status=OrderStatus.CREATED,
            order_id=result.provider_ref,
            payment_url=ctx.payment_url(header.tenant, result.provider_ref, invoice_id),
        )
        link_key = entity_key(header.tenant, result.provider_ref)
        return [Emit(PAYMENT_ORDERS, order), Emit(ORDER_LINKS, order, key=link_key)]
    return [
        Emit(
            PAYMENT_ORDERS,
            PaymentOrderResult(
                header=header,
                request_id=request_id,
                invoice_id=invoice_id,
                gateway=result.provider,
                status=OrderStatus.FAILED,
                error_code=result.error_code or str(result.http_status or ""),
                error_message=result.error_message,
            ),
        )
    ]


def on_order_result(state: InvoiceState | None, result: PaymentOrderResult) -> Transition:
    base = state or InvoiceState(tenant=result.header.tenant, invoice_id=result.invoice_id)
    if result.status is not OrderStatus.CREATED:
        return Transition(base)
    return Transition(
        base.model_copy(update={"requests": {**base.requests, result.request_id: result.order_id}})
    )


def _notify(
    state: InvoiceState,
    cause: EventHeader,
    channel: Channel,
    key: str,
    *,
    text: str,
    subject: str | None = None,
    html: str | None = None,
) -> Emit | None:
    parent = state.parent
    to = (parent.phone if channel is Channel.SMS else parent.email) if parent else None
    if not to:
        return None
    return Emit(
        NOTIFICATION_REQUESTS,
        NotificationRequest(
            header=_header(cause, NotificationRequest.EVENT_TYPE, state),
            idempotency_key=key,
            channel=channel,
            priority=Priority.HIGH,
            to=to,
            to_name=parent.name if parent else None,
            subject=subject,
            text=text,
            html=html,
            template=key.split(":", 1)[0],
        ),
    )


def _recorded(
    state: InvoiceState,
    match: PaymentMatched,
    status: PaymentStatus,
    receipt_no: str | None,
    ctx: FeeContext,
) -> Emit:
    p = match.payment
    return Emit(
        PAYMENTS_RECORDED,
        PaymentRecorded(
            header=_header(match.header, PaymentRecorded.EVENT_TYPE, state),
            invoice_id=state.invoice_id,
            order_id=p.order_id,
            payment_id=p.payment_id,
            gateway=p.provider,
            status=status,
            amount_minor=p.amount_minor,
            currency=p.currency,
            method=p.method,
            error_code=p.error_code,
            error_description=p.error_description,
            receipt_no=receipt_no,
            receipt_url=ctx.receipt_url(state.tenant, receipt_no) if receipt_no else None,
        ),
    )


def _captured(state: InvoiceState, match: PaymentMatched, ctx: FeeContext) -> Transition:
    p = match.payment
    if state.status is InvoiceStatus.PAID:
        # A second captured payment on a paid invoice: record it so the fee
        # module can refund it, but the invoice and the parent hear nothing new.
        return Transition(state, [_recorded(state, match, PaymentStatus.SUCCESS, None, ctx)])
    paid = state.paid_amount_minor + p.amount_minor
    receipt_no = messages.receipt_number(state.tenant, p.payment_id, match.header.occurred_at.year)
    status = InvoiceStatus.PAID if paid >= state.amount_minor else InvoiceStatus.UNPAID
    new = state.model_copy(
        update={"status": status, "paid_amount_minor": paid, "receipt_no": receipt_no}
    )
    emits = [_recorded(new, match, PaymentStatus.SUCCESS, receipt_no, ctx)]
    if status is InvoiceStatus.PAID:
        emits.insert(
            0,
            Emit(
                INVOICE_STATUS,
                InvoiceStatusChanged(
                    header=_header(match.header, InvoiceStatusChanged.EVENT_TYPE, new),
                    invoice_id=new.invoice_id,
                    status=status,
                    previous_status=state.status,
                    paid_amount_minor=paid,
                    currency=new.currency,
                    order_id=p.order_id,
                    payment_id=p.payment_id,
                    receipt_no=receipt_no,
                ),
            ),
        )
    amount = messages.format_money(p.amount_minor, p.currency)
    receipt_url = ctx.receipt_url(new.tenant, receipt_no)
    sms = messages.payment_success_sms(amount, new.description, new.student_name, receipt_url)
    email = messages.receipt_email(
        parent=new.parent.name if new.parent else "Parent",
        student=new.student_name,
        description=new.description,
        amount=amount,
        receipt_no=receipt_no,
        receipt_url=receipt_url,
        payment_id=p.payment_id,
        school=ctx.school(new.tenant),
    )
    base = f"payment-receipt:{p.payment_id}"
    notes = [
        _notify(new, match.header, Channel.SMS, f"{base}:sms", text=sms),
        _notify(
            new,
            match.header,
            Channel.EMAIL,
            f"{base}:email",
            text=email.text,
            subject=email.subject,
            html=email.html,
        ),
    ]
    return Transition(new, emits + [n for n in notes if n])


def _failed(state: InvoiceState, match: PaymentMatched, ctx: FeeContext) -> Transition:
    p = match.payment
    url = ctx.payment_url(state.tenant, p.order_id, state.invoice_id)
    emits = [_recorded(state, match, PaymentStatus.FAILED, None, ctx)]
    if state.status is not InvoiceStatus.PAID:
        sms = _notify(
            state,
            match.header,
            Channel.SMS,
            f"payment-failed:{p.payment_id}:sms",
            text=messages.payment_failed_sms(p.error_description, url),
        )
        emits += [sms] if sms else []
    return Transition(state, emits)


def on_payment_matched(
    state: InvoiceState | None, match: PaymentMatched, ctx: FeeContext
) -> Transition:
    base = state or InvoiceState(tenant=match.header.tenant, invoice_id=match.invoice_id)
    p: PaymentEvent = match.payment
    marker = f"{p.payment_id}:{p.kind}"
    if marker in base.applied or p.kind is PaymentEventKind.AUTHORIZED:
        return Transition(base)
    base = base.model_copy(update={"applied": [*base.applied, marker]})
    return (
        _captured(base, match, ctx)
        if p.kind is PaymentEventKind.CAPTURED
        else _failed(base, match, ctx)
    )


def apply(state: InvoiceState | None, event: Event, ctx: FeeContext) -> Transition:
    if isinstance(event, Invoice):
        return on_invoice(state, event)
    if isinstance(event, PaymentRequested):
        return on_payment_requested(state, event, ctx)
    if isinstance(event, PaymentOrderResult):
        return on_order_result(state, event)
    if isinstance(event, PaymentMatched):
        return on_payment_matched(state, event, ctx)
    raise TypeError(f"the invoice ledger does not take {event.SCHEMA}")
