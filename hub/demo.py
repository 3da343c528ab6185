"""The seed's fee-payment story, played against a running hub, step by step with latencies.

Fee module: invoice row + Invoice + PaymentRequested, one ERP transaction (outbox)
-> Debezium relays the events to Kafka -> the gateway's order + payment URL
Parent pays -> the gateway's signed callback -> ingress -> Kafka -> invoice PAID
-> SMS (Twilio) and email receipt (SendGrid)

Any gateway plays it (`hub demo --gateway stripe`); with none named, the school's
payment routing picks (seed 004's Sunrise Academy: Cashfree, then Razorpay).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import INVOICE_STATUS, INVOICES, PAYMENT_ORDERS, PAYMENTS_RECORDED
from hub import erp
from processors.messages import format_money
from schemas.events import (
    Contact,
    EventHeader,
    Invoice,
    InvoiceStatusChanged,
    OrderStatus,
    PaymentOrderResult,
    PaymentRecorded,
    PaymentRequested,
    PaymentStatus,
)
from simulators.client import SimulatorClient

# Gateways that take shillings and push to a Safaricom number.
KES_GATEWAYS = frozenset({"mpesa", "flutterwave", "pesapal"})


@dataclass(frozen=True)
class Step:
    title: str
    detail: str
    latency_ms: float


# The invoice is for the ERP's seeded student (its row must exist: invoices
# reference students); each play gets its own invoice and parent contact, so
# the simulators' requests of one play are told apart from another's.
STUDENT = erp.SEED_STUDENTS[0]


@dataclass(frozen=True)
class Family:
    invoice_id: str
    student_id: str
    phone: str
    email: str

    @classmethod
    def new(cls, kenyan: bool = False) -> Family:
        tag = secrets.token_hex(3).upper()
        number = secrets.randbelow(10**8)
        return cls(
            f"INV-{date.today():%Y}-{tag}",
            str(STUDENT["id"]),
            f"+2547{number:08d}" if kenyan else f"+9198{number:08d}",
            f"sharma.{tag.lower()}@parents.example",
        )


class StoryFailedError(RuntimeError):
    pass


class FeePaymentStory:
    def __init__(
        self,
        settings: Settings,
        tenant: str,
        sim: SimulatorClient,
        report: Callable[[Step], None] = lambda _s: None,
        *,
        timeout: float = 20.0,
        gateway: str = "",
    ) -> None:
        self.settings = settings
        self.tenant = tenant
        self.gateway = gateway
        self.currency = "KES" if gateway in KES_GATEWAYS else "INR"
        self.sim = sim
        self.report = report
        self.timeout = timeout
        self.steps: list[Step] = []

    def _step(self, title: str, detail: str, since: float) -> None:
        step = Step(title, detail, (time.perf_counter() - since) * 1000)
        self.steps.append(step)
        self.report(step)

    def play(self, outcome: str = "captured", amount_minor: int = 50_000_00) -> list[Step]:
        family = Family.new(kenyan=self.gateway == "mpesa")
        engine = erp.engine_for(self.settings.source_dsn)
        with TopicWatcher(
            self.settings, [INVOICES, PAYMENT_ORDERS, INVOICE_STATUS, PAYMENTS_RECORDED]
        ) as watch:
            invoice, request = self._fee_events(family, amount_minor)
            committed = self._save_invoice(engine, invoice, request)
            self._await_relay(watch, invoice, committed)
            order = self._await_order(watch, request, committed)
            paid_at = self._pay(order, outcome)
            self._await_outcome(watch, invoice, outcome, paid_at)
            self._await_messages(family, outcome, paid_at)
        return self.steps

    def _fee_events(self, family: Family, amount: int) -> tuple[Invoice, PaymentRequested]:
        invoice = Invoice(
            header=EventHeader.new(Invoice.EVENT_TYPE, self.tenant, source="fee-module"),
            invoice_id=family.invoice_id,
            student_id=family.student_id,
            student_name=str(STUDENT["name"]),
            description="Term 1 fees",
            amount_minor=amount,
            currency=self.currency,
            due_date=date.today() + timedelta(days=14),
            parent=Contact(name="Mrs. Sharma", phone=family.phone, email=family.email),
        )
        request = PaymentRequested.for_invoice(invoice, source="fee-module", gateway=self.gateway)
        return invoice, request

    def _save_invoice(self, engine: Engine, invoice: Invoice, request: PaymentRequested) -> float:
        """The fee module's one transaction; returns when it committed (perf_counter)."""
        started = time.perf_counter()
        try:
            erp.issue_invoice(engine, invoice, request)
        except IntegrityError as exc:
            raise StoryFailedError(
                f"the ERP refused the invoice (is student {invoice.student_id} seeded? "
                f"`hub postgres up` seeds it): {exc.orig}"
            ) from exc
        self._step(
            "Fee module saved the invoice and its event (outbox)",
            f"{invoice.invoice_id}: {format_money(invoice.amount_minor, invoice.currency)}, "
            f"{invoice.description}, {invoice.student_name}; the invoice row, Invoice and "
            "PaymentRequested in one ERP transaction",
            started,
        )
        return time.perf_counter()

    def _await_relay(self, watch: TopicWatcher, invoice: Invoice, committed: float) -> None:
        watch.wait_for(
            Invoice,
            lambda e: e.header.event_id == invoice.header.event_id,
            topic=INVOICES,
            timeout=self.timeout,
        )
        self._step(
            "Debezium relayed the events from the WAL to Kafka",
            f"Invoice on {INVOICES}, key {invoice.key()}",
            committed,
        )

    def _await_order(
        self, watch: TopicWatcher, request: PaymentRequested, committed: float
    ) -> PaymentOrderResult:
        order = watch.wait_for(
            PaymentOrderResult,
            lambda r: (
                r.request_id == request.request_id and r.status is not OrderStatus.FAILING_OVER
            ),
            timeout=self.timeout,
        )[0]
        for failed in watch.find(
            PaymentOrderResult,
            lambda r: r.request_id == request.request_id and r.status is OrderStatus.FAILING_OVER,
        ):
            self._step(
                f"{failed.gateway} could not create the order: failing over",
                f"{failed.error_code}: {failed.error_message}; the next gateway gets its own "
                "idempotency key, so the parent can be charged only once",
                committed,
            )
        if order.status is not OrderStatus.CREATED or not order.order_id:
            raise StoryFailedError(f"no order: {order.error_code} {order.error_message}")
        self._step(
            f"{order.gateway} order created",
            f"{order.order_id} (account {order.account}); pay at {order.payment_url}",
            committed,
        )
        return order

    def _pay(self, order: PaymentOrderResult, outcome: str) -> float:
        started = time.perf_counter()
        assert order.order_id is not None
        sent = self.sim.pay(
            order.gateway, order.order_id, "success" if outcome == "captured" else "failed"
        )
        callback = sent.get("callback") or {}
        if callback.get("status") != 200:
            raise StoryFailedError(
                f"the ingress answered {callback.get('status')}: {callback.get('error')}"
            )
        self._step(
            f"Parent paid: {order.gateway}'s callback verified and accepted",
            f"payment {sent.get('payment_id')}, ingress answered 200 after Kafka's ack",
            started,
        )
        return started

    def _await_outcome(
        self, watch: TopicWatcher, invoice: Invoice, outcome: str, since: float
    ) -> None:
        if outcome == "captured":
            changed = watch.wait_for(
                InvoiceStatusChanged,
                lambda e: e.invoice_id == invoice.invoice_id,
                timeout=self.timeout,
            )[0]
            self._step("Invoice marked PAID", f"receipt {changed.receipt_no}", since)
            return
        failed = watch.wait_for(
            PaymentRecorded,
            lambda e: e.invoice_id == invoice.invoice_id and e.status is PaymentStatus.FAILED,
            timeout=self.timeout,
        )[0]
        self._step(
            "Payment failure recorded; invoice stays UNPAID", failed.error_description or "", since
        )

    def _await_messages(self, family: Family, outcome: str, since: float) -> None:
        sms = self.sim.wait_for_requests("twilio", 1, timeout=self.timeout, To=family.phone)[0]
        self._step("SMS delivered via Twilio", f"to {family.phone}: {sms['body']['Body']}", since)
        if outcome == "captured":
            email = self.sim.wait_for_requests(
                "sendgrid", 1, timeout=self.timeout, to=family.email
            )[0]
            self._step(
                "Email receipt delivered via SendGrid",
                f"to {family.email}: {email['body']['subject']}",
                since,
            )
