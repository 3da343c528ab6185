"""processors.fees: the invoice ledger's state machine, driven through `apply` like the agent."""

from __future__ import annotations

import json

import pytest
from proc_support import (
    AMOUNT,
    DESCRIPTION,
    EMAIL,
    INVOICE_ID,
    NO_GATEWAY_TENANT,
    ORDER_ID,
    PARENT,
    PAYMENT_ID,
    PHONE,
    SCHOOL,
    STUDENT_ID,
    STUDENT_NAME,
    TENANT,
    connector_result,
    fee_context,
    invoice,
    payment_event,
    payment_matched,
    payment_requested,
    raw_webhook,
    webhook_body,
)

from core.topics import (
    INVOICE_STATUS,
    NOTIFICATION_REQUESTS,
    ORDER_LINKS,
    PAYMENT_ORDERS,
    PAYMENTS_RECORDED,
)
from processors import messages
from processors.emit import Emit
from processors.fees import (
    FeeContext,
    InvoiceState,
    Transition,
    apply,
    on_invoice,
    on_order_result,
    on_payment_matched,
    on_payment_requested,
    order_results,
    receipt_for_gateway,
)
from processors.matching import link_of, matched
from processors.normalize import normalize
from schemas.events import (
    Channel,
    ConnectorCommand,
    Contact,
    CreatePaymentOrder,
    InvoiceStatus,
    InvoiceStatusChanged,
    NotificationRequest,
    OrderStatus,
    PaymentEventKind,
    PaymentMatched,
    PaymentOrderResult,
    PaymentRecorded,
    PaymentStatus,
    Priority,
    ResultStatus,
)

REQUEST_ID = "9f1c2b7e4d5a4e0f8a6b3c2d1e0f9a8b"
CTX = fee_context()
PAYMENT_URL = f"https://checkout.school.example/{TENANT}/pay/{ORDER_ID}?invoice={INVOICE_ID}"
FAILED_DESCRIPTION = "Payment failed due to insufficient funds in the account"


def receipt_url(receipt_no: str) -> str:
    return f"https://erp.school.example/{TENANT}/receipts/{receipt_no}"


def roundtrip(state: InvoiceState) -> InvoiceState:
    """What the state table does between two records: store JSON, load it back."""
    stored = json.loads(json.dumps(state.model_dump(mode="json")))
    return InvoiceState.model_validate(stored)


class Opened:
    """An invoice with a created Razorpay order: the state a payment arrives to."""

    def __init__(self, amount_minor: int = AMOUNT, parent: Contact = PARENT) -> None:
        self.invoice = invoice(amount_minor=amount_minor, parent=parent)
        self.request = payment_requested(self.invoice, request_id=REQUEST_ID)
        t1 = apply(None, self.invoice, CTX)
        t2 = apply(roundtrip(t1.state), self.request, CTX)
        (command_emit,) = t2.emits
        self.command: ConnectorCommand = command_emit.event  # type: ignore[assignment]
        self.result = connector_result(self.command)
        order_emit, self.link_emit = order_results(self.result, CTX)
        self.order: PaymentOrderResult = order_emit.event  # type: ignore[assignment]
        self.state = roundtrip(apply(roundtrip(t2.state), self.order, CTX).state)

    @property
    def correlation_id(self) -> str:
        return self.invoice.header.correlation_id


def events_of(transition: Transition) -> list[object]:
    return [e.event for e in transition.emits]


def topics_of(transition: Transition) -> list[str]:
    return [e.topic for e in transition.emits]


# --- invoices and payment requests ------------------------------------------


def test_an_invoice_creates_the_state_and_only_links_the_students_paybill_payments() -> None:
    inv = invoice()

    t = apply(None, inv, CTX)

    # Greenwood has an M-Pesa paybill: a payment naming the student finds this invoice.
    assert [(e.topic, e.record_key) for e in t.emits] == [
        (ORDER_LINKS, f"{TENANT}:c2b:{STUDENT_ID}")
    ]
    s = t.state
    assert (s.tenant, s.invoice_id, s.student_id) == (TENANT, INVOICE_ID, STUDENT_ID)
    assert (s.student_name, s.description, s.amount_minor) == (STUDENT_NAME, DESCRIPTION, AMOUNT)
    assert s.currency == "INR"
    assert s.parent == PARENT
    assert s.status is InvoiceStatus.UNPAID
    assert s.paid_amount_minor == 0
    assert s.correlation_id == inv.header.correlation_id
    assert s.requests == {}
    assert s.applied == []
    assert s.receipt_no is None


