from datetime import date

import pytest

from schemas.codec import SingleObjectCodec
from schemas.events import (
    EVENT_MODELS,
    Alert,
    AuditDirection,
    AuditOutcome,
    BulkRecipient,
    BulkReport,
    BulkSendRequest,
    CatalogAccount,
    CdcSource,
    ChangeOp,
    Channel,
    ConnectorCommand,
    ConnectorResult,
    Contact,
    CreatePaymentOrder,
    DeadLetter,
    DeadLetterState,
    DeadLetterStatus,
    DeliveryReceipt,
    DlqAction,
    DlqActionPhase,
    DlqAudit,
    EntityChange,
    EntityState,
    EventHeader,
    FieldChange,
    Invoice,
    InvoiceStatus,
    InvoiceStatusChanged,
    KafkaHeader,
    MessageEvent,
    MessageStep,
    NotificationRequest,
    OrderStatus,
    PaymentEvent,
    PaymentEventKind,
    PaymentMatched,
    PaymentOrderResult,
    PaymentRecorded,
    PaymentRequested,
    PaymentStatus,
    ProviderCallAudit,
    ProviderTally,
    RawWebhook,
    ReceiptStatus,
    ResultStatus,
    SealedSecrets,
    SendEmail,
    SendSms,
    SendWhatsApp,
    Severity,
    TenantCatalogEntry,
    UnexpectedEventError,
    decode_as,
    decode_event,
    encode_event,
    utcnow,
)
from schemas.store import default_store


def header(event_type: str = "t") -> EventHeader:
    return EventHeader.new(event_type, "greenwood", source="test")


PARENT = Contact(name="Mrs. Sharma", phone="+919876543210", email="s@example.com")
PAYMENT = PaymentEvent(
    header=header(),
    provider="razorpay",
    provider_event_id="evt_1",
    kind=PaymentEventKind.CAPTURED,
    payment_id="pay_1",
    order_id="order_1",
    amount_minor=100,
    currency="INR",
    method="upi",
    provider_created_at=utcnow(),
)

EXAMPLES = [
    RawWebhook(
        header=header(),
        provider="razorpay",
        provider_event_id="evt_1",
        provider_event_type="payment.captured",
        content_type="application/json",
        http_headers={"x-razorpay-event-id": "evt_1"},
        body=b'{"a": 1}',
        received_at=utcnow(),
    ),
    PAYMENT,
    PaymentMatched(header=header(), invoice_id="INV-1", request_id="r1", payment=PAYMENT),
    Invoice(
        header=header(),
        invoice_id="INV-1",
        student_id="S",
        student_name="R",
        description="d",
        amount_minor=1,
        due_date=date(2026, 12, 1),
        parent=PARENT,
    ),
    PaymentRequested(
        header=header(),
        invoice_id="INV-1",
        student_id="S",
        student_name="R",
        description="d",
        amount_minor=1,
        parent=PARENT,
    ),
    PaymentOrderResult(
        header=header(),
        request_id="r",
        invoice_id="I",
        gateway="razorpay",
        status=OrderStatus.CREATED,
        order_id="order_1",
        payment_url="https://x",
    ),
    InvoiceStatusChanged(
        header=header(),
        invoice_id="I",
        status=InvoiceStatus.PAID,
        previous_status=InvoiceStatus.UNPAID,
        paid_amount_minor=1,
        currency="INR",
    ),
    PaymentRecorded(
        header=header(),
        invoice_id="I",
        order_id="o",
        payment_id="p",
        gateway="razorpay",
        status=PaymentStatus.FAILED,
        amount_minor=1,
        currency="INR",
        error_code="E",
    ),
    NotificationRequest(
        header=header(),
        idempotency_key="k",
        channel=Channel.EMAIL,
        to="a@b.c",
        subject="s",
        text="t",
        html="<p>t</p>",
    ),
    ConnectorCommand(
        header=header(),
        idempotency_key="k",
        provider="razorpay",
        payload=CreatePaymentOrder(
            amount_minor=100, currency="INR", receipt="r", notes={"invoice_id": "I"}
        ),
        context={"a": "b"},
    ),
    ConnectorCommand(
        header=header(),
        idempotency_key="k",
        provider="twilio",
        payload=SendSms(to="+91", text="hi"),
    ),
    ConnectorCommand(
        header=header(),
        idempotency_key="k",
        provider="sendgrid",
        payload=SendEmail(to="a@b.c", subject="s", text="t"),
    ),
    ConnectorResult(
        header=header(),
        command_id="c",
        idempotency_key="k",
        provider="twilio",
        operation="sms.send",
        status=ResultStatus.DELIVERED,
        attempts=1,
        provider_ref="SM1",
        details={"x": "y"},
    ),
    DeadLetter(
        header=header(),
        stage="router",
        worker="w",
        original_topic="t",
        original_partition=0,
        original_offset=5,
        original_key=b"k",
        original_value=b"\x00",
        original_headers=[KafkaHeader(key="h", value=b"v")],
        error_class="E",
        error_message="m",
        retryable=False,
        first_failure_at=utcnow(),
        last_failure_at=utcnow(),
    ),
]


