"""Dual gateways (seed 004), missed webhooks and money checks, on the invoice ledger alone."""

from __future__ import annotations

import json
import tomllib

import pytest
from proc_support import (
    AMOUNT,
    INVOICE_ID,
    ORDER_ID,
    PAYMENT_ID,
    RECEIPT_URL_TEMPLATE,
    TENANT,
    connector_result,
    invoice,
    payment_event,
    payment_matched,
    payment_requested,
)

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.tenants import TenantDirectory
from core.topics import ORDER_LINKS, PAYMENT_ORDERS, commands_topic
from processors.fee_state import FeeContext, InvoiceState
from processors.fees import PaymentMismatchError, apply, due_polls, order_results
from processors.gateways import GatewayHealth, HealthView, Sample, health_of, plan
from schemas.events import (
    ConnectorCommand,
    CreatePaymentOrder,
    FetchPaymentStatus,
    InvoiceStatus,
    NotificationRequest,
    OrderStatus,
    PaymentEvent,
    PaymentEventKind,
    PaymentOrderResult,
    PaymentRecorded,
    PaymentStatus,
    RefundPayment,
    ResultStatus,
)

REQUEST_ID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
PAYMENT_URL_TEMPLATE = "https://pay.example/{tenant}/{order_id}"


def dual_gateway_tenants(**routing: list[str]) -> TenantDirectory:
    table = tomllib.loads(demo_tenant_config(TENANT))
    table["tenants"][TENANT]["routing"] = {
        "payment": ["cashfree-primary", "razorpay-primary"],
        **routing,
    }
    return parse_tenants(table)


def context(directory: TenantDirectory, **extra: object) -> FeeContext:
    return FeeContext(directory, PAYMENT_URL_TEMPLATE, RECEIPT_URL_TEMPLATE, **extra)  # type: ignore[arg-type]


def roundtrip(state: InvoiceState) -> InvoiceState:
    return InvoiceState.model_validate(json.loads(json.dumps(state.model_dump(mode="json"))))


def requested(ctx: FeeContext) -> tuple[InvoiceState, ConnectorCommand]:
    inv = invoice()
    state = apply(None, inv, ctx).state
    t = apply(roundtrip(state), payment_requested(inv, request_id=REQUEST_ID, gateway=""), ctx)
    (emit,) = t.emits
    assert isinstance(emit.event, ConnectorCommand)
    return roundtrip(t.state), emit.event


def answered(
    state: InvoiceState, result_order: PaymentOrderResult, ctx: FeeContext
) -> tuple[InvoiceState, list[object]]:
    t = apply(state, result_order, ctx)
    return roundtrip(t.state), [e.event for e in t.emits]


def only_order(results: list[object]) -> PaymentOrderResult:
    (first, *_rest) = results
    assert isinstance(first, PaymentOrderResult)
    return first


# --- the plan -----------------------------------------------------------------


def test_the_school_order_is_the_plan_when_every_gateway_is_healthy() -> None:
    tenant = dual_gateway_tenants().get(TENANT)
    assert tenant is not None
    chosen = plan(tenant, {})
    assert [(c.provider, c.label) for c in chosen] == [
        ("cashfree", "cashfree-primary"),
        ("razorpay", "razorpay-primary"),
    ]


def test_an_unhealthy_gateway_moves_behind_the_healthy_one_but_stays_in_the_plan() -> None:
    tenant = dual_gateway_tenants().get(TENANT)
    assert tenant is not None
    sick = {"cashfree-primary": HealthView(samples=10, error_rate=0.6, p95_latency_ms=100.0)}
    assert [c.label for c in plan(tenant, sick)] == ["razorpay-primary", "cashfree-primary"]


def test_a_named_gateway_is_the_only_one_asked() -> None:
    tenant = dual_gateway_tenants().get(TENANT)
    assert tenant is not None
    assert [c.label for c in plan(tenant, {}, "razorpay")] == ["razorpay-primary"]
    assert plan(tenant, {}, "paytm-not-configured") == []


def test_health_counts_only_the_window_and_needs_a_few_samples_to_judge() -> None:
    old = [Sample(at=0.0, ok=False, latency_ms=10.0)] * 5
    fresh = [Sample(at=1000.0, ok=False, latency_ms=10.0), Sample(1000.0, True, 30.0)]
    view = health_of(old + fresh, now=1001.0)
    assert (view.samples, view.error_rate) == (2, 0.5)
    assert view.healthy  # two samples are too few to call a gateway down
    slow = health_of([Sample(1000.0, True, 9000.0)] * 4, now=1001.0)
    assert not slow.healthy


