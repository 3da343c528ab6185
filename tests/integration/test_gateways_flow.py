"""Every gateway through the running hub: order, payment, callback, one PAID (issue 9).

Seed 004's dual gateway (Cashfree answering 503: the order goes to Razorpay),
missed webhooks found by polling the gateway, and the same fee story through
each gateway's simulator, with its callback delivered twice.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from support import DUAL_TENANT, TENANT, open_invoice, watch_all

from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import INVOICE_STATUS, dlq_topic
from processors.fees import receipt_for_gateway
from producers import EventProducer
from providers.cashfree import order_id_for
from schemas.events import (
    Contact,
    DeadLetter,
    EventHeader,
    Invoice,
    InvoiceStatus,
    InvoiceStatusChanged,
    OrderStatus,
    PaymentOrderResult,
    PaymentRecorded,
    PaymentStatus,
)
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

# Gateways whose simulators take a payment the generic way (simulators/payments.py).
GATEWAYS = ("razorpay", "cashfree", "stripe", "paypal", "paytm", "mpesa", "flutterwave", "pesapal")
KES_GATEWAYS = {"mpesa": "KES", "flutterwave": "KES", "pesapal": "KES"}


def test_cashfree_answering_503_sends_the_order_to_razorpay_and_charges_once(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    # More 503s than the connector's in-process tries: Cashfree is down.
    sim.add_fault("cashfree", status=503, times=hub_settings.failover_attempts, tenant=DUAL_TENANT)
    try:
        with watch_all(hub_settings) as watch:
            opened = open_invoice(hub_settings, watch, tenant=DUAL_TENANT)
            assert (opened.order.gateway, opened.order.account) == ("razorpay", "razorpay-primary")
            failing = watch.find(
                PaymentOrderResult,
                lambda r: (
                    r.request_id == opened.order.request_id and r.status is OrderStatus.FAILING_OVER
                ),
            )
            assert [(r.gateway, r.error_code) for r in failing] == [("cashfree", "internal_error")]

            sent = sim.pay("razorpay", opened.order_id)
            assert sent["callback"]["status"] == 200
            paid = watch.wait_for(
                InvoiceStatusChanged,
                lambda e: e.invoice_id == opened.invoice.invoice_id,
                timeout=15,
            )[0]
            assert (paid.status, paid.gateway) == (InvoiceStatus.PAID, "razorpay")
    finally:
        sim.clear_faults()
    # Cashfree never created an order for it: nobody can pay there a second time.
    cashfree_order = order_id_for(receipt_for_gateway(opened.order.request_id))
    with pytest.raises(httpx.HTTPStatusError) as missing:
        sim.gateway_order("cashfree", cashfree_order)
    assert missing.value.response.status_code == 404


def test_a_payment_whose_webhook_never_came_is_found_by_asking_the_gateway(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    with watch_all(hub_settings) as watch:
        opened = open_invoice(hub_settings, watch, gateway="razorpay")
        made = sim.pay("razorpay", opened.order_id, send_callback=False)
        assert "callback" not in made or made["callback"] is None

        # The reconciler polls after HUB_PAYMENT_STATUS_POLL_SECONDS (30 s in the tests).
        paid = watch.wait_for(
            InvoiceStatusChanged,
            lambda e: e.invoice_id == opened.invoice.invoice_id,
            timeout=hub_settings.payment_status_poll_seconds + 30,
        )[0]
        assert paid.status is InvoiceStatus.PAID
        assert paid.payment_id == made["payment_id"]
        polled = sim.requests("razorpay", method="GET", path=f"/orders/{opened.order_id}/payments")
        assert len(polled) >= 1
        watch.settle(2.0)
        recorded = watch.find(PaymentRecorded, lambda e: e.invoice_id == opened.invoice.invoice_id)
        assert [r.status for r in recorded] == [PaymentStatus.SUCCESS]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_the_fee_story_through_each_gateway_gives_one_paid_for_a_callback_sent_twice(
    hub_settings: Settings, sim: SimulatorClient, gateway: str
) -> None:
    with watch_all(hub_settings) as watch:
        currency = KES_GATEWAYS.get(gateway, "INR")
        # M-Pesa pushes to a Safaricom number; the rest take any parent's phone.
        phone = f"+2547{secrets.randbelow(10**8):08d}" if gateway == "mpesa" else None
        opened = open_invoice(
            hub_settings,
            watch,
            gateway=gateway,
            amount_minor=5_000_00,
            currency=currency,
            phone=phone,
        )
        assert opened.order.gateway == gateway
        assert opened.order.payment_url

        sent = sim.pay(gateway, opened.order_id)
        assert sent["callback"]["status"] == 200, sent
        # The gateway delivers the same callback again (its retry): nothing changes twice.
        assert sim.resend_callback(sent["callback"]["id"])["status"] == 200

        paid = watch.wait_for(
            InvoiceStatusChanged, lambda e: e.invoice_id == opened.invoice.invoice_id, timeout=30
        )[0]
        assert (paid.status, paid.gateway, paid.paid_amount_minor) == (
            InvoiceStatus.PAID,
            gateway,
            5_000_00,
        )
        sms = sim.wait_for_requests("twilio", 1, timeout=15, To=opened.phone)
        assert "Payment successful" in sms[0]["body"]["Body"]
        watch.settle(2.0)
        changes = watch.find(InvoiceStatusChanged, lambda e: e.invoice_id == paid.invoice_id)
        assert len(changes) == 1
        assert len(sim.requests("twilio", To=opened.phone)) == 1


def kenyan_phone() -> str:
    return f"+2547{secrets.randbelow(10**8):08d}"


@pytest.mark.parametrize(
    ("outcome", "code"), [("cancelled", "1032"), ("timeout", "1037")], ids=["cancelled", "timeout"]
)
def test_an_stk_push_the_parent_cancels_or_lets_time_out_leaves_a_retry_prompt(
    hub_settings: Settings, sim: SimulatorClient, outcome: str, code: str
) -> None:
    with watch_all(hub_settings) as watch:
        opened = open_invoice(
            hub_settings, watch, gateway="mpesa", currency="KES", phone=kenyan_phone()
        )
        sent = sim.pay("mpesa", opened.order_id, outcome)
        assert sent["callback"]["status"] == 200
        failed = watch.wait_for(
            PaymentRecorded, lambda e: e.invoice_id == opened.invoice.invoice_id, timeout=20
        )[0]
        assert (failed.status, failed.error_code) == (PaymentStatus.FAILED, code)
        sms = sim.wait_for_requests("twilio", 1, timeout=15, To=opened.phone)[0]
        assert sms["body"]["Body"].startswith("Payment failed:")
        assert opened.order.payment_url and opened.order.payment_url in sms["body"]["Body"]
        watch.settle(1.0)
        assert watch.find(InvoiceStatusChanged, lambda e: e.invoice_id == failed.invoice_id) == []


def issue_invoice(settings: Settings, amount_minor: int) -> Invoice:
    tag = secrets.token_hex(4).upper()
    invoice = Invoice(
        header=EventHeader.new(Invoice.EVENT_TYPE, TENANT, source="fee-module-test"),
        invoice_id=f"INV-{tag}",
        student_id=f"ADM{tag}",
        student_name="Achieng Otieno",
        description="Term 1 fees",
        amount_minor=amount_minor,
        currency="KES",
        parent=Contact(name="Mr. Otieno", phone=kenyan_phone(), email=None),
    )
    with EventProducer(settings, client_id="fee-module-test") as producer:
        producer.publish(invoice)
    return invoice


def paybill(settings: Settings, invoice: Invoice, amount_minor: int) -> dict[str, object]:
    answer = httpx.post(
        f"{settings.simulator_url}/mpesa/_phone/paybill",
        json={"tenant": TENANT, "bill_ref": invoice.student_id, "amount_minor": amount_minor},
        timeout=30,
    )
    answer.raise_for_status()
    found: dict[str, object] = answer.json()
    return found


def test_a_paybill_payment_naming_the_admission_number_pays_the_students_invoice_in_parts(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    with watch_all(hub_settings) as watch:
        invoice = issue_invoice(hub_settings, 3_000_00)
        first = paybill(hub_settings, invoice, 1_000_00)
        part = watch.wait_for(
            InvoiceStatusChanged, lambda e: e.invoice_id == invoice.invoice_id, timeout=20
        )[0]
        assert (part.status, part.paid_amount_minor, part.gateway) == (
            InvoiceStatus.PARTIALLY_PAID,
            1_000_00,
            "mpesa",
        )
        assert part.payment_id == first["payment_id"]
        assert invoice.parent.phone
        sms = sim.wait_for_requests("twilio", 1, timeout=15, To=invoice.parent.phone)[0]
        assert "Payment successful" not in sms["body"]["Body"]
        assert "KES 2,000.00 still due" in sms["body"]["Body"]

        paybill(hub_settings, invoice, 2_000_00)
        paid = watch.wait_for(
            InvoiceStatusChanged,
            lambda e: e.invoice_id == invoice.invoice_id and e.status is InvoiceStatus.PAID,
            timeout=20,
        )[0]
        assert paid.paid_amount_minor == 3_000_00


def test_a_payment_for_more_than_is_due_is_a_dead_letter_never_a_paid_invoice(
    hub_settings: Settings,
) -> None:
    with TopicWatcher(hub_settings, [dlq_topic("reconciler"), INVOICE_STATUS]) as watch:
        invoice = issue_invoice(hub_settings, 1_000_00)
        paybill(hub_settings, invoice, 5_000_00)
        letter = watch.wait_for(
            DeadLetter, lambda d: invoice.invoice_id in d.error_message, timeout=20
        )[0]
        assert letter.error_class.endswith("PaymentMismatchError")
        assert "asked for KES 1,000.00" in letter.error_message
        watch.settle(1.0)
        assert watch.find(InvoiceStatusChanged, lambda e: e.invoice_id == invoice.invoice_id) == []