def test_a_redelivered_invoice_keeps_the_first_flow_correlation_id() -> None:
    first = invoice()
    again = invoice()  # same invoice, a new header (the fee module re-published it)

    state = on_invoice(on_invoice(None, first).state, again).state

    assert state.correlation_id == first.header.correlation_id


def test_a_payment_request_emits_exactly_one_create_order_command() -> None:
    inv = invoice()
    req = payment_requested(inv, request_id=REQUEST_ID)
    state = apply(None, inv, CTX).state

    t = apply(state, req, CTX)

    assert len(t.emits) == 1
    emit = t.emits[0]
    assert emit.topic == "connector.razorpay.commands.v1"
    command = emit.event
    assert isinstance(command, ConnectorCommand)
    assert command.provider == "razorpay"
    assert command.idempotency_key == f"payment-order:{REQUEST_ID}"
    assert emit.record_key == f"{TENANT}:payment-order:{REQUEST_ID}"
    assert command.operation == CreatePaymentOrder.OPERATION
    payload = command.payload
    assert isinstance(payload, CreatePaymentOrder)
    assert payload.amount_minor == AMOUNT
    assert payload.currency == "INR"
    assert payload.receipt == f"rcpt_{REQUEST_ID}"
    assert len(payload.receipt) <= 40
    assert payload.notes == {
        "invoice_id": INVOICE_ID,
        "student_id": STUDENT_ID,
        "request_id": REQUEST_ID,
        # The payer, for gateways that need them (Cashfree, M-Pesa's phone).
        "customer_name": "Priya Sharma",
        "customer_phone": PHONE,
        "customer_email": EMAIL,
    }
    # Greenwood pays through Razorpay alone: no other gateway to fail over to.
    assert command.context == {
        "invoice_id": INVOICE_ID,
        "request_id": REQUEST_ID,
        "account": "razorpay-primary",
    }
    assert command.account == "razorpay-primary"
    assert command.header.tenant == TENANT
    assert command.header.correlation_id == inv.header.correlation_id
    assert command.header.causation_id == req.header.event_id
    assert t.state.requests == {REQUEST_ID: None}


def test_the_command_uses_the_invoice_flow_even_when_the_request_has_its_own() -> None:
    inv = invoice()
    req = payment_requested(inv).model_copy(
        update={"header": invoice(correlation_id="fee-module-request-flow").header}
    )
    assert req.header.correlation_id != inv.header.correlation_id

    t = apply(apply(None, inv, CTX).state, req, CTX)

    assert t.emits[0].event.header.correlation_id == inv.header.correlation_id


def test_the_same_payment_request_again_emits_nothing() -> None:
    inv = invoice()
    req = payment_requested(inv, request_id=REQUEST_ID)
    first = apply(apply(None, inv, CTX).state, req, CTX)

    again = apply(roundtrip(first.state), req, CTX)

    assert again.emits == []
    assert again.state == first.state


def test_the_same_payment_request_after_the_order_was_created_emits_nothing() -> None:
    opened = Opened()

    again = apply(opened.state, opened.request, CTX)

    assert again.emits == []
    assert again.state.requests == {REQUEST_ID: ORDER_ID}


def test_a_new_request_for_an_unpaid_invoice_creates_a_new_order() -> None:
    opened = Opened()
    retry = payment_requested(opened.invoice, request_id="b" * 32)

    t = apply(opened.state, retry, CTX)

    (emit,) = t.emits
    assert emit.event.idempotency_key == f"payment-order:{'b' * 32}"
    assert t.state.requests == {REQUEST_ID: ORDER_ID, "b" * 32: None}


def test_a_request_before_its_invoice_fills_the_state_from_the_request() -> None:
    inv = invoice()
    req = payment_requested(inv, request_id=REQUEST_ID)

    t = apply(None, req, CTX)

    assert len(t.emits) == 1
    assert t.state.description == DESCRIPTION
    assert t.state.amount_minor == AMOUNT
    assert t.state.parent == PARENT
    assert t.state.correlation_id == req.header.correlation_id
    # The invoice arriving afterwards keeps the request and the flow.
    later = apply(t.state, inv, CTX).state
    assert later.requests == {REQUEST_ID: None}
    assert later.correlation_id == req.header.correlation_id


