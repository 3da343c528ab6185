"""A captured Razorpay delivery replayed under a new X-Razorpay-Event-Id is no new payment.

The header is outside Razorpay's signature: the replay verifies. The ingress keys it
by the signed body, so it meets the first delivery's dedup entry downstream: one
payment recorded, one PAID, one SMS.
"""

from __future__ import annotations

import pytest
from support import (
    open_invoice,
    post_webhook,
    razorpay_signature,
    sms_to,
    webhook_secret,
)

from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import (
    INVOICE_STATUS,
    PAYMENT_EVENTS,
    PAYMENT_ORDERS,
    PAYMENTS_RECORDED,
    RAW_WEBHOOKS,
    results_topic,
)
from schemas.events import InvoiceStatusChanged, PaymentEvent, PaymentRecorded, RawWebhook
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

REPLAY = "evt_Replay0000001"


def test_a_replay_under_a_new_event_id_header_records_one_payment(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    # What watch_all() follows, and the normalizer's output: one PaymentEvent or two.
    topics = [PAYMENT_ORDERS, INVOICE_STATUS, PAYMENTS_RECORDED, RAW_WEBHOOKS, PAYMENT_EVENTS]
    topics += [results_topic(p) for p in ("razorpay", "twilio", "sendgrid")]
    with TopicWatcher(hub_settings, topics) as watch:
        opened = open_invoice(hub_settings, watch)
        sent = sim.pay_order(opened.order_id, "captured")
        assert sent["webhook_status"] == 200

        def ours(raw: RawWebhook) -> bool:
            return raw.http_headers.get("x-razorpay-event-id") in (sent["event_id"], REPLAY)

        [first] = watch.wait_for(RawWebhook, ours, timeout=10)
        watch.wait_for(PaymentRecorded, lambda e: e.invoice_id == opened.invoice.invoice_id)
        # The attacker's copy: the same bytes and signature, another event id header.
        replay = post_webhook(
            hub_settings,
            first.body,
            signature=razorpay_signature(first.body, webhook_secret(hub_settings)),
            event_id=REPLAY,
        )
        assert replay.status_code == 200, replay.text
        raws = watch.wait_for(RawWebhook, ours, count=2, timeout=10)
        sim.wait_for_requests("twilio", 1, timeout=10, To=opened.phone)
        watch.settle(3.0)

        assert {r.http_headers["x-razorpay-event-id"] for r in raws} == {
            sent["event_id"],
            REPLAY,
        }
        assert raws[0].provider_event_id == raws[1].provider_event_id
        assert raws[0].provider_event_id.startswith(f"payment.captured:{sent['payment_id']}:")
        invoice = opened.invoice.invoice_id
        payments = watch.find(PaymentEvent, lambda e: e.payment_id == sent["payment_id"])
        assert len(payments) == 1  # the normalizer dropped the replay as a duplicate
        assert len(watch.find(PaymentRecorded, lambda e: e.invoice_id == invoice)) == 1
        assert len(watch.find(InvoiceStatusChanged, lambda e: e.invoice_id == invoice)) == 1
    assert len(sms_to(sim, opened.phone)) == 1
