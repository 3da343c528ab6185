"""Webhooks that ask the gateway, and gateway answers that settle a payment (issue 9)."""

from __future__ import annotations

from proc_support import TENANT, raw_webhook, webhook_body

from processors.normalize import follow_up_command
from providers.payments import FollowUp, PaymentSnapshot, snapshot_event
from schemas.events import (
    CapturePayment,
    ConnectorResult,
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    ResultStatus,
)


def result(
    operation: str, details: dict[str, str], status: ResultStatus = ResultStatus.DELIVERED
) -> ConnectorResult:
    return ConnectorResult(
        header=EventHeader.new(ConnectorResult.EVENT_TYPE, TENANT, source="connector-pesapal"),
        command_id="c1",
        idempotency_key="k1",
        provider="pesapal",
        operation=operation,
        status=status,
        provider_ref="trk-1",
        attempts=1,
        details=details,
    )


def test_a_follow_up_asks_the_gateway_on_the_account_that_signed_the_webhook() -> None:
    raw = raw_webhook(webhook_body(), provider="pesapal", event_id="trk-1:IPNCHANGE")
    raw = raw.model_copy(update={"account": "pesapal-primary"})
    command = follow_up_command(raw, FollowUp("fetch_status", "trk-1"))
    assert (command.provider, command.account) == ("pesapal", "pesapal-primary")
    assert command.idempotency_key == "payment.fetch_status:pesapal:trk-1:IPNCHANGE"
    assert isinstance(command.payload, FetchPaymentStatus)
    assert (command.payload.order_id, command.payload.reason) == ("trk-1", "ipn")
    assert command.header.causation_id == raw.header.event_id


def test_a_capture_follow_up_is_a_capture_command() -> None:
    raw = raw_webhook(webhook_body(), provider="paypal", event_id="WH-1")
    command = follow_up_command(raw, FollowUp("capture", "ORDER-1"))
    assert isinstance(command.payload, CapturePayment)
    assert command.payload.order_id == "ORDER-1"


def test_a_settled_status_answer_is_the_payment_event_a_webhook_would_carry() -> None:
    snap = PaymentSnapshot("CAPTURED", "trk-1", "CONF-9", 250_000, "KES", "MpesaKE")
    event = snapshot_event(result(FetchPaymentStatus.OPERATION, snap.to_details()))
    assert event is not None
    assert (event.kind, event.order_id, event.payment_id) == (
        PaymentEventKind.CAPTURED,
        "trk-1",
        "CONF-9",
    )
    assert (event.amount_minor, event.currency, event.method) == (250_000, "KES", "MpesaKE")
    assert event.provider_event_id == "status:CONF-9:CAPTURED"


def test_a_failed_snapshot_carries_its_reason() -> None:
    snap = PaymentSnapshot(
        "FAILED", "o1", "p1", 100, "INR", error_code="1032", error_description="cancelled"
    )
    event = snapshot_event(result(FetchPaymentStatus.OPERATION, snap.to_details()))
    assert event is not None
    assert (event.kind, event.error_code, event.error_description) == (
        PaymentEventKind.FAILED,
        "1032",
        "cancelled",
    )


def test_pending_unknown_failed_calls_and_other_operations_settle_nothing() -> None:
    pending = PaymentSnapshot("PENDING", "o1").to_details()
    captured = PaymentSnapshot("CAPTURED", "o1", "p1", 100, "INR").to_details()
    assert snapshot_event(result(FetchPaymentStatus.OPERATION, pending)) is None
    assert (
        snapshot_event(result(FetchPaymentStatus.OPERATION, captured, ResultStatus.FAILED)) is None
    )
    assert snapshot_event(result("payment.create_order", captured)) is None
    assert snapshot_event(result(FetchPaymentStatus.OPERATION, {})) is None
    no_payment = PaymentSnapshot("CAPTURED", "o1").to_details()
    assert snapshot_event(result(FetchPaymentStatus.OPERATION, no_payment)) is None


def test_a_snapshot_survives_the_round_trip_through_result_details() -> None:
    snap = PaymentSnapshot("CAPTURED", "o1", "p1", 12_345, "INR", "upi", "", "")
    assert PaymentSnapshot.from_details(snap.to_details()) == snap
    assert all(isinstance(v, str) for v in snap.to_details().values())