@pytest.mark.parametrize(
    "request_id",
    [REQUEST_ID, "r1", "x" * 35, "x" * 36, "greenwood-INV-2026-000123-attempt-0001", "z" * 200],
)
def test_the_gateway_receipt_is_at_most_40_characters(request_id: str) -> None:
    receipt = receipt_for_gateway(request_id)

    assert len(receipt) <= 40
    assert receipt.startswith("rcpt_")
    assert receipt_for_gateway(request_id) == receipt


def test_a_short_request_id_is_kept_whole_in_the_receipt() -> None:
    assert receipt_for_gateway(REQUEST_ID) == f"rcpt_{REQUEST_ID}"
    assert receipt_for_gateway("a" * 35) == "rcpt_" + "a" * 35


def test_distinct_long_request_ids_get_distinct_receipts() -> None:
    first = "greenwood-INV-2026-000123-attempt-0001"
    second = "greenwood-INV-2026-000123-attempt-0002"

    assert receipt_for_gateway(first) != receipt_for_gateway(second)
    assert len(receipt_for_gateway(first)) <= 40
    assert receipt_for_gateway(first) == receipt_for_gateway(first)


def test_a_payment_request_for_a_paid_invoice_fails_with_already_paid() -> None:
    opened = Opened()
    paid = apply(opened.state, payment_matched(payment_event()), CTX).state
    assert paid.status is InvoiceStatus.PAID
    retry = payment_requested(opened.invoice, request_id="c" * 32)

    t = apply(paid, retry, CTX)

    assert topics_of(t) == [PAYMENT_ORDERS]
    result = t.emits[0].event
    assert isinstance(result, PaymentOrderResult)
    assert result.status is OrderStatus.FAILED
    assert result.error_code == "ALREADY_PAID"
    assert result.request_id == "c" * 32
    assert result.invoice_id == INVOICE_ID
    assert result.gateway == "razorpay"
    assert result.order_id is None
    assert result.payment_url is None
    assert result.header.correlation_id == opened.correlation_id
    assert result.header.causation_id == retry.header.event_id
    assert t.emits[0].record_key == f"{TENANT}:{INVOICE_ID}"
    assert "c" * 32 in t.state.requests
    assert apply(t.state, retry, CTX).emits == [], "a redelivered request is not answered twice"


@pytest.mark.parametrize(
    ("tenant", "gateway"),
    [(NO_GATEWAY_TENANT, "razorpay"), ("unknown-school", "razorpay"), (TENANT, "nosuch")],
)
def test_a_tenant_without_the_gateway_fails_with_gateway_not_configured(
    tenant: str, gateway: str
) -> None:
    inv = invoice(tenant=tenant)
    req = payment_requested(inv, request_id=REQUEST_ID, gateway=gateway)

    t = apply(apply(None, inv, CTX).state, req, CTX)

    assert topics_of(t) == [PAYMENT_ORDERS]
    result = t.emits[0].event
    assert isinstance(result, PaymentOrderResult)
    assert result.status is OrderStatus.FAILED
    assert result.error_code == "GATEWAY_NOT_CONFIGURED"
    assert gateway in (result.error_message or "")
    assert result.gateway == gateway
    assert result.header.tenant == tenant
    assert t.state.requests == {REQUEST_ID: None}
    assert apply(t.state, req, CTX).emits == [], "a redelivered request is not answered twice"


# --- the gateway's answer -----------------------------------------------------


def test_a_delivered_order_becomes_a_created_order_result_and_an_order_link() -> None:
    inv = invoice()
    command = apply(apply(None, inv, CTX).state, payment_requested(inv), CTX).emits[0].event
    assert isinstance(command, ConnectorCommand)
    result = connector_result(command)

    emits = order_results(result, CTX)

    assert [e.topic for e in emits] == [PAYMENT_ORDERS, ORDER_LINKS]
    assert [e.topic for e in emits] == ["fees.payment-orders.v1", "hub.reconciler.order-links.v1"]
    order = emits[0].event
    assert isinstance(order, PaymentOrderResult)
    assert order.status is OrderStatus.CREATED
    assert order.order_id == ORDER_ID
    assert order.payment_url == PAYMENT_URL
    assert order.request_id == REQUEST_ID
    assert order.invoice_id == INVOICE_ID
    assert order.gateway == "razorpay"
    assert order.error_code is None
    assert order.header.correlation_id == inv.header.correlation_id
    assert order.header.causation_id == result.header.event_id
    assert order.header.tenant == TENANT
    # For the fee module: keyed by invoice.
    assert emits[0].record_key == f"{TENANT}:{INVOICE_ID}"
    # For the order matcher: the same order, re-keyed by gateway order id.
    assert emits[1].event is order
    assert emits[1].record_key == f"{TENANT}:{ORDER_ID}"
    assert emits[1].record_key != order.key()