def test_gateway_health_remembers_what_it_observed_per_account() -> None:
    now = [100.0]
    health = GatewayHealth(lambda: now[0])
    for _ in range(3):
        health.observe("cashfree-primary", ok=False, latency_ms=50.0)
    health.observe("razorpay-primary", ok=True, latency_ms=40.0)
    assert not health.view("cashfree-primary").healthy
    assert health.view("razorpay-primary").healthy
    now[0] += 1000.0  # the window passed: nothing recent is known
    assert health.view("cashfree-primary").samples == 0


# --- failover -----------------------------------------------------------------


def test_the_first_gateway_gets_the_request_with_a_failover_mark() -> None:
    _state, command = requested(context(dual_gateway_tenants()))
    assert (command.provider, command.account) == ("cashfree", "cashfree-primary")
    assert command.idempotency_key == f"payment-order:{REQUEST_ID}"
    assert command.context["failover"] == "next"


def test_a_503_at_the_first_gateway_sends_the_request_to_the_next_one_once() -> None:
    ctx = context(dual_gateway_tenants())
    state, command = requested(ctx)
    failed = connector_result(
        command, status=ResultStatus.FAILED, http_status=503, error_message="unavailable"
    ).model_copy(update={"retryable": True})

    (result_emit,) = order_results(failed, ctx)
    failing = result_emit.event
    assert isinstance(failing, PaymentOrderResult)
    assert failing.status is OrderStatus.FAILING_OVER

    state, emitted = answered(state, failing, ctx)
    (second,) = emitted
    assert isinstance(second, ConnectorCommand)
    assert (second.provider, second.account) == ("razorpay", "razorpay-primary")
    # Its own key: Razorpay never sees Cashfree's, and a retry of either stays one order.
    assert second.idempotency_key == f"payment-order:{REQUEST_ID}:razorpay"
    assert "failover" not in second.context  # nothing left to fail over to
    payload = second.payload
    assert isinstance(payload, CreatePaymentOrder)
    assert payload.amount_minor == AMOUNT

    # The same failure delivered again asks nobody a third time.
    _again, emitted_again = answered(state, failing, ctx)
    assert emitted_again == []


def test_the_last_gateway_failing_is_a_final_failure_for_the_fee_module() -> None:
    ctx = context(dual_gateway_tenants())
    state, command = requested(ctx)
    failing = order_results(
        connector_result(command, status=ResultStatus.FAILED, http_status=503).model_copy(
            update={"retryable": True}
        ),
        ctx,
    )[0].event
    assert isinstance(failing, PaymentOrderResult)
    state, (second,) = answered(state, failing, ctx)
    assert isinstance(second, ConnectorCommand)
    last = connector_result(second, status=ResultStatus.FAILED, http_status=503).model_copy(
        update={"retryable": True}
    )
    (final_emit,) = order_results(last, ctx)
    final = final_emit.event
    assert isinstance(final, PaymentOrderResult)
    assert (final.status, final.gateway) == (OrderStatus.FAILED, "razorpay")


def test_a_rejected_order_does_not_fail_over() -> None:
    ctx = context(dual_gateway_tenants())
    _state, command = requested(ctx)
    rejected = connector_result(command, status=ResultStatus.FAILED, http_status=400)
    (emit,) = order_results(rejected, ctx)
    assert isinstance(emit.event, PaymentOrderResult)
    assert emit.event.status is OrderStatus.FAILED


def test_the_invoice_records_the_gateway_that_took_the_payment() -> None:
    ctx = context(dual_gateway_tenants())
    state, command = requested(ctx)
    created = order_results(connector_result(command, provider_ref="rcpt_x"), ctx)
    order = created[0].event
    assert isinstance(order, PaymentOrderResult)
    assert (order.gateway, order.account) == ("cashfree", "cashfree-primary")
    state, _ = answered(state, order, ctx)
    cashfree_payment = payment_event(order_id="rcpt_x").model_copy(update={"provider": "cashfree"})
    t = apply(state, payment_matched(cashfree_payment, request_id=REQUEST_ID), ctx)
    assert t.state.status is InvoiceStatus.PAID
    assert t.state.gateway == "cashfree"


# --- missed webhooks --------------------------------------------------------


