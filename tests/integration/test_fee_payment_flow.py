"""The fee-payment story end to end, on the real broker and the running hub.

Seed 000, use case 1: invoice -> Razorpay order -> signed webhook -> invoice
PAID -> SMS and email receipt; and the payment.failed branch.
"""

from __future__ import annotations

import pytest
from support import delivered, open_invoice, sms_to, watch_all

from core.settings import Settings
from schemas.events import (
    InvoiceStatus,
    InvoiceStatusChanged,
    PaymentRecorded,
    PaymentStatus,
)
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]


def test_captured_payment_marks_the_invoice_paid_and_sends_one_sms_and_one_email(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    with watch_all(hub_settings) as watch:
        opened = open_invoice(hub_settings, watch)
        assert opened.order.payment_url and opened.order_id in opened.order.payment_url

        sent = sim.pay_order(opened.order_id, "captured")
        assert sent["webhook_status"] == 200

        paid = watch.wait_for(
            InvoiceStatusChanged,
            lambda e: e.invoice_id == opened.invoice.invoice_id,
            timeout=10,
        )[0]
        assert paid.status is InvoiceStatus.PAID
        assert paid.previous_status is InvoiceStatus.UNPAID
        assert paid.paid_amount_minor == 50_000_00
        assert paid.header.correlation_id == opened.invoice.header.correlation_id

        sms = sim.wait_for_requests("twilio", 1, timeout=10, To=opened.phone)
        email = sim.wait_for_requests("sendgrid", 1, timeout=10, to=opened.email)
        assert "Payment successful: ₹50,000" in sms[0]["body"]["Body"]
        assert paid.receipt_no and paid.receipt_no in sms[0]["body"]["Body"]
        assert paid.receipt_no in email[0]["body"]["subject"]

        recorded = watch.wait_for(
            PaymentRecorded, lambda e: e.invoice_id == opened.invoice.invoice_id
        )[0]
        assert recorded.status is PaymentStatus.SUCCESS
        assert recorded.payment_id == sent["payment_id"]

        # Nothing more arrives: exactly one SMS, one email, one PAID event.
        watch.settle(2.0)
        assert len(delivered(sms_to(sim, opened.phone))) == 1
        assert len(sim.requests("sendgrid", to=opened.email)) == 1
        assert len(watch.find(InvoiceStatusChanged, lambda e: e.invoice_id == paid.invoice_id)) == 1


def test_failed_payment_leaves_the_invoice_unpaid_and_texts_the_payment_url(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    with watch_all(hub_settings) as watch:
        opened = open_invoice(hub_settings, watch)
        sent = sim.pay_order(opened.order_id, "failed")
        assert sent["webhook_status"] == 200

        sms = sim.wait_for_requests("twilio", 1, timeout=10, To=opened.phone)[0]
        text = sms["body"]["Body"]
        assert text.startswith("Payment failed:")
        assert "insufficient funds" in text
        assert opened.order.payment_url and opened.order.payment_url in text

        recorded = watch.wait_for(
            PaymentRecorded, lambda e: e.invoice_id == opened.invoice.invoice_id
        )[0]
        assert recorded.status is PaymentStatus.FAILED
        assert recorded.error_code == "BAD_REQUEST_ERROR"

        watch.settle(2.0)
        assert (
            watch.find(InvoiceStatusChanged, lambda e: e.invoice_id == opened.invoice.invoice_id)
            == []
        )
        assert sim.requests("sendgrid", to=opened.email) == []
        assert len(sms_to(sim, opened.phone)) == 1


def test_the_same_webhook_delivered_three_times_sends_one_sms_and_one_email(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    with watch_all(hub_settings) as watch:
        opened = open_invoice(hub_settings, watch)
        sent = sim.pay_order(opened.order_id, "captured")
        # Razorpay retries the same event (same bytes, same X-Razorpay-Event-Id).
        for _ in range(2):
            assert sim.resend_webhook(sent["event_id"])["webhook_status"] == 200

        sim.wait_for_requests("twilio", 1, timeout=10, To=opened.phone)
        sim.wait_for_requests("sendgrid", 1, timeout=10, to=opened.email)
        watch.settle(3.0)
        assert len(sms_to(sim, opened.phone)) == 1
        assert len(sim.requests("sendgrid", to=opened.email)) == 1
        assert (
            len(
                watch.find(
                    InvoiceStatusChanged, lambda e: e.invoice_id == opened.invoice.invoice_id
                )
            )
            == 1
        )
        # All three deliveries reached Kafka, under one id from the signed body (the
        # X-Razorpay-Event-Id header is unsigned: information only); the normalizer
        # dropped two.
        raws = [
            r[1]
            for r in watch.events
            if getattr(r[1], "http_headers", {}).get("x-razorpay-event-id") == sent["event_id"]
        ]
        assert len(raws) == 3
        assert len({r.provider_event_id for r in raws}) == 1