def test_the_order_link_key_is_the_key_payment_events_of_that_order_carry() -> None:
    opened = Opened()
    payment = normalize(raw_webhook(webhook_body(order_id=ORDER_ID)))
    assert payment is not None

    assert opened.link_emit.record_key == payment.key()


def test_a_failed_order_becomes_only_a_failed_order_result() -> None:
    inv = invoice()
    command = apply(apply(None, inv, CTX).state, payment_requested(inv), CTX).emits[0].event
    assert isinstance(command, ConnectorCommand)
    result = connector_result(
        command,
        status=ResultStatus.FAILED,
        error_code="BAD_REQUEST_ERROR",
        error_message="The amount must be atleast INR 1.00",
        http_status=400,
    )

    emits = order_results(result, CTX)

    assert [e.topic for e in emits] == [PAYMENT_ORDERS]
    order = emits[0].event
    assert isinstance(order, PaymentOrderResult)
    assert order.status is OrderStatus.FAILED
    assert order.error_code == "BAD_REQUEST_ERROR"
    assert order.error_message == "The amount must be atleast INR 1.00"
    assert order.order_id is None
    assert order.payment_url is None
    assert (order.request_id, order.invoice_id) == (REQUEST_ID, INVOICE_ID)


def test_a_failed_order_without_an_error_code_reports_the_http_status() -> None:
    inv = invoice()
    command = apply(apply(None, inv, CTX).state, payment_requested(inv), CTX).emits[0].event
    assert isinstance(command, ConnectorCommand)
    result = connector_result(command, status=ResultStatus.FAILED, http_status=502)

    (emit,) = order_results(result, CTX)

    assert emit.event.error_code == "502"


def test_a_delivered_result_without_an_order_id_links_nothing() -> None:
    inv = invoice()
    command = apply(apply(None, inv, CTX).state, payment_requested(inv), CTX).emits[0].event
    assert isinstance(command, ConnectorCommand)
    result = connector_result(command).model_copy(update={"provider_ref": None})

    emits = order_results(result, CTX)

    assert [e.topic for e in emits] == [PAYMENT_ORDERS]
    assert emits[0].event.status is OrderStatus.FAILED


@pytest.mark.parametrize("operation", ["sms.send", "email.send", "payment.refund"])
def test_results_of_other_operations_are_not_order_results(operation: str) -> None:
    opened = Opened()
    result = connector_result(opened.command, operation=operation)

    assert order_results(result, CTX) == []


@pytest.mark.parametrize(
    "context",
    [{}, {"invoice_id": INVOICE_ID}, {"request_id": REQUEST_ID}, {"notification_id": "n"}],
)
def test_order_results_without_invoice_and_request_context_are_skipped(
    context: dict[str, str],
) -> None:
    opened = Opened()
    result = connector_result(opened.command).model_copy(update={"context": context})

    assert order_results(result, CTX) == []


def test_a_created_order_result_records_the_order_id_and_emits_nothing() -> None:
    inv = invoice()
    t = apply(apply(None, inv, CTX).state, payment_requested(inv), CTX)
    (order, _link) = order_results(connector_result(t.emits[0].event), CTX)  # type: ignore[arg-type]

    after = apply(t.state, order.event, CTX)

    assert after.emits == []
    assert after.state.requests == {REQUEST_ID: ORDER_ID}
    assert after.state.status is InvoiceStatus.UNPAID


def test_a_failed_order_result_changes_nothing() -> None:
    inv = invoice()
    t = apply(apply(None, inv, CTX).state, payment_requested(inv), CTX)
    failed = connector_result(t.emits[0].event, status=ResultStatus.FAILED)  # type: ignore[arg-type]
    (order,) = order_results(failed, CTX)

    after = on_order_result(t.state, order.event)  # type: ignore[arg-type]

    assert after.emits == []
    assert after.state == t.state


# --- payments ---------------------------------------------------------------