def created_state(ctx: FeeContext) -> InvoiceState:
    state, command = requested(ctx)
    order = order_results(connector_result(command, provider_ref=ORDER_ID), ctx)[0].event
    assert isinstance(order, PaymentOrderResult)
    return answered(state, order, ctx)[0]


def test_an_order_without_news_is_asked_about_after_the_poll_interval() -> None:
    ctx = context(dual_gateway_tenants(), poll_after_seconds=600.0)
    state = created_state(ctx)
    ordered_at = state.attempts[REQUEST_ID].ordered_at
    assert ordered_at is not None

    assert due_polls(state, ordered_at + 599.0, ctx).emits == []
    t = due_polls(state, ordered_at + 600.0, ctx)
    (emit,) = t.emits
    command = emit.event
    assert isinstance(command, ConnectorCommand)
    assert emit.topic == commands_topic("cashfree")
    assert command.account == "cashfree-primary"
    payload = command.payload
    assert isinstance(payload, FetchPaymentStatus)
    assert (payload.order_id, payload.amount_minor, payload.currency) == (ORDER_ID, AMOUNT, "INR")
    # Asked once per interval: the next ask waits four times as long.
    polled = roundtrip(t.state)
    assert due_polls(polled, ordered_at + 601.0, ctx).emits == []
    assert len(due_polls(polled, ordered_at + 600.0 * 4, ctx).emits) == 1


def test_a_settled_order_and_a_paid_invoice_are_never_polled() -> None:
    ctx = context(dual_gateway_tenants(), poll_after_seconds=1.0)
    state = created_state(ctx)
    paid = apply(state, payment_matched(payment_event(), request_id=REQUEST_ID), ctx).state
    assert due_polls(roundtrip(paid), 10**10, ctx).emits == []


def test_polls_stop_after_the_maximum() -> None:
    ctx = context(dual_gateway_tenants(), poll_after_seconds=1.0, max_polls=2)
    state = created_state(ctx)
    asked = 0
    for _ in range(5):
        t = due_polls(state, 10**10, ctx)
        asked += len(t.emits)
        state = roundtrip(t.state)
    assert asked == 2


def test_a_webhook_after_the_poll_found_the_payment_changes_nothing_twice() -> None:
    ctx = context(dual_gateway_tenants())
    state = created_state(ctx)
    by_poll = payment_event().model_copy(
        update={"provider_event_id": f"status:{PAYMENT_ID}:CAPTURED"}
    )
    paid = apply(state, payment_matched(by_poll, request_id=REQUEST_ID), ctx)
    late_webhook = payment_event()
    again = apply(roundtrip(paid.state), payment_matched(late_webhook, request_id=REQUEST_ID), ctx)
    assert again.emits == []
    assert again.state.paid_amount_minor == AMOUNT


# --- money checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ({"currency": "USD"}, "is in USD"),
        ({"amount_minor": AMOUNT + 1}, "asked for"),
        ({"amount_minor": 0}, "no amount"),
    ],
)
def test_a_payment_that_does_not_fit_its_order_is_refused(
    update: dict[str, object], reason: str
) -> None:
    ctx = context(dual_gateway_tenants())
    state = created_state(ctx)
    wrong: PaymentEvent = payment_event().model_copy(update=update)
    with pytest.raises(PaymentMismatchError, match=reason):
        apply(state, payment_matched(wrong, request_id=REQUEST_ID), ctx)


def test_a_duplicate_payment_is_refunded_when_the_school_says_so() -> None:
    ctx = context(dual_gateway_tenants(refunds=["razorpay-primary"]))
    inv = invoice()
    state = apply(None, inv, ctx).state
    t = apply(state, payment_requested(inv, request_id=REQUEST_ID, gateway="razorpay"), ctx)
    state = roundtrip(t.state)
    paid = apply(state, payment_matched(payment_event(), request_id=REQUEST_ID), ctx).state
    second = payment_event(payment_id="pay_Second000001")
    t = apply(roundtrip(paid), payment_matched(second, request_id=REQUEST_ID), ctx)
    recorded, refund = (e.event for e in t.emits)
    assert isinstance(recorded, PaymentRecorded)
    assert recorded.status is PaymentStatus.DUPLICATE
    assert isinstance(refund, ConnectorCommand)
    assert refund.idempotency_key == "refund:razorpay:pay_Second000001"
    payload = refund.payload
    assert isinstance(payload, RefundPayment)
    assert (payload.payment_id, payload.amount_minor) == ("pay_Second000001", AMOUNT)

    done = connector_result(refund, provider_ref="rfnd_1")
    (emit,) = order_results(done, ctx)
    refunded = emit.event
    assert isinstance(refunded, PaymentRecorded)
    assert (refunded.status, refunded.invoice_id, refunded.amount_minor) == (
        PaymentStatus.REFUNDED,
        INVOICE_ID,
        AMOUNT,
    )