EXAMPLES += [
    DeadLetterState(
        header=header(),
        dead_letter_id="router:0:5",
        status=DeadLetterStatus.REPLAYED,
        action_id="a1",
        target_topic="t",
        actor="ops@host",
    ),
    DlqAudit(
        header=header(),
        action_id="a1",
        action=DlqAction.REPLAY,
        phase=DlqActionPhase.COMPLETED,
        actor="ops@host",
        filter='{"stage": "router"}',
        target="original",
        selected=3,
        done=2,
        skipped=1,
    ),
    Alert(
        header=header(),
        rule="dlq.growth",
        severity=Severity.WARNING,
        subject="dlq.router.v1",
        observed=12,
        threshold=10,
        window_seconds=300,
        message="12 new dead letters in 5 min",
    ),
]


_SOURCE = CdcSource(
    db="school_erp",
    schema="public",
    table="students",
    lsn=26409816,
    tx_id=729,
    committed_at=utcnow(),
)
EXAMPLES += [
    EntityState(
        header=header(),
        entity="students",
        entity_id="12345",
        attributes={
            "phone": "+919999999999",
            "grade": 10,
            "fee": 1.5,
            "active": True,
            "notes": None,
        },
        source=_SOURCE,
    ),
    EntityChange(
        header=header(),
        entity="students",
        entity_id="12345",
        op=ChangeOp.UPDATE,
        changes=[FieldChange(field="phone", old="+919876543210", new="+919999999999")],
        source=_SOURCE,
    ),
]

EXAMPLES += [
    TenantCatalogEntry(
        header=header(TenantCatalogEntry.EVENT_TYPE),
        tenant_id="greenwood",
        name="Greenwood High School",
        version=7,
        accounts=[
            CatalogAccount(
                label="twilio-primary",
                provider="twilio",
                priority=0,
                settings={"account_sid": "AC1", "from_number": "+15005550006"},
                sealed=SealedSecrets(key_id="mk-1", wrapped_key=b"\x01w", ciphertext=b"\x02c"),
            ),
            CatalogAccount(label="sms-backup", provider="smsgateway", enabled=False),
        ],
        routing={"sms": ["twilio-primary", "sms-backup"]},
    ),
]

EXAMPLES += [
    ProviderCallAudit(
        header=header(ProviderCallAudit.EVENT_TYPE),
        provider="twilio",
        account="twilio-primary",
        operation="sms.send",
        direction=AuditDirection.OUTBOUND,
        method="POST",
        url="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
        http_status=503,
        duration_ms=41.5,
        attempt=2,
        outcome=AuditOutcome.RETRY,
        error="Service Unavailable",
        idempotency_key="k",
        request_headers={"authorization": "***"},
        request_body="To=%2B919876543210&Body=hi",
        response_body='{"code": 20503}',
        at=utcnow(),
    ),
]