def test_a_captured_payment_marks_the_invoice_paid_and_notifies_the_parent() -> None:
    opened = Opened()
    match = payment_matched(payment_event(), correlation_id=opened.correlation_id)
    receipt_no = messages.receipt_number(TENANT, PAYMENT_ID, match.header.occurred_at.year)

    t = apply(opened.state, match, CTX)

    assert t.state.status is InvoiceStatus.PAID
    assert t.state.paid_amount_minor == AMOUNT
    assert t.state.receipt_no == receipt_no
    assert f"{PAYMENT_ID}:CAPTURED" in t.state.applied
    assert topics_of(t) == [
        INVOICE_STATUS,
        PAYMENTS_RECORDED,
        NOTIFICATION_REQUESTS,
        NOTIFICATION_REQUESTS,
    ]
    changed, recorded, sms, email = events_of(t)

    assert isinstance(changed, InvoiceStatusChanged)
    assert changed.invoice_id == INVOICE_ID
    assert changed.status is InvoiceStatus.PAID
    assert changed.previous_status is InvoiceStatus.UNPAID
    assert changed.paid_amount_minor == AMOUNT
    assert changed.currency == "INR"
    assert changed.order_id == ORDER_ID
    assert changed.payment_id == PAYMENT_ID
    assert changed.receipt_no == receipt_no

    assert isinstance(recorded, PaymentRecorded)
    assert recorded.status is PaymentStatus.SUCCESS
    assert (recorded.invoice_id, recorded.order_id) == (INVOICE_ID, ORDER_ID)
    assert (recorded.payment_id, recorded.gateway) == (PAYMENT_ID, "razorpay")
    assert (recorded.amount_minor, recorded.currency, recorded.method) == (AMOUNT, "INR", "upi")
    assert recorded.receipt_no == receipt_no
    assert recorded.receipt_url == receipt_url(receipt_no)
    assert recorded.error_code is None

    assert isinstance(sms, NotificationRequest)
    assert sms.channel is Channel.SMS
    assert sms.to == PHONE
    assert sms.to_name == PARENT.name
    assert sms.priority is Priority.HIGH
    assert sms.idempotency_key == f"payment-receipt:{PAYMENT_ID}:sms"
    assert sms.template is None  # rendered here (processors.messages): no template to render
    assert sms.text.startswith("Payment successful: ₹50,000 ")
    assert "₹50,000" in sms.text
    assert DESCRIPTION in sms.text
    assert STUDENT_NAME in sms.text
    assert receipt_url(receipt_no) in sms.text

    assert isinstance(email, NotificationRequest)
    assert email.channel is Channel.EMAIL
    assert email.to == EMAIL
    assert email.to_name == PARENT.name
    assert email.idempotency_key == f"payment-receipt:{PAYMENT_ID}:email"
    assert email.subject is not None
    assert receipt_no in email.subject
    assert "₹50,000" in email.text
    assert PAYMENT_ID in email.text
    assert email.html is not None
    assert SCHOOL in email.html
    assert receipt_url(receipt_no) in email.html

    for emit in t.emits:
        assert emit.event.header.tenant == TENANT
        assert emit.event.header.correlation_id == opened.correlation_id
        assert emit.event.header.causation_id == match.header.event_id
        assert emit.event.header.source == "reconciler"
    assert [e.record_key for e in t.emits] == [
        f"{TENANT}:{INVOICE_ID}",
        f"{TENANT}:{INVOICE_ID}",
        # Notifications are keyed by tenant: the messenger keeps a school's together.
        TENANT,
        TENANT,
    ]


def test_every_event_of_a_payment_carries_the_invoice_flow_whatever_flow_the_match_had() -> None:
    opened = Opened()
    match = payment_matched(payment_event(), correlation_id="webhook-flow-0001")

    t = apply(opened.state, match, CTX)

    assert len(t.emits) == 4
    assert {e.event.header.correlation_id for e in t.emits} == {opened.correlation_id}


def test_the_same_payment_matched_again_changes_nothing_and_emits_nothing() -> None:
    opened = Opened()
    match = payment_matched(payment_event())
    paid = apply(opened.state, match, CTX)

    again = apply(roundtrip(paid.state), match, CTX)

    assert again.emits == []
    assert again.state == paid.state


def test_the_same_payment_matched_anew_after_a_restart_emits_nothing() -> None:
    opened = Opened()
    payment = payment_event()
    paid = apply(opened.state, payment_matched(payment), CTX)

    # The matcher re-processed the payment: a new PaymentMatched, same payment.
    again = apply(roundtrip(paid.state), payment_matched(payment), CTX)

    assert again.emits == []
    assert again.state.status is InvoiceStatus.PAID
    assert again.state.paid_amount_minor == AMOUNT