def test_a_duplicate_refund_names_the_gateways_own_reference_for_the_money() -> None:
    ctx = context(dual_gateway_tenants(refunds=["razorpay-primary"]))
    inv = invoice()
    state = apply(None, inv, ctx).state
    t = apply(state, payment_requested(inv, request_id=REQUEST_ID, gateway="razorpay"), ctx)
    paid = apply(roundtrip(t.state), payment_matched(payment_event(), request_id=REQUEST_ID), ctx)
    second = payment_event(payment_id="pay_2").model_copy(update={"gateway_reference": "RCPT9"})
    t = apply(roundtrip(paid.state), payment_matched(second, request_id=REQUEST_ID), ctx)
    refund = next(e.event for e in t.emits if isinstance(e.event, ConnectorCommand))
    assert isinstance(refund.payload, RefundPayment)
    assert (refund.payload.payment_id, refund.payload.gateway_reference) == ("pay_2", "RCPT9")


def test_a_duplicate_payment_is_only_flagged_without_the_school_policy() -> None:
    ctx = context(dual_gateway_tenants())
    state = created_state(ctx)
    paid = apply(state, payment_matched(payment_event(), request_id=REQUEST_ID), ctx).state
    t = apply(paid, payment_matched(payment_event(payment_id="pay_2"), request_id=REQUEST_ID), ctx)
    assert [type(e.event) for e in t.emits] == [PaymentRecorded]


# --- paybill (M-Pesa C2B) -------------------------------------------------


def test_an_invoice_of_a_school_with_a_paybill_links_the_student_to_it() -> None:
    table = tomllib.loads(demo_tenant_config(TENANT))
    assert "mpesa-primary" in table["tenants"][TENANT]["accounts"]
    ctx = context(parse_tenants(table))
    t = apply(None, invoice(), ctx)
    (link,) = t.emits
    assert link.topic == ORDER_LINKS
    order = link.event
    assert isinstance(order, PaymentOrderResult)
    assert (order.order_id, order.invoice_id) == ("c2b:STU-0042", INVOICE_ID)
    assert link.record_key == f"{TENANT}:c2b:STU-0042"
    assert PAYMENT_ORDERS not in [e.topic for e in t.emits]
    # The invoice delivered again links nothing new.
    assert apply(t.state, invoice(), ctx).emits == []


def test_a_paybill_payment_for_the_student_pays_the_invoice_up_to_what_is_due() -> None:
    ctx = context(dual_gateway_tenants())
    state = apply(None, invoice(), ctx).state
    paybill = payment_event(order_id="c2b:STU-0042", amount_minor=AMOUNT - 1000).model_copy(
        update={"provider": "mpesa", "currency": "INR"}
    )
    t = apply(state, payment_matched(paybill, request_id=f"c2b:{INVOICE_ID}"), ctx)
    assert t.state.status is InvoiceStatus.PARTIALLY_PAID
    over = paybill.model_copy(update={"payment_id": "QKX2", "amount_minor": 1001})
    with pytest.raises(PaymentMismatchError, match="asked for"):
        apply(t.state, payment_matched(over, request_id=f"c2b:{INVOICE_ID}"), ctx)


def test_a_failed_payment_links_the_gateways_own_checkout_for_the_retry() -> None:
    ctx = context(dual_gateway_tenants())
    state, command = requested(ctx)
    created = connector_result(command, provider_ref="rcpt_x").model_copy(
        update={"details": {"payment_url": "https://cashfree.test/checkout/rcpt_x"}}
    )
    order = order_results(created, ctx)[0].event
    assert isinstance(order, PaymentOrderResult)
    assert order.payment_url == "https://cashfree.test/checkout/rcpt_x"
    state, _ = answered(state, order, ctx)
    failed = payment_event(PaymentEventKind.FAILED, order_id="rcpt_x").model_copy(
        update={"provider": "cashfree"}
    )
    t = apply(state, payment_matched(failed, request_id=REQUEST_ID), ctx)
    sms = next(e.event for e in t.emits if isinstance(e.event, NotificationRequest))
    assert sms.text.endswith("Retry: https://cashfree.test/checkout/rcpt_x")
