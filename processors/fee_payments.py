"""What a matched payment does to its invoice: money checks, PAID or PARTIALLY_PAID. Pure.

- The payment's currency must be the invoice's, and its amount at most what
  its order asked for: anything else raises `PaymentMismatchError`, which the
  stage turns into a dead letter with the reason — never a PAID invoice.
- Less than the whole fee: PARTIALLY_PAID, and the parent is told what is
  still due (never "Payment successful" for the whole amount).
- A second successful payment on a paid invoice is recorded as DUPLICATE and,
  when the school lists the account under routing "refunds", refunded through
  the gateway's refund API (once: the refund's key is the payment's).
- Each payment applies once: "<payment id>:<kind>" is remembered, so a webhook
  and a status query reporting the same payment change nothing twice.
"""

from __future__ import annotations

from core.topics import INVOICE_STATUS, NOTIFICATION_REQUESTS, PAYMENTS_RECORDED, commands_topic
from processors import messages
from processors.emit import Emit
from processors.fee_state import FeeContext, InvoiceState, Transition, header_for
from schemas.events import (
    Channel,
    ConnectorCommand,
    ConnectorResult,
    EventHeader,
    InvoiceStatus,
    InvoiceStatusChanged,
    NotificationRequest,
    PaymentEvent,
    PaymentEventKind,
    PaymentMatched,
    PaymentRecorded,
    PaymentStatus,
    Priority,
    RefundPayment,
    ResultStatus,
)


class PaymentMismatchError(ValueError):
    """A payment that does not fit its order (amount or currency): a dead letter."""


def check_money(state: InvoiceState, match: PaymentMatched) -> None:
    p = match.payment
    attempt = state.attempts.get(match.request_id)
    currency = attempt.currency if attempt else state.currency
    if p.currency.upper() != currency.upper():
        raise PaymentMismatchError(
            f"payment {p.payment_id} at {p.provider} is in {p.currency}, but order "
            f"{p.order_id} for invoice {state.invoice_id} is in {currency}"
        )
    if p.kind is not PaymentEventKind.CAPTURED:
        return
    if p.amount_minor <= 0:
        raise PaymentMismatchError(f"payment {p.payment_id} has no amount ({p.amount_minor})")
    # An order's amount caps its payment; a paybill payment (no order) is capped by what is due.
    limit = attempt.amount_minor if attempt else state.due_minor
    if state.status is not InvoiceStatus.PAID and p.amount_minor > limit:
        raise PaymentMismatchError(
            f"payment {p.payment_id} at {p.provider} is "
            f"{messages.format_money(p.amount_minor, p.currency)}, but order {p.order_id} "
            f"for invoice {state.invoice_id} asked for {messages.format_money(limit, currency)}"
        )


def notify(
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
            header=header_for(cause, NotificationRequest.EVENT_TYPE, state),
            idempotency_key=key,
            channel=channel,
            priority=Priority.HIGH,
            to=to,
            to_name=parent.name if parent else None,
            subject=subject,
            text=text,
            html=html,
        ),
    )


