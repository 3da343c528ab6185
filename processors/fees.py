"""Fee reconciliation: one invoice's state and what each event does to it. Pure.

`apply(state, event, ctx)` returns the new state and the events to emit; the
stage only loads and stores the state and sends what this returns.
Everything here is safe to apply twice: a redelivered payment request
creates no second order (the request id is remembered and the gateway call
carries an idempotency key), a redelivered payment changes nothing (the
payment id is remembered), and every notification's idempotency key is
derived from the payment, so a connector never sends it twice.

Gateways (seed 004): a request goes to the first gateway of its plan
(processors.gateways); when that gateway cannot create the order (5xx,
timeout), the next one is asked — each once, each with its own idempotency
key, so no parent is charged twice: only the order that was created is ever
shown to the parent. Payments are processors.fee_payments' business.
"""

from __future__ import annotations

import hashlib

import providers
from core.topics import ORDER_LINKS, PAYMENT_ORDERS, commands_topic
from processors.emit import Emit
from processors.fee_payments import PaymentMismatchError, on_payment_matched, refund_results
from processors.fee_state import (
    SOURCE,
    FeeContext,
    GatewayAttempt,
    InvoiceState,
    Transition,
    header_for,
    with_details,
)
from processors.gateways import plan
from providers.payments import PaymentSnapshot
from schemas.events import (
    CapturePayment,
    ConnectorCommand,
    ConnectorResult,
    CreatePaymentOrder,
    Event,
    EventHeader,
    FetchPaymentStatus,
    Invoice,
    InvoiceStatus,
    OrderStatus,
    PaymentMatched,
    PaymentOrderResult,
    PaymentRequested,
    RefundPayment,
    ResultStatus,
    entity_key,
)

__all__ = [
    "FeeContext",
    "InvoiceState",
    "PaymentMismatchError",
    "Transition",
    "apply",
    "capture_if_approved",
    "due_polls",
    "on_invoice",
    "on_order_result",
    "on_payment_matched",
    "on_payment_requested",
    "order_results",
    "receipt_for_gateway",
    "refund_results",
]

# Set on a create-order command when another gateway can take over: the
# connector then reports a retryable failure at once instead of retry tiers.
FAILOVER = "failover"


# Paybill payments (M-Pesa C2B) name the student, not an order: "c2b:<student id>"
# stands for the student's latest invoice in the order matcher.
PAYBILL_GATEWAYS = ("mpesa",)


def paybill_order_id(student_id: str) -> str:
    return f"c2b:{student_id}"


def on_invoice(
    state: InvoiceState | None, invoice: Invoice, ctx: FeeContext | None = None
) -> Transition:
    new = with_details(state, invoice)
    tenant = ctx.tenants.get(invoice.header.tenant) if ctx else None
    gateways = [g for g in PAYBILL_GATEWAYS if tenant is not None and tenant.has(g)]
    # Linked once, when the ledger first hears of the invoice (a redelivery adds nothing).
    seen = state is not None and state.student_id == invoice.student_id
    if not gateways or not invoice.student_id or seen:
        return Transition(new)
    link = PaymentOrderResult(
        header=header_for(invoice.header, PaymentOrderResult.EVENT_TYPE, new),
        request_id=paybill_order_id(invoice.invoice_id),
        invoice_id=invoice.invoice_id,
        gateway=gateways[0],
        status=OrderStatus.CREATED,
        order_id=paybill_order_id(invoice.student_id),
    )
    key = entity_key(invoice.header.tenant, paybill_order_id(invoice.student_id))
    return Transition(new, [Emit(ORDER_LINKS, link, key=key)])