def test_a_second_captured_payment_on_a_paid_invoice_is_recorded_as_a_duplicate() -> None:
    opened = Opened()
    paid = apply(opened.state, payment_matched(payment_event()), CTX).state
    second = payment_matched(payment_event(payment_id="pay_Z9y8X7w6V5u4T3"))

    t = apply(paid, second, CTX)

    assert topics_of(t) == [PAYMENTS_RECORDED]
    (recorded,) = events_of(t)
    assert isinstance(recorded, PaymentRecorded)
    assert recorded.status is PaymentStatus.DUPLICATE
    assert recorded.payment_id == "pay_Z9y8X7w6V5u4T3"
    assert recorded.receipt_no is None
    assert recorded.receipt_url is None
    assert t.state.status is InvoiceStatus.PAID
    assert t.state.paid_amount_minor == AMOUNT
    assert t.state.receipt_no == paid.receipt_no
    # ...and that second payment redelivered is not recorded twice.
    assert apply(t.state, second, CTX).emits == []


def test_a_failed_payment_is_recorded_and_the_parent_gets_the_retry_link() -> None:
    opened = Opened()
    failed = payment_event(
        PaymentEventKind.FAILED,
        error_code="BAD_REQUEST_ERROR",
        error_description=FAILED_DESCRIPTION,
    )
    match = payment_matched(failed)

    t = apply(opened.state, match, CTX)

    assert t.state.status is InvoiceStatus.UNPAID
    assert t.state.paid_amount_minor == 0
    assert t.state.receipt_no is None
    assert topics_of(t) == [PAYMENTS_RECORDED, NOTIFICATION_REQUESTS]
    recorded, sms = events_of(t)
    assert isinstance(recorded, PaymentRecorded)
    assert recorded.status is PaymentStatus.FAILED
    assert recorded.error_code == "BAD_REQUEST_ERROR"
    assert recorded.error_description == FAILED_DESCRIPTION
    assert recorded.receipt_no is None
    assert recorded.receipt_url is None
    assert isinstance(sms, NotificationRequest)
    assert sms.channel is Channel.SMS
    assert sms.to == PHONE
    assert sms.text == f"Payment failed: {FAILED_DESCRIPTION}. Retry: {PAYMENT_URL}"
    assert sms.idempotency_key == f"payment-failed:{PAYMENT_ID}:sms"
    assert PAYMENT_ID in sms.idempotency_key
    for emit in t.emits:
        assert emit.event.header.correlation_id == opened.correlation_id
    # Redelivered: nothing more.
    assert apply(roundtrip(t.state), match, CTX).emits == []


def test_a_failed_payment_without_a_description_still_explains_and_links() -> None:
    opened = Opened()

    t = apply(opened.state, payment_matched(payment_event(PaymentEventKind.FAILED)), CTX)

    sms = t.emits[-1].event
    assert isinstance(sms, NotificationRequest)
    assert sms.text == f"Payment failed: the payment did not go through. Retry: {PAYMENT_URL}"


def test_a_captured_payment_after_a_failed_one_marks_the_invoice_paid() -> None:
    opened = Opened()
    failed = apply(opened.state, payment_matched(payment_event(PaymentEventKind.FAILED)), CTX)

    t = apply(failed.state, payment_matched(payment_event(payment_id="pay_Retry0000001")), CTX)

    assert t.state.status is InvoiceStatus.PAID
    assert topics_of(t)[0] == INVOICE_STATUS


def test_a_failed_payment_on_a_paid_invoice_is_recorded_without_an_sms() -> None:
    opened = Opened()
    paid = apply(opened.state, payment_matched(payment_event()), CTX).state
    late_failure = payment_matched(
        payment_event(PaymentEventKind.FAILED, payment_id="pay_Late00000001")
    )

    t = apply(paid, late_failure, CTX)

    assert topics_of(t) == [PAYMENTS_RECORDED]
    assert t.emits[0].event.status is PaymentStatus.FAILED
    assert t.state.status is InvoiceStatus.PAID


def test_an_authorized_payment_changes_nothing() -> None:
    opened = Opened()

    t = apply(opened.state, payment_matched(payment_event(PaymentEventKind.AUTHORIZED)), CTX)

    assert t.emits == []
    assert t.state == opened.state