def recorded(
    state: InvoiceState,
    cause: EventHeader,
    p: PaymentEvent,
    status: PaymentStatus,
    ctx: FeeContext,
    *,
    receipt_no: str | None = None,
) -> Emit:
    return Emit(
        PAYMENTS_RECORDED,
        PaymentRecorded(
            header=header_for(cause, PaymentRecorded.EVENT_TYPE, state),
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


def _status_changed(
    new: InvoiceState, previous: InvoiceStatus, match: PaymentMatched, receipt_no: str
) -> Emit:
    p = match.payment
    return Emit(
        INVOICE_STATUS,
        InvoiceStatusChanged(
            header=header_for(match.header, InvoiceStatusChanged.EVENT_TYPE, new),
            invoice_id=new.invoice_id,
            status=new.status,
            previous_status=previous,
            paid_amount_minor=new.paid_amount_minor,
            currency=new.currency,
            order_id=p.order_id,
            payment_id=p.payment_id,
            receipt_no=receipt_no,
            gateway=p.provider,
        ),
    )


def _duplicate(state: InvoiceState, match: PaymentMatched, ctx: FeeContext) -> Transition:
    p = match.payment
    emits = [recorded(state, match.header, p, PaymentStatus.DUPLICATE, ctx)]
    attempt = state.attempts.get(match.request_id)
    label = attempt.label if attempt and attempt.provider == p.provider else None
    if ctx.refunds_automatically(state.tenant, label):
        command = ConnectorCommand(
            header=header_for(match.header, "connector.payment.refund", state),
            idempotency_key=f"refund:{p.provider}:{p.payment_id}",
            provider=p.provider,
            payload=RefundPayment(
                payment_id=p.payment_id,
                order_id=p.order_id,
                amount_minor=p.amount_minor,
                currency=p.currency,
                reason="duplicate payment: the invoice was already paid",
                gateway_reference=p.gateway_reference or "",
            ),
            context={
                "invoice_id": state.invoice_id,
                "payment_id": p.payment_id,
                "order_id": p.order_id,
                "amount_minor": str(p.amount_minor),
                "currency": p.currency,
            },
            account=label,
        )
        emits.append(Emit(commands_topic(p.provider), command))
    return Transition(state, emits)


def _receipt_notes(
    new: InvoiceState, match: PaymentMatched, receipt_no: str, ctx: FeeContext
) -> list[Emit]:
    p = match.payment
    amount = messages.format_money(p.amount_minor, p.currency)
    receipt_url = ctx.receipt_url(new.tenant, receipt_no)
    if new.status is InvoiceStatus.PARTIALLY_PAID:
        due = messages.format_money(new.due_minor, new.currency)
        sms = messages.partial_payment_sms(
            amount, due, new.description, new.student_name, receipt_url
        )
    else:
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
        notify(new, match.header, Channel.SMS, f"{base}:sms", text=sms),
        notify(
            new,
            match.header,
            Channel.EMAIL,
            f"{base}:email",
            text=email.text,
            subject=email.subject,
            html=email.html,
        ),
    ]
    return [n for n in notes if n]


def _settle(state: InvoiceState, request_id: str) -> InvoiceState:
    attempt = state.attempts.get(request_id)
    if attempt is None or attempt.settled:
        return state
    settled = attempt.model_copy(update={"settled": True})
    return state.model_copy(update={"attempts": {**state.attempts, request_id: settled}})


def _captured(state: InvoiceState, match: PaymentMatched, ctx: FeeContext) -> Transition:
    p = match.payment
    if state.status is InvoiceStatus.PAID:
        return _duplicate(state, match, ctx)
    paid = state.paid_amount_minor + p.amount_minor
    receipt_no = messages.receipt_number(state.tenant, p.payment_id, match.header.occurred_at.year)
    status = InvoiceStatus.PAID if paid >= state.amount_minor else InvoiceStatus.PARTIALLY_PAID
    new = _settle(state, match.request_id).model_copy(
        update={
            "status": status,
            "paid_amount_minor": paid,
            "receipt_no": receipt_no,
            "gateway": state.gateway or p.provider,
        }
    )
    emits = [
        _status_changed(new, state.status, match, receipt_no),
        recorded(new, match.header, p, PaymentStatus.SUCCESS, ctx, receipt_no=receipt_no),
    ]
    return Transition(new, emits + _receipt_notes(new, match, receipt_no, ctx))


def _failed(state: InvoiceState, match: PaymentMatched, ctx: FeeContext) -> Transition:
    p = match.payment
    attempt = state.attempts.get(match.request_id)
    # The gateway's own checkout for the order, where the parent can try again.
    url = (attempt.payment_url if attempt else None) or ctx.payment_url(
        state.tenant, p.order_id, state.invoice_id
    )
    emits = [recorded(state, match.header, p, PaymentStatus.FAILED, ctx)]
    if state.status is not InvoiceStatus.PAID:
        sms = notify(
            state,
            match.header,
            Channel.SMS,
            f"payment-failed:{p.payment_id}:sms",
            text=messages.payment_failed_sms(p.error_description, url),
        )
        emits += [sms] if sms else []
    return Transition(_settle(state, match.request_id), emits)


def on_payment_matched(
    state: InvoiceState | None, match: PaymentMatched, ctx: FeeContext
) -> Transition:
    base = state or InvoiceState(tenant=match.header.tenant, invoice_id=match.invoice_id)
    p = match.payment
    marker = f"{p.payment_id}:{p.kind}"
    if marker in base.applied or p.kind is PaymentEventKind.AUTHORIZED:
        return Transition(base)
    check_money(base, match)
    base = base.model_copy(update={"applied": [*base.applied, marker]})
    return (
        _captured(base, match, ctx)
        if p.kind is PaymentEventKind.CAPTURED
        else _failed(base, match, ctx)
    )


def refund_results(result: ConnectorResult) -> list[Emit]:
    """A delivered refund, recorded for the fee module against its invoice."""
    invoice_id, payment_id = result.context.get("invoice_id"), result.context.get("payment_id")
    if result.operation != RefundPayment.OPERATION or not invoice_id or not payment_id:
        return []
    if result.status is not ResultStatus.DELIVERED:
        return []  # the connector dead-letters a refund it could not make: an operator sees it
    return [
        Emit(
            PAYMENTS_RECORDED,
            PaymentRecorded(
                header=result.header.caused(PaymentRecorded.EVENT_TYPE, source="reconciler"),
                invoice_id=invoice_id,
                order_id=result.context.get("order_id", ""),
                payment_id=payment_id,
                gateway=result.provider,
                status=PaymentStatus.REFUNDED,
                amount_minor=int(result.context.get("amount_minor", "0") or 0),
                currency=result.context.get("currency", ""),
            ),
        )
    ]
