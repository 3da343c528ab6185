"""Razorpay as a gateway: the status query, refunds, and the webhook path (SDK as oracle)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import razorpay
from connector_support import command, make_tenants, tenant
from tenant_accounts import primary

from providers.base import Delivered, Rejected, RetryLater
from providers.payments import PaymentSnapshot
from providers.razorpay import (
    Razorpay,
    RazorpayAccount,
    RazorpayVerifier,
    normalize_razorpay,
    refund_key_for,
)
from providers.spec import Delivery
from schemas.events import (
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import Rejection, WebhookKey, accept

ADAPTER, VERIFIER = Razorpay(), RazorpayVerifier()
T1 = tenant(make_tenants())
BASE = "https://api.razorpay.com"
ACCOUNT = primary(T1, RazorpayAccount)
SECRET = ACCOUNT.webhook_secret.get_secret_value()


def status_request(order_id: str = "order_A1") -> httpx.Request:
    payload = FetchPaymentStatus(order_id=order_id)
    return ADAPTER.build_request(command("razorpay", payload), payload, T1, BASE)


def refund_request(key: str = "refund-key-0001", amount: int = 50_000) -> httpx.Request:
    payload = RefundPayment(
        payment_id="pay_P1", order_id="order_A1", amount_minor=amount, currency="INR", reason="dup"
    )
    return ADAPTER.build_request(command("razorpay", payload, key=key), payload, T1, BASE)


def answer(request: httpx.Request, status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, request=request)


def payment(pid: str, status: str, created: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "entity": "payment",
        "amount": 150_000,
        "currency": "INR",
        "status": status,
        "order_id": "order_A1",
        "method": "upi",
        "created_at": created,
        "error_code": None,
        "error_description": None,
        **extra,
    }


def collection(*items: dict[str, Any]) -> dict[str, Any]:
    return {"entity": "collection", "count": len(items), "items": list(items)}


# --- status ---------------------------------------------------------------------


def test_the_status_query_lists_the_orders_payments_with_basic_auth() -> None:
    request = status_request()
    assert request.method == "GET"
    assert str(request.url) == "https://api.razorpay.com/v1/orders/order_A1/payments"
    assert request.headers["authorization"].startswith("Basic ")


def test_a_captured_payment_wins_over_earlier_failures() -> None:
    failed = payment("pay_F1", "failed", 100, error_code="BAD_REQUEST_ERROR")
    captured = payment("pay_C1", "captured", 50)
    outcome = ADAPTER.classify(answer(status_request(), 200, collection(failed, captured)))
    assert outcome == Delivered(
        "pay_C1",
        200,
        PaymentSnapshot("CAPTURED", "order_A1", "pay_C1", 150_000, "INR", "upi").to_details(),
    )


def test_only_failures_report_the_latest_one_with_its_error() -> None:
    old = payment("pay_F1", "failed", 100, error_code="OLD", error_description="old")
    new = payment("pay_F2", "failed", 200, error_code="BAD_REQUEST_ERROR", error_description="no")
    outcome = ADAPTER.classify(answer(status_request(), 200, collection(old, new)))
    assert isinstance(outcome, Delivered)
    snap = PaymentSnapshot.from_details(outcome.details)
    assert snap == PaymentSnapshot(
        "FAILED", "order_A1", "pay_F2", 150_000, "INR", "upi", "BAD_REQUEST_ERROR", "no"
    )


@pytest.mark.parametrize(
    ("items", "status"),
    [([], "PENDING"), ([payment("pay_A1", "authorized", 1)], "AUTHORIZED")],
)
def test_unsettled_orders_are_pending_or_authorized(
    items: list[dict[str, Any]], status: str
) -> None:
    outcome = ADAPTER.classify(answer(status_request(), 200, collection(*items)))
    assert isinstance(outcome, Delivered)
    assert outcome.details["payment.status"] == status


def test_an_unknown_order_is_not_found() -> None:
    body = {"error": {"code": "BAD_REQUEST_ERROR", "description": "The id provided does not exist"}}
    outcome = ADAPTER.classify(answer(status_request("order_X"), 400, body))
    assert isinstance(outcome, Delivered)
    assert (outcome.details["payment.status"], outcome.details["payment.order_id"]) == (
        "NOT_FOUND",
        "order_X",
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, Rejected("Authentication failed", 401, "BAD_REQUEST_ERROR")),
        (503, RetryLater("Authentication failed", 503, "BAD_REQUEST_ERROR")),
    ],
)
def test_status_failures_are_classified(status: int, expected: object) -> None:
    body = {"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}}
    assert ADAPTER.classify(answer(status_request(), status, body)) == expected


# --- refund ---------------------------------------------------------------------


def test_the_refund_carries_amount_receipt_and_razorpays_idempotency_header() -> None:
    request = refund_request()
    assert request.method == "POST"
    assert str(request.url) == "https://api.razorpay.com/v1/payments/pay_P1/refund"
    assert request.headers["x-refund-idempotency"] == "refund-key-0001"
    assert json.loads(request.content) == {
        "amount": 50_000,
        "receipt": "refund-key-0001",
        "notes": {"order_id": "order_A1", "reason": "dup"},
    }


@pytest.mark.parametrize("key", ["short", "k" * 41, "has space in it", "ключ-ключ-ключ"])
def test_a_key_razorpay_would_refuse_is_hashed_to_a_stable_valid_one(key: str) -> None:
    derived = refund_key_for(key)
    assert derived == refund_key_for(key)
    assert derived.startswith("hub_")
    assert len(derived) == 40
    assert refund_request(key).headers["x-refund-idempotency"] == derived


def test_a_processed_refund_is_delivered_with_its_id_and_status() -> None:
    body = {"id": "rfnd_1", "entity": "refund", "amount": 50_000, "payment_id": "pay_P1"}
    outcome = ADAPTER.classify(answer(refund_request(), 200, {**body, "status": "processed"}))
    assert outcome == Delivered(
        "rfnd_1",
        200,
        {
            "refund_id": "rfnd_1",
            "refund_status": "processed",
            "payment_id": "pay_P1",
            "amount": "50000",
        },
    )


def test_refund_errors_are_rejected_and_a_concurrent_retry_waits() -> None:
    over = {"error": {"code": "BAD_REQUEST_ERROR", "description": "greater than captured"}}
    assert ADAPTER.classify(answer(refund_request(), 400, over)) == Rejected(
        "greater than captured", 400, "BAD_REQUEST_ERROR"
    )
    busy = {"error": {"code": "BAD_REQUEST_ERROR", "description": "in progress"}}
    assert ADAPTER.classify(answer(refund_request(), 409, busy)) == RetryLater(
        "in progress", 409, "BAD_REQUEST_ERROR"
    )


# --- webhooks: the SDK signs, the hub verifies ------------------------------------


def event(kind: str = "payment.captured", **entity: Any) -> bytes:
    pay = payment("pay_C1", kind.split(".")[1], 1_700_000_000, **entity)
    body = {"entity": "event", "event": kind, "payload": {"payment": {"entity": pay}}}
    return json.dumps(body, separators=(",", ":")).encode()


def test_the_verifier_agrees_with_razorpays_sdk() -> None:
    body = event()
    signature = VERIFIER.sign(body, SECRET)
    # The official SDK raises SignatureVerificationError when the signature is wrong.
    razorpay.Utility().verify_webhook_signature(body.decode(), signature, SECRET)
    assert VERIFIER.verify(body, {"x-razorpay-signature": signature}, SECRET)
    with pytest.raises(razorpay.errors.SignatureVerificationError):
        razorpay.Utility().verify_webhook_signature(body.decode() + " ", signature, SECRET)


@pytest.mark.parametrize(
    ("mutate", "secret"),
    [
        (lambda b: b[:-2] + b"x}", SECRET),  # one byte of the body
        (lambda b: b, "another-secret"),
    ],
)
def test_tampered_or_wrongly_keyed_webhooks_are_refused(mutate: Any, secret: str) -> None:
    body = event()
    headers = {"x-razorpay-signature": VERIFIER.sign(body, secret)}
    assert not VERIFIER.verify(mutate(body), headers, SECRET)


@pytest.mark.parametrize("signature", [None, "", "zz-not-hex", "0" * 64])
def test_missing_or_garbled_signatures_are_refused(signature: str | None) -> None:
    headers = {} if signature is None else {"x-razorpay-signature": signature}
    assert not VERIFIER.verify(event(), headers, SECRET)


def delivery(body: bytes, signature: str | None) -> Delivery:
    headers = {"content-type": "application/json", "x-razorpay-event-id": "evt_1"}
    if signature is not None:
        headers["x-razorpay-signature"] = signature
    return Delivery("POST", "http://ingress.test/webhooks/razorpay/t1", {}, headers, body, None)


def test_the_ingress_accepts_a_signed_delivery_and_refuses_others_with_401() -> None:
    key = [WebhookKey("razorpay-primary", SECRET)]
    body = event()
    raw = accept("razorpay", "t1", key, delivery(body, VERIFIER.sign(body, SECRET)))
    assert isinstance(raw, RawWebhook)
    # No created_at in this body, so no id derives from it: its hash, never the unsigned
    # X-Razorpay-Event-Id header (tests/unit/test_ingress_signed_ids.py).
    assert (raw.provider_event_id, raw.provider_event_type) == (
        hashlib.sha256(body).hexdigest(),
        "payment.captured",
    )
    for signature in (None, VERIFIER.sign(body, "wrong")):
        refused = accept("razorpay", "t1", key, delivery(body, signature))
        assert isinstance(refused, Rejection)
        assert refused.status == 401


def raw(body: bytes) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new(RawWebhook.EVENT_TYPE, "t1", source="test"),
        provider="razorpay",
        provider_event_id="evt_1",
        provider_event_type="payment.failed",
        content_type="application/json",
        body=body,
        http_headers={},
        received_at=datetime.now(UTC),
    )


def test_a_failed_payment_normalizes_with_the_same_ids_the_status_query_reports() -> None:
    body = event("payment.failed", error_code="BAD_REQUEST_ERROR", error_description="declined")
    found = normalize_razorpay(raw(body), json.loads(body))
    assert found is not None
    assert (found.kind, found.payment_id, found.order_id) == (
        PaymentEventKind.FAILED,
        "pay_C1",
        "order_A1",
    )
    assert (found.error_code, found.error_description) == ("BAD_REQUEST_ERROR", "declined")
