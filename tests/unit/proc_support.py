"""Builders for the processor unit tests: tenants, fee-module events, Razorpay webhooks.

Everything here mirrors what the real producers send: the fee module's Invoice
and PaymentRequested, the connector's ConnectorResult (caused by the command it
answers), and Razorpay's webhook body wrapped by the ingress in a RawWebhook.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from typing import Any

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.tenants import TenantDirectory
from processors.fees import FeeContext
from schemas.events import (
    ConnectorCommand,
    ConnectorResult,
    Contact,
    EventHeader,
    Invoice,
    PaymentEvent,
    PaymentEventKind,
    PaymentMatched,
    PaymentRequested,
    RawWebhook,
    ResultStatus,
    utcnow,
)

TENANT = "greenwood"
SCHOOL = "Greenwood High School"
# A school with a payment gateway and email, but no SMS provider.
NO_SMS_TENANT = "northfield"
# A school with notifications only: no payment gateway.
NO_GATEWAY_TENANT = "lakeside"

PAYMENT_URL_TEMPLATE = (
    "https://checkout.school.example/{tenant}/pay/{order_id}?invoice={invoice_id}"
)
RECEIPT_URL_TEMPLATE = "https://erp.school.example/{tenant}/receipts/{receipt_no}"

INVOICE_ID = "INV-2026-000123"
STUDENT_ID = "STU-0042"
STUDENT_NAME = "Aarav Sharma"
DESCRIPTION = "Term 2 tuition fee"
AMOUNT = 50_000_00  # ₹50,000 in paise
PHONE = "+919876543210"
EMAIL = "priya.sharma@example.com"
PARENT = Contact(name="Priya Sharma", phone=PHONE, email=EMAIL)

ORDER_ID = "order_Q1w2E3r4T5y6U7"
PAYMENT_ID = "pay_A1b2C3d4E5f6G7"
CREATED_AT = 1767225600  # 2026-01-01T00:00:00Z

_RAZORPAY = {"key_id": "rzp_test_abc123", "key_secret": "s3cret", "webhook_secret": "wh00k"}
_TWILIO = {"account_sid": "AC" + "0" * 32, "auth_token": "t0ken", "from_number": "+15005550006"}
_SENDGRID = {"api_key": "SG.x.y", "from_email": "fees@school.example", "from_name": "Fees"}


def tenants() -> TenantDirectory:
    """greenwood (demo: all three providers), northfield (no twilio), lakeside (no razorpay)."""
    table = tomllib.loads(demo_tenant_config(TENANT, SCHOOL))["tenants"]
    table[NO_SMS_TENANT] = {
        "name": "Northfield School",
        "razorpay": _RAZORPAY,
        "sendgrid": _SENDGRID,
    }
    table[NO_GATEWAY_TENANT] = {"name": "Lakeside School", "twilio": _TWILIO, "sendgrid": _SENDGRID}
    return parse_tenants({"tenants": table})


def fee_context(directory: TenantDirectory | None = None) -> FeeContext:
    return FeeContext(directory or tenants(), PAYMENT_URL_TEMPLATE, RECEIPT_URL_TEMPLATE)


def header(
    event_type: str,
    tenant: str = TENANT,
    *,
    source: str = "fee-module",
    correlation_id: str | None = None,
) -> EventHeader:
    return EventHeader.new(event_type, tenant, source=source, correlation_id=correlation_id)


def invoice(
    *,
    tenant: str = TENANT,
    invoice_id: str = INVOICE_ID,
    amount_minor: int = AMOUNT,
    parent: Contact = PARENT,
    correlation_id: str | None = None,
) -> Invoice:
    return Invoice(
        header=header(Invoice.EVENT_TYPE, tenant, correlation_id=correlation_id),
        invoice_id=invoice_id,
        student_id=STUDENT_ID,
        student_name=STUDENT_NAME,
        description=DESCRIPTION,
        amount_minor=amount_minor,
        parent=parent,
    )


def payment_requested(
    inv: Invoice, *, request_id: str = "9f1c2b7e4d5a4e0f8a6b3c2d1e0f9a8b", gateway: str = "razorpay"
) -> PaymentRequested:
    """The fee module's request to collect `inv`, in the invoice's flow."""
    return PaymentRequested(
        header=inv.header.caused(PaymentRequested.EVENT_TYPE, source="fee-module"),
        request_id=request_id,
        invoice_id=inv.invoice_id,
        student_id=inv.student_id,
        student_name=inv.student_name,
        description=inv.description,
        amount_minor=inv.amount_minor,
        currency=inv.currency,
        gateway=gateway,
        parent=inv.parent,
    )


def connector_result(
    command: ConnectorCommand,
    *,
    status: ResultStatus = ResultStatus.DELIVERED,
    provider_ref: str | None = ORDER_ID,
    error_code: str | None = None,
    error_message: str | None = None,
    http_status: int | None = 200,
    operation: str | None = None,
) -> ConnectorResult:
    """What the connector answers to `command` (see connectors.executor.result_for)."""
    return ConnectorResult(
        header=command.header.caused(ConnectorResult.EVENT_TYPE, source="connector-razorpay"),
        command_id=command.command_id,
        idempotency_key=command.idempotency_key,
        provider=command.provider,
        operation=operation or command.operation,
        status=status,
        provider_ref=provider_ref if status is ResultStatus.DELIVERED else None,
        http_status=http_status,
        error_code=error_code,
        error_message=error_message,
        attempts=1,
        context=dict(command.context),
    )


def payment_entity(
    *,
    payment_id: str = PAYMENT_ID,
    order_id: str = ORDER_ID,
    amount: Any = AMOUNT,
    status: str = "captured",
    method: str = "upi",
    error_code: str | None = None,
    error_description: str | None = None,
    created_at: Any = CREATED_AT,
) -> dict[str, Any]:
    """A Razorpay payment entity, with the fields Razorpay sends."""
    captured = status == "captured"
    return {
        "id": payment_id,
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": status,
        "order_id": order_id,
        "invoice_id": None,
        "international": False,
        "method": method,
        "amount_refunded": 0,
        "refund_status": None,
        "captured": captured,
        "description": "rcpt_9f1c2b7e4d5a4e0f8a6b3c2d1e0f9a8b",
        "card_id": None,
        "bank": None,
        "wallet": None,
        "vpa": "success@razorpay" if captured else "failure@razorpay",
        "email": EMAIL,
        "contact": PHONE,
        "notes": {"invoice_id": INVOICE_ID},
        "fee": 118000 if captured else None,
        "tax": 18000 if captured else None,
        "error_code": error_code,
        "error_description": error_description,
        "error_source": "customer" if error_code else None,
        "error_step": "payment_authorization" if error_code else None,
        "error_reason": "insufficient_funds" if error_code else None,
        "acquirer_data": {"rrn": "123456789012"} if captured else {},
        "created_at": created_at,
    }


def webhook_body(event: str = "payment.captured", **entity: Any) -> dict[str, Any]:
    status = event.split(".", 1)[1] if event.startswith("payment.") else "captured"
    return {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": event,
        "contains": ["payment"],
        "payload": {"payment": {"entity": payment_entity(status=status, **entity)}},
        "created_at": CREATED_AT + 5,
    }


def raw_webhook(
    body: dict[str, Any] | bytes,
    *,
    tenant: str = TENANT,
    provider: str = "razorpay",
    event_id: str = "evt_R4z0rPaY0001",
) -> RawWebhook:
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    event_type = body.get("event") if isinstance(body, dict) else None
    return RawWebhook(
        header=EventHeader.new(RawWebhook.EVENT_TYPE, tenant, source="ingress"),
        provider=provider,
        provider_event_id=event_id,
        provider_event_type=event_type if isinstance(event_type, str) else None,
        content_type="application/json",
        http_headers={"x-razorpay-event-id": event_id, "user-agent": "Razorpay-Webhook/v1"},
        body=data,
        received_at=utcnow(),
    )


def payment_event(
    kind: PaymentEventKind = PaymentEventKind.CAPTURED,
    *,
    tenant: str = TENANT,
    payment_id: str = PAYMENT_ID,
    order_id: str = ORDER_ID,
    amount_minor: int = AMOUNT,
    error_code: str | None = None,
    error_description: str | None = None,
) -> PaymentEvent:
    return PaymentEvent(
        header=EventHeader.new(f"payments.payment.{kind.lower()}", tenant, source="normalizer"),
        provider="razorpay",
        provider_event_id="evt_" + payment_id,
        kind=kind,
        payment_id=payment_id,
        order_id=order_id,
        amount_minor=amount_minor,
        currency="INR",
        method="upi",
        error_code=error_code,
        error_description=error_description,
        provider_created_at=datetime.fromtimestamp(CREATED_AT, UTC),
    )


def payment_matched(
    payment: PaymentEvent,
    *,
    invoice_id: str = INVOICE_ID,
    request_id: str = "9f1c2b7e4d5a4e0f8a6b3c2d1e0f9a8b",
    correlation_id: str | None = None,
) -> PaymentMatched:
    return PaymentMatched(
        header=EventHeader.new(
            PaymentMatched.EVENT_TYPE,
            payment.header.tenant,
            source="reconciler",
            correlation_id=correlation_id,
            causation_id=payment.header.event_id,
        ),
        invoice_id=invoice_id,
        request_id=request_id,
        payment=payment,
    )
