"""Fee payments as schools and parents make them: invoices, orders, signed webhooks.

The fee module publishes an invoice and asks for payment; the hub creates the
order at the school's gateway; the parent pays and the simulator fires the
gateway's signed callback at the ingress. A callback the ingress did not
acknowledge with 2xx is sent again, the same bytes, until it is (Razorpay
retries for 24 hours).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from chaos.env import Environment
from core.observe import TopicWatcher
from core.topics import PAYMENT_ORDERS
from producers import EventProducer
from schemas.events import Contact, EventHeader, Invoice, PaymentOrderResult, PaymentRequested

RESEND_EVERY_SECONDS = 1.0


@dataclass
class Payment:
    tenant: str
    invoice_id: str
    request_id: str
    phone: str
    email: str
    order_id: str | None = None
    gateway: str = ""  # the gateway that created the order
    event_id: str | None = None  # the callback's, once the parent paid
    acknowledged: bool = False  # the ingress answered 2xx
    last_sent: float = 0.0
    sends: int = 0


def new_payments(count: int, tenants: tuple[str, ...], tag: str) -> list[Payment]:
    run = secrets.randbelow(900) + 100
    return [
        Payment(
            tenant=tenants[i % len(tenants)],
            invoice_id=f"INV-{tag}-{i}",
            request_id=f"req-{tag}-{i}",
            phone=f"+919{run:03d}{i:06d}",
            email=f"parent{i}.{tag}@parents.example",
        )
        for i in range(count)
    ]


class FeeTraffic:
    def __init__(self, env: Environment, count: int, *, tenants: tuple[str, ...] = ("greenwood",)):
        self.env = env
        self.tag = secrets.token_hex(3)
        self.payments = new_payments(count, tenants, self.tag)

    def open(self, timeout: float = 240.0) -> None:
        """Every invoice published and its Razorpay order created."""
        by_request = {p.request_id: p for p in self.payments}
        with (
            TopicWatcher(self.env.settings, [PAYMENT_ORDERS]) as watch,
            EventProducer(self.env.settings, client_id="chaos-fee-module") as producer,
        ):
            for payment in self.payments:
                invoice, request = fee_events(payment)
                producer.publish(invoice)
                producer.publish(request)
            producer.flush()
            orders = watch.wait_for(
                PaymentOrderResult,
                lambda r: r.request_id in by_request and r.order_id is not None,
                count=len(self.payments),
                timeout=timeout,
            )
        for order in orders:
            by_request[order.request_id].order_id = order.order_id
            by_request[order.request_id].gateway = order.gateway

    def pay(self, rate: float) -> None:
        """Pay every order, `rate` payments a second, resending unacknowledged webhooks."""
        interval = 1.0 / rate
        for payment in self.payments:
            tick = time.monotonic()
            self._pay(payment)
            self.resend_pending(budget=interval / 2)
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))

    def _pay(self, payment: Payment) -> None:
        assert payment.order_id is not None
        answer = self.env.sim.pay(payment.gateway, payment.order_id)
        callback = answer["callback"]
        payment.event_id = str(callback["id"])
        self._sent(payment, callback.get("status"))

    def _sent(self, payment: Payment, status: object) -> None:
        payment.sends += 1
        payment.last_sent = time.monotonic()
        payment.acknowledged = isinstance(status, int) and 200 <= status < 300

    def pending(self) -> list[Payment]:
        return [p for p in self.payments if p.event_id is not None and not p.acknowledged]

    def resend_pending(self, budget: float = 1.0) -> int:
        """Resend (once a second each) webhooks not acknowledged yet; returns how many wait."""
        deadline = time.monotonic() + budget
        for payment in self.pending():
            if time.monotonic() >= deadline:
                break
            if time.monotonic() - payment.last_sent < RESEND_EVERY_SECONDS:
                continue
            assert payment.event_id is not None
            try:
                answer = self.env.sim.resend_callback(payment.event_id)
            except Exception:  # the simulator is up; a failed resend is retried next time
                payment.last_sent = time.monotonic()
                continue
            self._sent(payment, answer.get("status"))
        return len(self.pending())

    def acknowledge_all(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.resend_pending() and time.monotonic() < deadline:
            time.sleep(0.2)


def fee_events(payment: Payment) -> tuple[Invoice, PaymentRequested]:
    parent = Contact(name="Mrs. Sharma", phone=payment.phone, email=payment.email)
    invoice = Invoice(
        header=EventHeader.new(Invoice.EVENT_TYPE, payment.tenant, source="chaos-fee-module"),
        invoice_id=payment.invoice_id,
        student_id=f"STU-{payment.invoice_id}",
        student_name="Rohan Sharma",
        description="Term 1 fees",
        amount_minor=50_000_00,
        parent=parent,
    )
    request = PaymentRequested.for_invoice(
        invoice, source="chaos-fee-module", request_id=payment.request_id
    )
    return invoice, request