def test_authorization_does_not_stop_the_same_payment_being_captured() -> None:
    opened = Opened()
    authorized = apply(
        opened.state, payment_matched(payment_event(PaymentEventKind.AUTHORIZED)), CTX
    )

    t = apply(authorized.state, payment_matched(payment_event()), CTX)

    assert t.state.status is InvoiceStatus.PAID
    assert len(t.emits) == 4


def test_a_parent_without_a_phone_gets_no_sms_but_still_the_email() -> None:
    opened = Opened(parent=Contact(name="Priya Sharma", phone=None, email=EMAIL))

    t = apply(opened.state, payment_matched(payment_event()), CTX)

    notes = [e.event for e in t.emits if e.topic == NOTIFICATION_REQUESTS]
    assert [n.channel for n in notes] == [Channel.EMAIL]  # type: ignore[attr-defined]
    assert t.state.status is InvoiceStatus.PAID
    assert topics_of(t)[:2] == [INVOICE_STATUS, PAYMENTS_RECORDED]


def test_a_parent_without_an_email_gets_only_the_sms() -> None:
    opened = Opened(parent=Contact(name="Priya Sharma", phone=PHONE, email=None))

    t = apply(opened.state, payment_matched(payment_event()), CTX)

    notes = [e.event for e in t.emits if e.topic == NOTIFICATION_REQUESTS]
    assert [n.channel for n in notes] == [Channel.SMS]  # type: ignore[attr-defined]


def test_a_failed_payment_for_a_parent_without_a_phone_is_only_recorded() -> None:
    opened = Opened(parent=Contact(name="Priya Sharma", email=EMAIL))

    t = apply(opened.state, payment_matched(payment_event(PaymentEventKind.FAILED)), CTX)

    assert topics_of(t) == [PAYMENTS_RECORDED]


def test_a_partial_payment_makes_the_invoice_partially_paid_until_the_rest_arrives() -> None:
    opened = Opened()

    part = apply(opened.state, payment_matched(payment_event(amount_minor=20_000_00)), CTX)

    assert part.state.status is InvoiceStatus.PARTIALLY_PAID
    assert part.state.paid_amount_minor == 20_000_00
    changed_first = part.emits[0].event
    assert isinstance(changed_first, InvoiceStatusChanged)
    assert changed_first.status is InvoiceStatus.PARTIALLY_PAID
    sms = next(e.event for e in part.emits if e.topic == NOTIFICATION_REQUESTS)
    assert isinstance(sms, NotificationRequest)
    assert "Payment successful" not in sms.text
    assert "₹30,000 still due" in sms.text
    recorded = next(e.event for e in part.emits if e.topic == PAYMENTS_RECORDED)
    assert recorded.amount_minor == 20_000_00  # type: ignore[attr-defined]

    rest = apply(
        roundtrip(part.state),
        payment_matched(payment_event(payment_id="pay_Rest00000001", amount_minor=30_000_00)),
        CTX,
    )

    assert rest.state.status is InvoiceStatus.PAID
    assert rest.state.paid_amount_minor == AMOUNT
    changed = rest.emits[0].event
    assert isinstance(changed, InvoiceStatusChanged)
    assert changed.previous_status is InvoiceStatus.PARTIALLY_PAID
    assert changed.paid_amount_minor == AMOUNT
    assert changed.payment_id == "pay_Rest00000001"


def test_receipts_are_deterministic_per_payment() -> None:
    match = payment_matched(payment_event())
    a = apply(Opened().state, match, CTX)
    b = apply(Opened().state, match, CTX)

    assert a.state.receipt_no == b.state.receipt_no
    assert a.state.receipt_no == messages.receipt_number(
        TENANT, PAYMENT_ID, match.header.occurred_at.year
    )


# --- state storage and dispatch ---------------------------------------------


def test_invoice_state_survives_the_state_table_json_round_trip_at_every_step() -> None:
    opened = Opened()
    states = [
        apply(None, opened.invoice, CTX).state,
        apply(apply(None, opened.invoice, CTX).state, opened.request, CTX).state,
        opened.state,
    ]
    paid = apply(opened.state, payment_matched(payment_event()), CTX).state
    states.append(paid)

    for state in states:
        stored = state.model_dump(mode="json")
        json.dumps(stored)  # the table's value serializer needs plain JSON
        assert InvoiceState.model_validate(stored) == state
    assert InvoiceState.model_validate(paid.model_dump(mode="json")).status is InvoiceStatus.PAID
    assert paid.model_dump(mode="json")["requests"] == {REQUEST_ID: ORDER_ID}


