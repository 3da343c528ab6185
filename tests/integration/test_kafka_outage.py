"""Kafka goes away: the ingress says 503, nothing is lost, the retry completes the flow.

Stops the session's shared broker, so it runs after every other test.
"""

from __future__ import annotations

import time

import pytest
from support import open_invoice, watch_all

from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import INVOICE_STATUS
from hub.local_kafka import LocalBroker
from schemas.events import InvoiceStatus, InvoiceStatusChanged
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack, pytest.mark.broker_restart]


def test_webhook_during_an_outage_is_503_and_the_retry_after_recovery_completes_the_flow(
    hub_settings: Settings, sim: SimulatorClient, broker: LocalBroker
) -> None:
    with watch_all(hub_settings) as watch:
        opened = open_invoice(hub_settings, watch)

    broker.down()
    try:
        during = sim.pay_order(opened.order_id, "captured")
        assert during["webhook_status"] == 503  # not persisted: Razorpay will retry
    finally:
        broker.up(timeout=120)

    # Razorpay retries the same event with backoff until it gets a 2xx.
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        status = sim.resend_webhook(during["event_id"])["webhook_status"]
        if status == 200:
            break
        time.sleep(2)
    assert status == 200

    with TopicWatcher(hub_settings, [INVOICE_STATUS], since_ms=0) as statuses:
        paid = statuses.wait_for(
            InvoiceStatusChanged,
            lambda e: e.invoice_id == opened.invoice.invoice_id,
            timeout=90,
        )[0]
    assert paid.status is InvoiceStatus.PAID
    sms = sim.wait_for_requests("twilio", 1, timeout=60, To=opened.phone)
    assert "Payment successful" in sms[0]["body"]["Body"]
    time.sleep(3)
    assert len(sim.requests("twilio", To=opened.phone)) == 1
