"""Stripe: the Checkout Session, status and refund requests and their classification, the
Stripe-Signature verifier (with stripe-python as the oracle), the ingress, the normalizer."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import stripe
from connector_support import command, make_tenants, order, tenant
from tenant_accounts import primary

from providers.base import Delivered, Rejected, RetryLater
from providers.payments import PaymentSnapshot
from providers.spec import Delivery, NormalizationError
from providers.stripe import API_VERSION, Stripe, StripeAccount
from providers.stripe_webhooks import StripeVerifier, normalize_stripe
from schemas.events import (
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import Rejection, accept, check_headers, check_route

ADAPTER, VERIFIER = Stripe(), StripeVerifier()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
BASE = "https://api.stripe.com"


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


def create_request(payload: CreatePaymentOrder, key: str = "key-42") -> httpx.Request:
    return ADAPTER.build_request(command("stripe", payload, key=key), payload, T1, BASE)


# --- create ----------------------------------------------------------------------


def test_the_create_request_is_a_form_encoded_checkout_session() -> None:
    notes = {"invoice_id": "inv-1", "student_id": "stu-9", "customer_email": "p@example.com"}
    payload = order(notes=notes).model_copy(update={"return_url": "https://school.example/back"})
    request = create_request(payload)
    account = primary(T1, StripeAccount)
    assert (request.method, str(request.url)) == (
        "POST",
        "https://api.stripe.com/v1/checkout/sessions",
    )
    assert request.headers["authorization"] == f"Bearer {account.secret_key.get_secret_value()}"
    assert request.headers["idempotency-key"] == "key-42"
    assert request.headers["stripe-version"] == "2024-06-20" == API_VERSION
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "mode": "payment",
        "line_items[0][price_data][currency]": "inr",
        "line_items[0][price_data][unit_amount]": "150000",
        "line_items[0][price_data][product_data][name]": "Invoice inv-1",
        "line_items[0][quantity]": "1",
        "client_reference_id": "rcpt-1",
        "metadata[invoice_id]": "inv-1",
        "metadata[student_id]": "stu-9",
        "metadata[customer_email]": "p@example.com",
        "metadata[receipt]": "rcpt-1",
        "payment_intent_data[metadata][invoice_id]": "inv-1",
        "payment_intent_data[metadata][student_id]": "stu-9",
        "payment_intent_data[metadata][customer_email]": "p@example.com",
        "payment_intent_data[metadata][receipt]": "rcpt-1",
        "success_url": "https://school.example/back",
        "cancel_url": "https://school.example/back",
        "customer_email": "p@example.com",
    }


def test_without_a_return_url_the_accounts_own_is_used() -> None:
    sent = form(create_request(order(notes={})))
    assert sent["success_url"] == "https://t1.school.example/fees/paid"
    assert sent["line_items[0][price_data][product_data][name]"] == "Payment rcpt-1"
    assert "customer_email" not in sent


def test_an_overlong_idempotency_key_is_hashed_to_a_stable_one_stripe_accepts() -> None:
    first = create_request(order(), key="k" * 300).headers["idempotency-key"]
    again = create_request(order(), key="k" * 300).headers["idempotency-key"]
    assert first == again
    assert first.startswith("hub_")
    assert len(first) == 68


def response(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json=body, request=create_request(order()))


def stripe_error(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    return {"error": error}


def test_a_created_session_is_delivered_with_its_checkout_url() -> None:
    body = {
        "id": "cs_test_a1b2",
        "object": "checkout.session",
        "url": "https://checkout.stripe.com/c/pay/cs_test_a1b2",
        "status": "open",
        "payment_status": "unpaid",
        "expires_at": 1_700_086_400,
    }
    assert ADAPTER.classify(response(200, body)) == Delivered(
        "cs_test_a1b2",
        200,
        {
            "session_id": "cs_test_a1b2",
            "payment_url": "https://checkout.stripe.com/c/pay/cs_test_a1b2",
            "status": "open",
            "payment_status": "unpaid",
            "expires_at": "1700086400",
        },
    )


def test_a_200_that_is_no_checkout_session_is_not_delivered() -> None:
    assert isinstance(ADAPTER.classify(response(200, {"object": "balance"})), Rejected)


MISSING = "Missing required param: line_items."
SAME_KEY = "Keys for idempotent requests can only be used with the same parameters"


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (
            400,
            stripe_error("invalid_request_error", MISSING, "parameter_missing"),
            {},
            Rejected(MISSING, 400, "parameter_missing"),
        ),
        (
            400,
            stripe_error("idempotency_error", SAME_KEY),
            {},
            Rejected(SAME_KEY, 400, "idempotency_error"),
        ),
        (
            401,
            stripe_error("invalid_request_error", "Invalid API Key provided: sk_test_****abcd"),
            {},
            Rejected("Invalid API Key provided: sk_test_****abcd", 401, "invalid_request_error"),
        ),
        (
            402,
            stripe_error("card_error", "Your card was declined.", "card_declined"),
            {},
            Rejected("Your card was declined.", 402, "card_declined"),
        ),
        (
            409,
            stripe_error("idempotency_error", "another in-progress request"),
            {},
            Rejected("another in-progress request", 409, "idempotency_error"),
        ),
        (
            429,
            stripe_error("invalid_request_error", "Request rate limit exceeded.", "rate_limit"),
            {"Retry-After": "2"},
            RetryLater("Request rate limit exceeded.", 429, "rate_limit", 2.0),
        ),
        (
            400,
            stripe_error("invalid_request_error", "Too many requests.", "rate_limit"),
            {},
            RetryLater("Too many requests.", 400, "rate_limit"),
        ),
        (
            500,
            stripe_error("api_error", "An unknown error occurred"),
            {},
            RetryLater("An unknown error occurred", 500, "api_error"),
        ),
        (
            504,
            stripe_error("api_error", "timed out"),
            {},
            RetryLater("timed out", 504, "api_error"),
        ),
        # Stripe's own advice wins, as stripe-python obeys it: a lock held by a concurrent
        # request with the same key will clear; a saved 500 will only replay.
        (
            409,
            stripe_error("idempotency_error", "in progress"),
            {"Stripe-Should-Retry": "true"},
            RetryLater("in progress", 409, "idempotency_error"),
        ),
        (
            500,
            stripe_error("api_error", "saved failure"),
            {"Stripe-Should-Retry": "false"},
            Rejected("saved failure", 500, "api_error"),
        ),
    ],
)
def test_create_failures_are_classified(
    status: int, body: dict[str, Any], headers: dict[str, str], expected: object
) -> None:
    request = create_request(order())
    answer = httpx.Response(status, json=body, headers=headers, request=request)
    assert ADAPTER.classify(answer) == expected


def test_a_timeout_answer_without_a_stripe_body_is_retried() -> None:
    answer = httpx.Response(408, text="timeout", request=create_request(order()))
    assert ADAPTER.classify(answer) == RetryLater("Request Timeout", 408, None)


# --- status ----------------------------------------------------------------------


def status_request(order_id: str = "cs_test_a1b2") -> httpx.Request:
    payload = FetchPaymentStatus(order_id=order_id)
    return ADAPTER.build_request(command("stripe", payload), payload, T1, BASE)


def test_the_status_request_retrieves_the_session_with_its_payment_intent() -> None:
    request = status_request()
    assert request.method == "GET"
    assert str(request.url) == (
        "https://api.stripe.com/v1/checkout/sessions/cs_test_a1b2?expand%5B%5D=payment_intent"
    )
    assert request.headers["stripe-version"] == API_VERSION
    assert "idempotency-key" not in request.headers


def session(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "cs_test_a1b2",
        "object": "checkout.session",
        "amount_total": 150_000,
        "currency": "inr",
        "payment_method_types": ["card"],
        "payment_intent": None,
        "payment_status": "unpaid",
        "status": "open",
    }
    body.update(fields)
    return body


def intent(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "pi_3Abc", "object": "payment_intent", "status": status, **fields}


def status_of(body: dict[str, Any]) -> PaymentSnapshot:
    outcome = ADAPTER.classify(httpx.Response(200, json=body, request=status_request()))
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref == "cs_test_a1b2"
    snapshot = PaymentSnapshot.from_details(outcome.details)
    assert snapshot is not None
    return snapshot


def test_a_paid_session_is_captured_under_its_payment_intents_id() -> None:
    paid = session(status="complete", payment_status="paid", payment_intent=intent("succeeded"))
    assert status_of(paid) == PaymentSnapshot(
        "CAPTURED", "cs_test_a1b2", "pi_3Abc", 150_000, "INR", "card"
    )


def test_an_open_session_is_pending() -> None:
    assert status_of(session()) == PaymentSnapshot(
        "PENDING", "cs_test_a1b2", "", 150_000, "INR", "card"
    )


def test_an_expired_session_without_an_intent_failed_under_its_own_id() -> None:
    snapshot = status_of(session(status="expired"))
    assert (snapshot.status, snapshot.payment_id, snapshot.error_code) == (
        "FAILED",
        "cs_test_a1b2",
        "expired",
    )


def test_a_completed_unpaid_session_whose_async_payment_failed_is_failed() -> None:
    error = {"code": "payment_intent_payment_attempt_failed", "message": "insufficient funds"}
    failed = intent("requires_payment_method", last_payment_error=error)
    snapshot = status_of(session(status="complete", payment_intent=failed))
    assert (snapshot.status, snapshot.payment_id) == ("FAILED", "pi_3Abc")
    assert snapshot.error_code == "payment_intent_payment_attempt_failed"
    assert snapshot.error_description == "insufficient funds"


def test_a_declined_attempt_on_an_open_session_is_still_pending() -> None:
    # Checkout lets the payer try another card: the session is not over.
    retrying = intent("requires_payment_method", last_payment_error={"code": "card_declined"})
    snapshot = status_of(session(payment_intent=retrying))
    assert (snapshot.status, snapshot.payment_id) == ("PENDING", "pi_3Abc")


def test_a_canceled_intent_is_failed() -> None:
    snapshot = status_of(session(payment_intent=intent("canceled")))
    assert (snapshot.status, snapshot.error_code) == ("FAILED", "canceled")


def test_an_unknown_session_is_not_found() -> None:
    missing = stripe_error("invalid_request_error", "No such checkout.session", "resource_missing")
    outcome = ADAPTER.classify(httpx.Response(404, json=missing, request=status_request("cs_x")))
    assert outcome == Delivered("cs_x", 404, PaymentSnapshot("NOT_FOUND", "cs_x").to_details())


def test_a_status_query_that_stripe_fails_is_retried() -> None:
    failed = httpx.Response(503, json=stripe_error("api_error", "down"), request=status_request())
    assert ADAPTER.classify(failed) == RetryLater("down", 503, "api_error")


# --- refund ------------------------------------------------------------------------


def refund_request(reason: str = "", key: str = "refund-key") -> httpx.Request:
    payload = RefundPayment(
        payment_id="pi_3Abc", order_id="cs_test_a1b2", amount_minor=50_000, currency="INR",
        reason=reason,
    )  # fmt: skip
    return ADAPTER.build_request(command("stripe", payload, key=key), payload, T1, BASE)


def test_the_refund_request_names_the_payment_intent_under_the_commands_key() -> None:
    request = refund_request("parent paid twice")
    assert (request.method, str(request.url)) == ("POST", "https://api.stripe.com/v1/refunds")
    assert request.headers["idempotency-key"] == "refund-key"
    assert form(request) == {
        "payment_intent": "pi_3Abc",
        "amount": "50000",
        "metadata[order_id]": "cs_test_a1b2",
        "metadata[reason]": "parent paid twice",
    }


def test_a_reason_stripe_knows_is_sent_as_its_reason() -> None:
    assert form(refund_request("duplicate"))["reason"] == "duplicate"


def test_refund_answers_are_classified() -> None:
    request = refund_request()
    refund = {"id": "re_1", "object": "refund", "status": "succeeded", "amount": 50_000,
              "payment_intent": "pi_3Abc"}  # fmt: skip
    assert ADAPTER.classify(httpx.Response(200, json=refund, request=request)) == Delivered(
        "re_1",
        200,
        {
            "refund_id": "re_1",
            "status": "succeeded",
            "amount_minor": "50000",
            "payment_intent": "pi_3Abc",
        },
    )
    too_large = stripe_error("invalid_request_error", "Refund amount too large", "amount_too_large")
    assert ADAPTER.classify(httpx.Response(400, json=too_large, request=request)) == Rejected(
        "Refund amount too large", 400, "amount_too_large"
    )
    failed = {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    assert ADAPTER.classify(httpx.Response(200, json=failed, request=request)) == Rejected(
        "refund re_1 expired_or_canceled_card", 200, "expired_or_canceled_card"
    )


def test_the_probe_reads_the_balance() -> None:
    request = ADAPTER.probe_request(T1, None, BASE + "/")
    assert (request.method, str(request.url)) == ("GET", "https://api.stripe.com/v1/balance")
    assert request.headers["authorization"].startswith("Bearer sk_test_")


# --- the verifier, with stripe-python as the oracle -----------------------------------

SECRET = "whsec_test_secret"
BODY = b'{"id":"evt_test_webhook","object":"event"}'


def test_the_signature_matches_the_computed_vector_and_stripe_pythons() -> None:
    # providers.md's COMPUTED-HERE vector (t=1700000000), recomputed by the SDK too.
    vector = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
    assert VERIFIER.sign(b"1700000000." + BODY, SECRET) == vector
    sdk = stripe.WebhookSignature._compute_signature(f"1700000000.{BODY.decode()}", SECRET)
    assert sdk == vector
    # Its timestamp is years old: a replay.
    assert not VERIFIER.verify(BODY, {"stripe-signature": f"t=1700000000,v1={vector}"}, SECRET)


def sdk_header(body: bytes = BODY, secret: str = SECRET, at: int | None = None) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(time.time()) if at is None else at
    )
    return header


def test_a_header_stripe_python_generates_verifies() -> None:
    assert VERIFIER.verify(BODY, {"stripe-signature": sdk_header()}, SECRET)


def test_what_the_verifier_signs_stripe_python_accepts() -> None:
    headers = VERIFIER.signed_headers(BODY, SECRET)
    event = stripe.Webhook.construct_event(BODY, headers["stripe-signature"], SECRET)
    assert event.id == "evt_test_webhook"


def test_any_v1_signature_of_a_rolled_secret_is_enough() -> None:
    now = int(time.time())
    old = sdk_header(secret="whsec_old", at=now).split("v1=")[1]
    new = sdk_header(secret=SECRET, at=now).split("v1=")[1]
    legacy = "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    header = f"t={now},v1={old},v1={new},{legacy}"
    assert VERIFIER.verify(BODY, {"stripe-signature": header}, SECRET)
    assert VERIFIER.verify(BODY, {"stripe-signature": header}, "whsec_old")
    assert not VERIFIER.verify(BODY, {"stripe-signature": header}, "whsec_other")


def _garbled(header: str) -> str:
    return header.replace("v1=", "v0=")


@pytest.mark.parametrize(
    ("body", "case", "secret"),
    [
        (BODY[:-1] + b" ", "fresh", SECRET),  # one byte changed
        (BODY, "fresh", "whsec_another"),
        (BODY, "stale", SECRET),
        (BODY, "future", SECRET),
        (BODY, "missing", SECRET),
        (BODY, "garbage", SECRET),
        (BODY, "only-v0", SECRET),
        (BODY, "no-timestamp", SECRET),
        (BODY, "shifted-timestamp", SECRET),
        (BODY, "not-a-number", SECRET),
    ],
)
def test_bad_signatures_are_refused(body: bytes, case: str, secret: str) -> None:
    now = int(time.time())
    fresh = sdk_header(at=now)
    signature = fresh.split("v1=")[1]
    headers = {
        "fresh": fresh,
        "stale": sdk_header(at=now - 301),
        "future": sdk_header(at=now + 301),
        "missing": "",
        "garbage": "definitely not a stripe signature",
        "only-v0": _garbled(fresh),
        "no-timestamp": f"v1={signature}",
        # The signature covers the timestamp: moving it breaks the signature.
        "shifted-timestamp": f"t={now + 1},v1={signature}",
        "not-a-number": f"t=soon,v1={signature}",
    }
    assert not VERIFIER.verify(body, {"stripe-signature": headers[case]}, secret)


# --- through the ingress ---------------------------------------------------------------


def event_body(event_type: str = "checkout.session.completed", **fields: Any) -> bytes:
    paid = {"status": "complete", "payment_status": "paid", "payment_intent": "pi_3Abc"}
    obj = session(**(paid | fields))
    event = {"id": "evt_1Xyz", "object": "event", "created": 1_700_000_000, "type": event_type,
             "data": {"object": obj}}  # fmt: skip
    return json.dumps(event, indent=2).encode()


def delivery(body: bytes, signature: str | None) -> Delivery:
    headers = {"content-type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["stripe-signature"] = signature
    return Delivery("POST", "http://ingress.test/webhooks/stripe/t1", {}, headers, body, None)


def webhook_secret() -> str:
    return primary(T1, StripeAccount).webhook_secret.get_secret_value()


def test_a_signed_delivery_is_accepted_under_its_event_id() -> None:
    keys = check_route("stripe", "t1", TENANTS)
    assert isinstance(keys, list)
    body = event_body()
    raw = accept("stripe", "t1", keys, delivery(body, sdk_header(body, webhook_secret())))
    assert isinstance(raw, RawWebhook)
    assert (raw.provider_event_id, raw.provider_event_type) == (
        "evt_1Xyz",
        "checkout.session.completed",
    )
    assert (raw.account, raw.body) == ("stripe-primary", body)


@pytest.mark.parametrize(
    ("signature", "expected"),
    [
        (None, Rejection(401, "missing signature", security=True)),
        ("t=1,v1=00", Rejection(401, "signature does not match the body", security=True)),
        ("wrong-secret", Rejection(401, "signature does not match the body", security=True)),
    ],
)
def test_a_badly_signed_delivery_is_refused(signature: str | None, expected: Rejection) -> None:
    keys = check_route("stripe", "t1", TENANTS)
    assert isinstance(keys, list)
    body = event_body()
    if signature == "wrong-secret":
        signature = sdk_header(body, "whsec_not_the_endpoints")
    assert accept("stripe", "t1", keys, delivery(body, signature)) == expected


def test_a_delivery_that_is_no_json_is_refused_before_its_signature_is_read() -> None:
    assert check_headers({"content-type": "text/plain"}, 1024) == Rejection(
        415, "content type must be application/json"
    )
    assert check_route("stripe", "nobody", TENANTS) == Rejection(
        404, "unknown tenant 'nobody' for stripe"
    )


# --- the normalizer ------------------------------------------------------------------


def raw_webhook(body: bytes) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="stripe",
        provider_event_id="evt_1Xyz",
        content_type="application/json",
        http_headers={},
        body=body,
        received_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
    )


def normalized(body: bytes) -> Any:
    return normalize_stripe(raw_webhook(body), json.loads(body))


def test_a_paid_completed_session_is_a_captured_payment() -> None:
    event = normalized(event_body())
    assert event is not None
    assert event.kind is PaymentEventKind.CAPTURED
    assert (event.order_id, event.payment_id) == ("cs_test_a1b2", "pi_3Abc")
    assert (event.amount_minor, event.currency, event.method) == (150_000, "INR", "card")
    assert (event.provider_event_id, event.error_code) == ("evt_1Xyz", None)
    assert event.provider_created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_an_unpaid_completed_session_waits_for_its_async_payment() -> None:
    assert normalized(event_body(payment_status="unpaid")) is None


def test_an_async_payment_that_succeeded_is_captured() -> None:
    event = normalized(event_body("checkout.session.async_payment_succeeded"))
    assert (event.kind, event.payment_id) == (PaymentEventKind.CAPTURED, "pi_3Abc")


def test_an_async_payment_that_failed_is_a_failed_payment() -> None:
    body = event_body("checkout.session.async_payment_failed", payment_status="unpaid")
    event = normalized(body)
    assert (event.kind, event.payment_id) == (PaymentEventKind.FAILED, "pi_3Abc")
    assert event.error_code == "async_payment_failed"


def test_an_expired_session_is_a_failed_payment_under_the_sessions_id() -> None:
    body = event_body(
        "checkout.session.expired", status="expired", payment_status="unpaid", payment_intent=None
    )
    event = normalized(body)
    assert (event.kind, event.order_id, event.payment_id) == (
        PaymentEventKind.FAILED,
        "cs_test_a1b2",
        "cs_test_a1b2",
    )
    assert (event.error_code, event.error_description) == (
        "expired",
        "checkout session expired before payment",
    )


@pytest.mark.parametrize(
    "event_type", ["payment_intent.succeeded", "charge.refunded", "checkout.session.updated"]
)
def test_other_events_are_not_payment_events(event_type: str) -> None:
    assert normalized(event_body(event_type)) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt_1", "type": "checkout.session.completed"}',
        json.dumps(
            {"type": "checkout.session.completed", "data": {"object": {"object": "refund"}}}
        ).encode(),
        event_body(amount_total="1500"),
        event_body(amount_total=True),
        event_body(currency=None),
        event_body(id=None),
    ],
)
def test_a_malformed_checkout_event_is_a_normalization_error(body: bytes) -> None:
    with pytest.raises(NormalizationError):
        normalized(body)