def test_a_pending_request_survives_the_round_trip_as_none() -> None:
    inv = invoice()
    state = apply(apply(None, inv, CTX).state, payment_requested(inv), CTX).state

    loaded = roundtrip(state)

    assert loaded.requests == {REQUEST_ID: None}
    assert apply(loaded, payment_requested(inv), CTX).emits == []


def test_apply_rejects_events_the_ledger_does_not_take() -> None:
    raw = raw_webhook(webhook_body())

    with pytest.raises(TypeError, match="RawWebhook"):
        apply(None, raw, CTX)


def test_apply_dispatches_like_the_handlers() -> None:
    inv = invoice()
    req = payment_requested(inv)
    state = on_invoice(None, inv).state
    assert apply(None, inv, CTX).state == state
    assert apply(state, req, CTX).state == on_payment_requested(state, req, CTX).state
    match = payment_matched(payment_event())
    via_apply = apply(state, match, CTX)
    direct = on_payment_matched(state, match, CTX)
    assert via_apply.state == direct.state
    assert [e.topic for e in via_apply.emits] == [e.topic for e in direct.emits]


def test_fee_context_names_the_school_or_falls_back_to_the_tenant_id() -> None:
    assert CTX.school(TENANT) == SCHOOL
    assert CTX.school("nowhere") == "nowhere"
    assert CTX.payment_url("t", "order_1", "INV-9") == (
        "https://checkout.school.example/t/pay/order_1?invoice=INV-9"
    )
    assert CTX.receipt_url("t", "REC-1") == "https://erp.school.example/t/receipts/REC-1"


def test_the_default_url_templates_need_only_their_own_placeholders() -> None:
    ctx = FeeContext(
        CTX.tenants,
        "https://checkout.school.example/pay/{order_id}",
        "https://erp.school.example/receipts/{receipt_no}",
    )

    assert ctx.payment_url(TENANT, ORDER_ID, INVOICE_ID) == (
        f"https://checkout.school.example/pay/{ORDER_ID}"
    )
    assert ctx.receipt_url(TENANT, "REC-2026-ABCD1234") == (
        "https://erp.school.example/receipts/REC-2026-ABCD1234"
    )


# --- the seed's fee payment story, pure, end to end ---------------------------


def _one(emits: list[Emit], topic: str) -> Emit:
    found = [e for e in emits if e.topic == topic]
    assert len(found) == 1, [e.topic for e in emits]
    return found[0]


def test_the_fee_payment_story_from_invoice_to_receipt() -> None:
    inv = invoice()
    req = payment_requested(inv)
    flow = inv.header.correlation_id

    # Fee module: invoice, then the payment request -> one Razorpay order command.
    state = roundtrip(apply(None, inv, CTX).state)
    t = apply(state, req, CTX)
    command = _one(t.emits, "connector.razorpay.commands.v1").event
    assert isinstance(command, ConnectorCommand)
    state = roundtrip(t.state)

    # Connector answers; the hub tells the fee module and the matcher.
    emits = order_results(connector_result(command), CTX)
    order = _one(emits, PAYMENT_ORDERS).event
    link_emit = _one(emits, ORDER_LINKS)
    assert isinstance(order, PaymentOrderResult)
    assert order.header.correlation_id == flow
    state = roundtrip(apply(state, order, CTX).state)

    # Razorpay's webhook, normalized, matched to the invoice by its order link.
    payment = normalize(raw_webhook(webhook_body("payment.captured")))
    assert payment is not None
    assert payment.key() == link_emit.record_key
    match = matched(link_of(link_emit.event), payment)  # type: ignore[arg-type]
    assert isinstance(match, PaymentMatched)
    assert match.key() == inv.key()

    t = apply(state, match, CTX)

    assert t.state.status is InvoiceStatus.PAID
    changed = _one(t.emits, INVOICE_STATUS).event
    assert isinstance(changed, InvoiceStatusChanged)
    assert changed.status is InvoiceStatus.PAID
    sms = next(
        e.event
        for e in t.emits
        if isinstance(e.event, NotificationRequest) and e.event.channel is Channel.SMS
    )
    assert sms.text.startswith("Payment successful: ₹50,000")
    assert {e.event.header.correlation_id for e in t.emits} == {flow}
    # Everything redelivered at once: nothing new.
    paid = roundtrip(t.state)
    for event in (inv, req, order, match):
        again = apply(paid, event, CTX)
        assert again.emits == [], type(event).__name__
        assert again.state.status is InvoiceStatus.PAID
