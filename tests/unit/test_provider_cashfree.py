"""Cashfree: the create-order request, its classification, the webhook verifier, the normalizer."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from connector_support import command, make_tenants, order, tenant
from tenant_accounts import primary

from providers.base import Delivered, Rejected, RetryLater
from providers.cashfree import (
    Cashfree,
    CashfreeAccount,
    CashfreeVerifier,
    normalize_cashfree,
    order_id_for,
)
from providers.payments import PaymentSnapshot
from providers.spec import NormalizationError
from schemas.events import (
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)

ADAPTER, VERIFIER = Cashfree(), CashfreeVerifier()
T1 = tenant(make_tenants())
BASE = "https://api.cashfree.com/pg"


def sent(request: httpx.Request) -> httpx.Response:
    """The request as it leaves through a MockTransport (the far side of Cashfree's API)."""
    seen: list[httpx.Request] = []

    def handler(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        return httpx.Response(200, json={"order_id": "x"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        response = client.send(request)
    assert len(seen) == 1
    return response


def test_the_create_order_request_is_cashfrees_shape() -> None:
    payload = order(notes={"invoice_id": "inv-1", "customer_phone": "9876543210"})
    request = ADAPTER.build_request(command("cashfree", payload, key="key-42"), payload, T1, BASE)
    sent(request)
    account = primary(T1, CashfreeAccount)
    assert request.method == "POST"
    assert str(request.url) == "https://api.cashfree.com/pg/orders"
    assert request.headers["x-client-id"] == account.client_id
    assert request.headers["x-client-secret"] == account.client_secret.get_secret_value()
    assert request.headers["x-api-version"] == "2023-08-01"
    assert request.headers["x-idempotency-key"] == "key-42"
    body = json.loads(request.content, parse_float=Decimal)
    assert body["order_amount"] == Decimal("1500.0")
    assert body["order_id"] == "rcpt-1"
    assert body["order_currency"] == "INR"
    assert body["customer_details"]["customer_phone"] == "9876543210"
    assert body["customer_details"]["customer_id"].startswith("hub_")
    assert body["order_tags"] == {"invoice_id": "inv-1", "customer_phone": "9876543210"}


def test_paise_become_rupees_with_two_places_exactly() -> None:
    payload = order().model_copy(update={"amount_minor": 123_456_789_01})
    request = ADAPTER.build_request(command("cashfree", payload), payload, T1, BASE + "/")
    assert str(request.url) == "https://api.cashfree.com/pg/orders"
    assert b'"order_amount":123456789.01' in request.content.replace(b" ", b"")


def test_the_customer_comes_from_the_notes_when_given() -> None:
    notes = {"customer_id": "STU-001", "customer_email": "p@example.com"}
    payload = order(notes=notes)
    request = ADAPTER.build_request(command("cashfree", payload), payload, T1, BASE)
    assert json.loads(request.content)["customer_details"] == {
        "customer_id": "STU-001",
        "customer_phone": "9999999999",
        "customer_email": "p@example.com",
    }


def test_a_receipt_that_is_no_valid_order_id_is_hashed_deterministically() -> None:
    assert order_id_for("INV/2024/007") == order_id_for("INV/2024/007")
    assert order_id_for("INV/2024/007").startswith("hub_")
    assert len(order_id_for("x" * 60)) == 44
    assert order_id_for("fee-2024_07") == "fee-2024_07"


def test_the_probe_fetches_an_order_and_a_404_counts_as_accepted_credentials() -> None:
    request = ADAPTER.probe_request(T1, None, BASE)
    assert request.method == "GET"
    assert str(request.url) == "https://api.cashfree.com/pg/orders/hub_probe_order"
    assert request.headers["x-api-version"] == "2023-08-01"
    assert ADAPTER.probe_ok_statuses == frozenset({200, 404})


def response(status: int, body: Any, url: str = BASE + "/orders", **headers: str) -> httpx.Response:
    """Cashfree's answer to a create (or, by `url`, another call) at the production host."""
    request = httpx.Request("GET" if url.endswith("/payments") else "POST", url)
    return httpx.Response(status, json=body, headers=headers, request=request)


def cf_error(message: str, code: str, kind: str) -> dict[str, str]:
    return {"message": message, "code": code, "type": kind}


def test_a_created_order_is_delivered_with_its_ids() -> None:
    body = {
        "order_id": "rcpt-1",
        "cf_order_id": "2149460581",
        "payment_session_id": "session_abc",
        "order_status": "ACTIVE",
    }
    assert ADAPTER.classify(response(200, body)) == Delivered(
        "rcpt-1",
        200,
        {
            "order_id": "rcpt-1",
            "cf_order_id": "2149460581",
            "payment_session_id": "session_abc",
            "order_status": "ACTIVE",
        },
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            409,
            cf_error(
                "order with same order_id exists", "order_already_exists", "invalid_request_error"
            ),
            Rejected("order with same order_id exists", 409, "order_already_exists"),
        ),
        (
            401,
            cf_error("authentication Failed", "request_failed", "authentication_error"),
            Rejected("authentication Failed", 401, "request_failed"),
        ),
        (
            422,
            cf_error("idempotency key used", "request_invalid", "idempotency_error"),
            Rejected("idempotency key used", 422, "request_invalid"),
        ),
        (
            503,
            cf_error("internal server error", "internal_error", "api_error"),
            RetryLater("internal server error", 503, "internal_error"),
        ),
    ],
)
def test_failures_are_classified(status: int, body: dict[str, str], expected: object) -> None:
    assert ADAPTER.classify(response(status, body)) == expected


def test_a_200_without_an_order_id_is_not_delivered() -> None:
    assert isinstance(ADAPTER.classify(response(200, {"message": "odd"})), Rejected)


# --- the webhook verifier --------------------------------------------------------

SECRET = "cf_test_secret"  # providers.md's computed vector
VECTOR_TS = "1617695238078"
VECTOR_BODY = b'{"data":{"order":{"order_id":"order_1"}},"type":"PAYMENT_SUCCESS_WEBHOOK"}'
VECTOR_SIG = "O2h2KNV2jVdGoO47ia3ri0yee+W6trTjEBhMN/j2ujk="


def test_the_signature_matches_the_literal_vector() -> None:
    # The vector from providers.md, computed the way cashfree_pg's PGVerifyWebhookSignature
    # does (base64 HMAC-SHA256 of timestamp + raw body); its timestamp is from 2021,
    # so only sign() is checked against it, verify() would refuse it as stale.
    assert VERIFIER.sign(VECTOR_TS.encode() + VECTOR_BODY, SECRET) == VECTOR_SIG
    assert not VERIFIER.verify(
        VECTOR_BODY, {"x-webhook-signature": VECTOR_SIG, "x-webhook-timestamp": VECTOR_TS}, SECRET
    )


def headers_at(
    timestamp_ms: int, body: bytes = VECTOR_BODY, secret: str = SECRET
) -> dict[str, str]:
    ts = str(timestamp_ms)
    return {
        "x-webhook-timestamp": ts,
        "x-webhook-signature": VERIFIER.sign(ts.encode() + body, secret),
    }


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_fresh_signed_webhook_verifies() -> None:
    assert VERIFIER.verify(VECTOR_BODY, headers_at(now_ms()), SECRET)
    assert VERIFIER.verify(VECTOR_BODY, VERIFIER.signed_headers(VECTOR_BODY, SECRET), SECRET)


@pytest.mark.parametrize(
    ("body", "headers", "secret"),
    [
        (VECTOR_BODY + b" ", None, SECRET),  # tampered body
        (VECTOR_BODY, None, "another-secret"),  # wrong secret
        (VECTOR_BODY, "stale", SECRET),
        (VECTOR_BODY, "future", SECRET),
        (VECTOR_BODY, "no-timestamp", SECRET),
        (VECTOR_BODY, "no-signature", SECRET),
        (VECTOR_BODY, "shifted-timestamp", SECRET),
    ],
)
def test_bad_webhooks_are_refused(body: bytes, headers: str | None, secret: str) -> None:
    fresh = headers_at(now_ms())
    cases = {
        None: fresh,
        "stale": headers_at(now_ms() - 6 * 60 * 1000),
        "future": headers_at(now_ms() + 6 * 60 * 1000),
        "no-timestamp": {"x-webhook-signature": fresh["x-webhook-signature"]},
        "no-signature": {"x-webhook-timestamp": fresh["x-webhook-timestamp"]},
        # The signature covers the timestamp: changing it breaks the signature.
        "shifted-timestamp": {**fresh, "x-webhook-timestamp": str(now_ms() + 1000)},
    }
    assert not VERIFIER.verify(body, cases[headers], secret)


# --- the normalizer ----------------------------------------------------------------


def raw_webhook(body: dict[str, Any]) -> RawWebhook:
    encoded = json.dumps(body).encode()
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="cashfree",
        provider_event_id="evt-hash-1",
        content_type="application/json",
        http_headers={},
        body=encoded,
        received_at=datetime(2022, 12, 15, 6, 50, 33, tzinfo=UTC),
    )


def webhook(kind: str, status: str, amount: Any = 1500.5, **payment: Any) -> dict[str, Any]:
    return {
        "data": {
            "order": {"order_id": "rcpt-1", "order_amount": 1500.5, "order_currency": "INR"},
            "payment": {
                "cf_payment_id": "1453002795",
                "payment_status": status,
                "payment_amount": amount,
                "payment_currency": "INR",
                "payment_message": "00::Transaction success",
                "payment_time": "2022-12-15T12:20:29+05:30",
                "payment_group": "upi",
                **payment,
            },
        },
        "event_time": "2022-12-15T12:20:33+05:30",
        "type": kind,
    }


def test_a_success_webhook_is_a_captured_payment() -> None:
    body = webhook("PAYMENT_SUCCESS_WEBHOOK", "SUCCESS")
    event = normalize_cashfree(raw_webhook(body), body)
    assert event is not None
    assert event.kind is PaymentEventKind.CAPTURED
    assert (event.payment_id, event.order_id) == ("1453002795", "rcpt-1")
    assert (event.amount_minor, event.currency, event.method) == (150050, "INR", "upi")
    assert event.error_description is None
    assert event.provider_created_at is not None
    assert event.provider_created_at.isoformat() == "2022-12-15T12:20:29+05:30"


def test_a_failed_webhook_is_a_failed_payment_with_its_error() -> None:
    body = webhook("PAYMENT_FAILED_WEBHOOK", "FAILED", amount=170, cf_payment_id=975673)
    body["data"]["error_details"] = {
        "error_code": "TRANSACTION_DECLINED",
        "error_description": "issuer bank declined",
    }
    event = normalize_cashfree(raw_webhook(body), body)
    assert event is not None
    assert event.kind is PaymentEventKind.FAILED
    assert (event.payment_id, event.amount_minor) == ("975673", 17000)
    assert event.error_code == "TRANSACTION_DECLINED"
    assert event.error_description == "issuer bank declined"


def test_a_user_dropped_webhook_is_not_a_payment_event() -> None:
    body = webhook("PAYMENT_USER_DROPPED_WEBHOOK", "USER_DROPPED")
    assert normalize_cashfree(raw_webhook(body), body) is None


@pytest.mark.parametrize(
    "body",
    [
        {"type": "PAYMENT_SUCCESS_WEBHOOK"},
        {"type": "PAYMENT_SUCCESS_WEBHOOK", "data": {"order": {"order_id": "o"}}},
        webhook("PAYMENT_SUCCESS_WEBHOOK", "SUCCESS", amount="a lot"),
        webhook("PAYMENT_SUCCESS_WEBHOOK", "SUCCESS", amount=1.005),
        webhook("PAYMENT_SUCCESS_WEBHOOK", "SUCCESS", amount=True),
        webhook("PAYMENT_SUCCESS_WEBHOOK", "SUCCESS", cf_payment_id=None),
    ],
)
def test_a_malformed_payload_is_a_normalization_error(body: dict[str, Any]) -> None:
    with pytest.raises(NormalizationError):
        normalize_cashfree(raw_webhook(body), body)


# --- status, refund, the payer's page --------------------------------------------


def gateway_call(payload: Any, key: str = "refund-key-1", base: str = BASE) -> httpx.Request:
    return ADAPTER.build_request(command("cashfree", payload, key=key), payload, T1, base)


def cf_payment(pid: Any, status: str, when: str, **extra: Any) -> dict[str, Any]:
    return {
        "cf_payment_id": pid,
        "order_id": "rcpt-1",
        "entity": "payment",
        "payment_amount": 1500.5,
        "payment_currency": "INR",
        "payment_status": status,
        "payment_group": "upi",
        "payment_time": when,
        "payment_message": "msg",
        **extra,
    }


def status_of(payments: Any, status: int = 200) -> Any:
    request = gateway_call(FetchPaymentStatus(order_id="rcpt-1"))
    return ADAPTER.classify(httpx.Response(status, json=payments, request=request))


def test_the_status_query_lists_the_orders_payments_at_the_pinned_version() -> None:
    request = gateway_call(FetchPaymentStatus(order_id="rcpt-1"))
    assert (request.method, str(request.url)) == (
        "GET",
        "https://api.cashfree.com/pg/orders/rcpt-1/payments",
    )
    assert request.headers["x-api-version"] == "2023-08-01"
    assert request.headers["x-client-id"] == primary(T1, CashfreeAccount).client_id


def test_a_successful_attempt_is_captured_in_paise_under_its_cf_payment_id() -> None:
    failed = cf_payment("111", "FAILED", "2024-01-01T10:05:00+05:30")
    paid = cf_payment(222, "SUCCESS", "2024-01-01T10:00:00+05:30")
    outcome = status_of([failed, paid])
    assert outcome == Delivered(
        "222",
        200,
        PaymentSnapshot("CAPTURED", "rcpt-1", "222", 150_050, "INR", "upi").to_details(),
    )


def test_the_latest_failed_attempt_is_a_failure_with_its_error() -> None:
    error = {"error_code": "TRANSACTION_DECLINED", "error_description": "declined"}
    older = cf_payment("111", "USER_DROPPED", "2024-01-01T10:00:00+05:30")
    newer = cf_payment("112", "FAILED", "2024-01-01T10:09:00+05:30", error_details=error)
    outcome = status_of([newer, older])
    assert isinstance(outcome, Delivered)
    assert PaymentSnapshot.from_details(outcome.details) == PaymentSnapshot(
        "FAILED", "rcpt-1", "112", 150_050, "INR", "upi", "TRANSACTION_DECLINED", "declined"
    )


@pytest.mark.parametrize(
    "payments",
    [
        [],
        [cf_payment("1", "USER_DROPPED", "2024-01-01T10:00:00+05:30")],
        [cf_payment("1", "PENDING", "")],
    ],
)
def test_no_attempt_or_a_dropped_or_pending_one_is_pending(payments: list[Any]) -> None:
    outcome = status_of(payments)
    assert isinstance(outcome, Delivered)
    assert outcome.details["payment.status"] == "PENDING"


def test_an_unknown_order_is_not_found_and_garbage_is_rejected() -> None:
    missing = status_of(
        cf_error("order not found", "order_not_found", "invalid_request_error"), 404
    )
    assert isinstance(missing, Delivered)
    assert missing.details["payment.status"] == "NOT_FOUND"
    assert isinstance(status_of({"not": "a list"}), Rejected)
    bad_amount = cf_payment("1", "SUCCESS", "2024-01-01T10:00:00+05:30", payment_amount="1.234")
    assert isinstance(status_of([bad_amount]), Rejected)


def refund_payload(reason: str = "fee paid twice") -> RefundPayment:
    return RefundPayment(
        payment_id="222", order_id="rcpt-1", amount_minor=50_025, currency="INR", reason=reason
    )


def test_the_refund_names_a_refund_id_from_the_key_and_sends_the_key() -> None:
    request = gateway_call(refund_payload(), key="refund-key-1")
    assert str(request.url) == "https://api.cashfree.com/pg/orders/rcpt-1/refunds"
    assert request.headers["x-idempotency-key"] == "refund-key-1"
    body = json.loads(request.content, parse_float=Decimal)
    assert body == {
        "refund_amount": Decimal("500.25"),
        "refund_id": "refund-key-1",
        "refund_note": "fee paid twice",
    }


def test_a_key_cashfree_would_refuse_as_refund_id_is_hashed_stably() -> None:
    key = "cmd:" + "x" * 60
    first = json.loads(gateway_call(refund_payload(""), key=key).content)
    again = json.loads(gateway_call(refund_payload(""), key=key).content)
    assert first["refund_id"] == again["refund_id"]
    assert first["refund_id"].startswith("hub_")
    assert len(first["refund_id"]) == 40
    assert "refund_note" not in first


def test_a_refund_is_delivered_with_its_status_and_a_409_is_rejected() -> None:
    request = gateway_call(refund_payload())
    body = {"refund_id": "refund-key-1", "cf_refund_id": "9", "refund_status": "PENDING"}
    outcome = ADAPTER.classify(httpx.Response(200, json=body, request=request))
    assert isinstance(outcome, Delivered)
    assert (outcome.provider_ref, outcome.details["refund_status"]) == ("refund-key-1", "PENDING")
    taken = cf_error("refund with same refund_id exists", "refund_already_exists", "x")
    assert ADAPTER.classify(httpx.Response(409, json=taken, request=request)) == Rejected(
        "refund with same refund_id exists", 409, "refund_already_exists"
    )


def test_the_payment_url_is_the_simulators_checkout_never_one_at_cashfree() -> None:
    body = {"order_id": "rcpt-1", "payment_session_id": "session_1", "order_status": "ACTIVE"}
    at_sim = gateway_call(order(), base="http://127.0.0.1:8099/cashfree")
    outcome = ADAPTER.classify(httpx.Response(200, json=body, request=at_sim))
    assert isinstance(outcome, Delivered)
    assert outcome.details["payment_url"] == "http://127.0.0.1:8099/cashfree/checkout/rcpt-1"
    for base in (BASE, "https://sandbox.cashfree.com/pg"):
        real = ADAPTER.classify(
            httpx.Response(200, json=body, request=gateway_call(order(), base=base))
        )
        assert isinstance(real, Delivered)
        assert "payment_url" not in real.details
        assert real.details["payment_session_id"] == "session_1"