EXAMPLES += [
    DeliveryReceipt(
        header=header(DeliveryReceipt.EVENT_TYPE),
        provider="twilio",
        provider_event_id="SM1:undelivered",
        provider_ref="SM1",
        status=ReceiptStatus.UNDELIVERED,
        provider_status="undelivered",
        recipient="+919876543210",
        error_code="30003",
        error_description="Unreachable destination handset",
        occurred_at=utcnow(),
        idempotency_key="fee-paid:INV-1#1",
    ),
    MessageEvent(
        header=header(MessageEvent.EVENT_TYPE),
        message_id="n1",
        step=MessageStep.FAILING_OVER,
        channel=Channel.SMS,
        to="+919876543210",
        provider="twilio",
        account="twilio-primary",
        provider_ref="SM1",
        attempt=1,
        detail="receipt says undelivered (undelivered 30003)",
        cost_minor=20,
        bulk_id="bulk_1",
    ),
    BulkSendRequest(
        header=header(BulkSendRequest.EVENT_TYPE),
        bulk_id="bulk_1",
        channel=Channel.SMS,
        template="attendance_alert",
        locale="hi",
        part=2,
        parts=5,
        first_index=100,
        total_recipients=500,
        recipients=[
            BulkRecipient(
                to="+919876543210",
                to_name="Priya Sharma",
                variables={"student_name": "Aarav"},
                reference="STU-0042",
            )
        ],
    ),
    BulkReport(
        header=header(BulkReport.EVENT_TYPE),
        bulk_id="bulk_1",
        channel=Channel.WHATSAPP,
        template="attendance_alert",
        total=500,
        accepted=500,
        released=500,
        sent=0,
        delivered=496,
        failed=4,
        pending=0,
        retried_on_alternate=4,
        by_provider=[
            ProviderTally(provider="twilio", sent=500, delivered=496, failed=4, cost_minor=10000)
        ],
        failures=["+919800000007 (STU-0007): undelivered 30003 [tried twilio → msg91]"],
        complete=True,
    ),
    ConnectorCommand(
        header=header(),
        idempotency_key="k#2",
        provider="whatsapp",
        payload=SendWhatsApp(
            to="+919876543210",
            template="attendance_alert",
            language="en",
            parameters=["Aarav", "2026-12-02"],
            callback_data="k",
            text="Aarav was absent today",
        ),
    ),
]


def test_every_event_schema_has_a_model_and_an_example():
    schemas = {e.name for e in default_store().events()}
    assert schemas == set(EVENT_MODELS)
    assert schemas == {type(e).SCHEMA for e in EXAMPLES}


@pytest.mark.parametrize(
    "event",
    EXAMPLES,
    ids=lambda e: type(e).__name__ + ":" + getattr(getattr(e, "payload", None), "OPERATION", ""),
)
def test_every_model_round_trips_through_its_schema(event):
    codec = SingleObjectCodec()
    assert decode_event(codec, encode_event(codec, event)) == event


def test_sms_and_email_payloads_keep_their_union_branch():
    # SendSms's fields are a subset of SendEmail's: without an explicit branch
    # the writer could pick the wrong one.
    codec = SingleObjectCodec()
    sms = next(
        e for e in EXAMPLES if isinstance(e, ConnectorCommand) and isinstance(e.payload, SendSms)
    )
    decoded = decode_as(codec, encode_event(codec, sms), ConnectorCommand)
    assert isinstance(decoded.payload, SendSms)
    assert decoded.operation == "sms.send"


def test_decode_as_rejects_the_wrong_event_type():
    codec = SingleObjectCodec()
    with pytest.raises(UnexpectedEventError):
        decode_as(codec, encode_event(codec, PAYMENT), Invoice)


def test_caused_header_keeps_tenant_and_flow():
    cause = header("a")
    effect = cause.caused("b", source="x")
    assert (effect.tenant, effect.correlation_id, effect.causation_id) == (
        cause.tenant,
        cause.correlation_id,
        cause.event_id,
    )
    assert effect.event_id != cause.event_id


def test_keys_are_per_tenant_entity():
    assert PAYMENT.key() == "greenwood:order_1"
    assert EXAMPLES[0].key() == "razorpay:greenwood:evt_1"


def test_a_payment_request_for_an_invoice_carries_its_details_and_is_caused_by_it() -> None:
    invoice = Invoice(
        header=EventHeader.new(Invoice.EVENT_TYPE, "greenwood", source="fee-module"),
        invoice_id="INV-1",
        student_id="S-1",
        student_name="Rohan Sharma",
        description="Term 1 fees",
        amount_minor=50_000_00,
        currency="INR",
        parent=Contact(name="Mrs. Sharma", phone="+919876543210"),
    )
    request = PaymentRequested.for_invoice(invoice, source="fee-module", request_id="req-9")
    assert (request.invoice_id, request.student_id, request.amount_minor) == (
        "INV-1",
        "S-1",
        5000000,
    )
    assert request.parent == invoice.parent and request.request_id == "req-9"
    assert request.header.causation_id == invoice.header.event_id
    assert request.header.correlation_id == invoice.header.correlation_id
    assert request.header.event_type == "fees.payment.requested"
    assert request.key() == invoice.key()