def _order_failed(
    req: PaymentRequested, state: InvoiceState, code: str, message: str, gateway: str = ""
) -> Emit:
    return Emit(
        PAYMENT_ORDERS,
        PaymentOrderResult(
            header=header_for(req.header, PaymentOrderResult.EVENT_TYPE, state),
            request_id=req.request_id,
            invoice_id=req.invoice_id,
            gateway=gateway or req.gateway,
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


def _payer_notes(state: InvoiceState) -> dict[str, str]:
    parent = state.parent
    found = {
        "customer_name": parent.name if parent else "",
        "customer_phone": (parent.phone or "") if parent else "",
        "customer_email": (parent.email or "") if parent else "",
    }
    return {k: v for k, v in found.items() if v}


def _order_command(
    state: InvoiceState, request_id: str, attempt: GatewayAttempt, ctx: FeeContext, cause: Event
) -> ConnectorCommand:
    first = len(attempt.tried) == 1
    # The first gateway keeps the key it always had; each next one gets its own.
    key = (
        f"payment-order:{request_id}" if first else f"payment-order:{request_id}:{attempt.provider}"
    )
    context = {
        "invoice_id": state.invoice_id,
        "request_id": request_id,
        "account": attempt.label,
    }
    if attempt.next_choice() is not None:
        context[FAILOVER] = "next"
    return ConnectorCommand(
        header=header_for(cause.header, "connector.payment.create_order", state),
        idempotency_key=key,
        provider=attempt.provider,
        payload=CreatePaymentOrder(
            amount_minor=attempt.amount_minor,
            currency=attempt.currency,
            receipt=receipt_for_gateway(request_id),
            notes={
                "invoice_id": state.invoice_id,
                "student_id": state.student_id,
                "request_id": request_id,
                **_payer_notes(state),
            },
            callback_url=ctx.callback_url(attempt.provider, state.tenant),
            return_url=ctx.return_url(state.tenant, state.invoice_id),
        ),
        context=context,
        account=attempt.label,
    )


def on_payment_requested(
    state: InvoiceState | None, req: PaymentRequested, ctx: FeeContext
) -> Transition:
    if state is not None and req.request_id in state.requests:
        return Transition(state)
    new = with_details(state, req) if state is None or not state.description else state
    # Remember the request whatever the answer, so its redelivery is a no-op.
    new = new.model_copy(update={"requests": {**new.requests, req.request_id: None}})
    if new.status is InvoiceStatus.PAID:
        return Transition(
            new, [_order_failed(req, new, "ALREADY_PAID", "the invoice is already paid")]
        )
    tenant = ctx.tenants.get(req.header.tenant)
    choices = plan(tenant, ctx.health_views(), req.gateway) if tenant else []
    if not choices:
        what = req.gateway or "no payment gateway"
        return Transition(
            new,
            [
                _order_failed(
                    req, new, "GATEWAY_NOT_CONFIGURED", f"{what} is not set up for this school"
                )
            ],
        )
    first = choices[0]
    attempt = GatewayAttempt(
        plan=[(c.provider, c.label) for c in choices],
        tried=[first.label],
        provider=first.provider,
        label=first.label,
        amount_minor=req.amount_minor,
        currency=req.currency,
    )
    new = new.model_copy(update={"attempts": {**new.attempts, req.request_id: attempt}})
    command = _order_command(new, req.request_id, attempt, ctx, req)
    return Transition(new, [Emit(commands_topic(first.provider), command)])


def order_results(result: ConnectorResult, ctx: FeeContext) -> list[Emit]:
    """A gateway's answer to order creation, for the fee module and the order matcher."""
    invoice_id = result.context.get("invoice_id")
    request_id = result.context.get("request_id")
    if result.operation == RefundPayment.OPERATION:
        return refund_results(result)
    if result.operation != CreatePaymentOrder.OPERATION or not invoice_id or not request_id:
        return []
    header = result.header.caused(PaymentOrderResult.EVENT_TYPE, source=SOURCE)
    common = {
        "header": header,
        "request_id": request_id,
        "invoice_id": invoice_id,
        "gateway": result.provider,
    }
    if result.status is ResultStatus.DELIVERED and result.provider_ref:
        order = PaymentOrderResult(
            **common,
            status=OrderStatus.CREATED,
            order_id=result.provider_ref,
            payment_url=result.details.get("payment_url")
            or ctx.payment_url(header.tenant, result.provider_ref, invoice_id),
            account=result.context.get("account"),
        )
        link_key = entity_key(header.tenant, result.provider_ref)
        return [Emit(PAYMENT_ORDERS, order), Emit(ORDER_LINKS, order, key=link_key)]
    next_one = result.retryable and result.context.get(FAILOVER) == "next"
    return [
        Emit(
            PAYMENT_ORDERS,
            PaymentOrderResult(
                **common,
                status=OrderStatus.FAILING_OVER if next_one else OrderStatus.FAILED,
                error_code=result.error_code or str(result.http_status or ""),
                error_message=result.error_message,
            ),
        )
    ]


def _fail_over(state: InvoiceState, result: PaymentOrderResult, ctx: FeeContext) -> Transition:
    attempt = state.attempts.get(result.request_id)
    # Redelivered, or not the gateway this request is waiting on: already handled.
    if attempt is None or attempt.provider != result.gateway or attempt.order_id:
        return Transition(state)
    choice = attempt.next_choice()
    if choice is None:
        return Transition(state)
    provider, label = choice
    moved = attempt.model_copy(
        update={"provider": provider, "label": label, "tried": [*attempt.tried, label]}
    )
    new = state.model_copy(update={"attempts": {**state.attempts, result.request_id: moved}})
    command = _order_command(new, result.request_id, moved, ctx, result)
    return Transition(new, [Emit(commands_topic(provider), command)])


def on_order_result(
    state: InvoiceState | None, result: PaymentOrderResult, ctx: FeeContext | None = None
) -> Transition:
    base = state or InvoiceState(tenant=result.header.tenant, invoice_id=result.invoice_id)
    if result.status is OrderStatus.FAILING_OVER:
        return _fail_over(base, result, ctx) if ctx else Transition(base)
    if result.status is not OrderStatus.CREATED:
        return Transition(base)
    updates: dict[str, object] = {"requests": {**base.requests, result.request_id: result.order_id}}
    attempt = base.attempts.get(result.request_id)
    if attempt is not None and attempt.order_id is None:
        created = attempt.model_copy(
            update={
                "order_id": result.order_id,
                "payment_url": result.payment_url,
                "ordered_at": result.header.occurred_at.timestamp(),
            }
        )
        updates["attempts"] = {**base.attempts, result.request_id: created}
    return Transition(base.model_copy(update=updates))


def due_polls(state: InvoiceState, now: float, ctx: FeeContext) -> Transition:
    """Orders whose payment has not been heard of in time: ask their gateway (a missed
    webhook), at poll_after, 4x and 16x that, then give up (the order has expired)."""
    if state.status is InvoiceStatus.PAID:
        return Transition(state)
    emits, attempts = [], dict(state.attempts)
    for request_id, attempt in state.attempts.items():
        if attempt.settled or attempt.order_id is None or attempt.ordered_at is None:
            continue
        if attempt.polls >= ctx.max_polls:
            continue
        if now - attempt.ordered_at < ctx.poll_after_seconds * 4**attempt.polls:
            continue
        command = ConnectorCommand(
            # Nothing caused a poll but the clock: it joins the invoice's flow.
            header=EventHeader.new(
                f"connector.{FetchPaymentStatus.OPERATION}",
                state.tenant,
                source=SOURCE,
                correlation_id=state.correlation_id,
            ),
            idempotency_key=f"payment-status:{attempt.provider}:{attempt.order_id}:{attempt.polls}",
            provider=attempt.provider,
            payload=FetchPaymentStatus(
                order_id=attempt.order_id,
                reason="missed_webhook",
                amount_minor=attempt.amount_minor,
                currency=attempt.currency,
            ),
            context={
                "invoice_id": state.invoice_id,
                "request_id": request_id,
                "account": attempt.label,
            },
            account=attempt.label,
        )
        emits.append(Emit(commands_topic(attempt.provider), command))
        attempts[request_id] = attempt.model_copy(update={"polls": attempt.polls + 1})
    if not emits:
        return Transition(state)
    return Transition(state.model_copy(update={"attempts": attempts}), emits)


def capture_if_approved(result: ConnectorResult) -> list[Emit]:
    """A status answer "approved, not captured" from a gateway that authorizes first
    (PayPal): capture it, as its approval webhook would have made the hub do."""
    if (
        result.operation != FetchPaymentStatus.OPERATION
        or result.status is not ResultStatus.DELIVERED
    ):
        return []
    snap = PaymentSnapshot.from_details(result.details)
    declared = providers.registry().get(result.provider)
    if snap is None or snap.status != "AUTHORIZED" or not (declared and declared.manual_capture):
        return []
    account = result.context.get("account")
    command = ConnectorCommand(
        header=result.header.caused(f"connector.{CapturePayment.OPERATION}", source=SOURCE),
        # The same key the approval webhook's follow-up would not share: one capture per
        # order, whichever asked; the gateway's PayPal-Request-Id makes a repeat harmless.
        idempotency_key=f"{CapturePayment.OPERATION}:{result.provider}:{snap.order_id}",
        provider=result.provider,
        payload=CapturePayment(order_id=snap.order_id),
        context={
            k: v for k, v in result.context.items() if k in ("invoice_id", "request_id", "account")
        },
        account=account,
    )
    return [Emit(commands_topic(result.provider), command)]


def apply(state: InvoiceState | None, event: Event, ctx: FeeContext) -> Transition:
    if isinstance(event, Invoice):
        return on_invoice(state, event, ctx)
    if isinstance(event, PaymentRequested):
        return on_payment_requested(state, event, ctx)
    if isinstance(event, PaymentOrderResult):
        return on_order_result(state, event, ctx)
    if isinstance(event, PaymentMatched):
        return on_payment_matched(state, event, ctx)
    raise TypeError(f"the invoice ledger does not take {event.SCHEMA}")
