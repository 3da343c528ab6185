"""End-to-end latency: signed webhook sent -> SMS request arriving at the Twilio simulator.

Both timestamps come from this machine's clock (the simulator records when a
request arrived). Payments are sent at a steady rate after their orders exist.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import percentile, summary
from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import PAYMENT_ORDERS
from hub.stack import HubStack
from producers import EventProducer
from schemas.events import Contact, EventHeader, Invoice, PaymentOrderResult, PaymentRequested
from simulators.client import SimulatorClient


def _open_invoices(settings: Settings, count: int) -> dict[str, str]:
    """order id -> parent phone, for `count` fresh invoices."""
    phones: dict[str, str] = {}
    with TopicWatcher(settings, [PAYMENT_ORDERS]) as watch, EventProducer(settings) as producer:
        requests = {}
        for i in range(count):
            phone = f"+91970{i:07d}"
            invoice = Invoice(
                header=EventHeader.new(Invoice.EVENT_TYPE, "greenwood", source="bench"),
                invoice_id=f"BENCH-{i}",
                student_id=f"S{i}",
                student_name="Student",
                description="Term 1 fees",
                amount_minor=5_000_000,
                parent=Contact(name="Parent", phone=phone),
            )
            request = PaymentRequested.for_invoice(invoice, source="bench")
            producer.publish(invoice)
            producer.publish(request)
            requests[request.request_id] = phone
        producer.flush()
        for order in watch.wait_for(
            PaymentOrderResult, lambda r: r.request_id in requests, count=count, timeout=120
        ):
            assert order.order_id
            phones[order.order_id] = requests[order.request_id]
    return phones


def run(settings: Settings, payments: int = 300, per_second: float = 20.0) -> dict[str, Any]:
    stack = HubStack(settings, settings.home / "logs", cdc=False)
    stack.start()
    try:
        sim = SimulatorClient(settings.simulator_url)
        orders = _open_invoices(settings, payments)
        sent: dict[str, float] = {}
        interval = 1.0 / per_second
        for order_id, phone in orders.items():
            tick = time.perf_counter()
            sent[phone] = time.time()
            result = sim.pay_order(order_id, "captured")
            assert result["webhook_status"] == 200, result
            time.sleep(max(0.0, interval - (time.perf_counter() - tick)))
        deadline = time.monotonic() + 60
        arrived: dict[str, float] = {}
        while len(arrived) < len(sent) and time.monotonic() < deadline:
            for request in sim.requests("twilio"):
                phone = request["body"].get("To")
                if phone in sent and request.get("response_status") == 201:
                    arrived.setdefault(phone, request["received_at"])
            time.sleep(0.5)
        latencies = [(arrived[p] - sent[p]) * 1000 for p in arrived]
        return {
            "payments": payments,
            "rate_per_s": per_second,
            "sms_arrived": len(arrived),
            "webhook_to_sms_ms_p50": round(percentile(latencies, 50), 1),
            "webhook_to_sms_ms_p99": round(percentile(latencies, 99), 1),
            "summary": summary(latencies),
        }
    finally:
        stack.stop()
