"""Flutterwave v3: the adapter's requests and readings, verif-hash, the normalizer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from connector_support import command, make_tenants, order, tenant
from tenant_accounts import primary

from providers.base import Delivered, Rejected, RetryLater
from providers.flutterwave import (
    Flutterwave,
    FlutterwaveAccount,
    FlutterwaveVerifier,
    normalize_flutterwave,
    tx_ref_for,
)
from providers.payments import PaymentSnapshot
from providers.spec import Delivery, NormalizationError
from schemas.events import (
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import Rejection, WebhookKey, accept, check_headers, check_route

ADAPTER, VERIFIER = Flutterwave(), FlutterwaveVerifier()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
ACCOUNT = primary(T1, FlutterwaveAccount)
BASE = "https://api.flutterwave.com"


def sent(request: httpx.Request, status: int = 200, body: Any = None) -> httpx.Response:
    """The request through a MockTransport, answered as given (the far side of Flutterwave)."""
    seen: list[httpx.Request] = []

    def handler(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        return httpx.Response(status, json=body if body is not None else {})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        response = client.send(request)
    assert len(seen) == 1
    return response


def create(payload: CreatePaymentOrder | None = None, key: str = "key-7") -> httpx.Request:
    payload = payload or order(notes={"invoice_id": "inv-1", "customer_phone": "0803000000"})
    return ADAPTER.build_request(command("flutterwave", payload, key=key), payload, T1, BASE)


def status_request(order_id: str = "rcpt-1", currency: str = "NGN") -> httpx.Request:
    payload = FetchPaymentStatus(order_id=order_id, currency=currency)
    return ADAPTER.build_request(command("flutterwave", payload), payload, T1, BASE)


# --- create ---------------------------------------------------------------------------


def test_the_create_request_is_a_standard_payment_with_the_receipt_as_tx_ref() -> None:
    request = create()
    assert (request.method, str(request.url)) == ("POST", "https://api.flutterwave.com/v3/payments")
    assert request.headers["authorization"] == f"Bearer {ACCOUNT.secret_key.get_secret_value()}"
    body = json.loads(request.content, parse_float=Decimal)
    assert body == {
        "tx_ref": "rcpt-1",
        "amount": 1500,
        "currency": "INR",
        "redirect_url": ACCOUNT.redirect_url,
        "customer": {"email": "fees@t1.school.example", "phonenumber": "0803000000"},
        "meta": {"invoice_id": "inv-1"},
        "customizations": {"title": "School fees"},
    }


def test_the_requests_return_url_and_the_payers_email_win() -> None:
    payload = CreatePaymentOrder(
        amount_minor=150_050,
        currency="NGN",
        receipt="rcpt-2",
        notes={"customer_email": "parent@example.com", "customer_name": "Ada Obi"},
        return_url="https://school.example/back",
    )
    body = json.loads(create(payload).content, parse_float=Decimal)
    assert body["redirect_url"] == "https://school.example/back"
    assert body["customer"] == {"email": "parent@example.com", "name": "Ada Obi"}
    assert body["amount"] == Decimal("1500.5")


def test_shillings_of_uganda_have_no_minor_unit() -> None:
    payload = CreatePaymentOrder(amount_minor=50_000, currency="UGX", receipt="r-ug")
    assert json.loads(create(payload).content)["amount"] == 50_000


def test_a_receipt_that_is_no_plain_reference_is_hashed_stably() -> None:
    assert tx_ref_for("INV/2024 007") == tx_ref_for("INV/2024 007")
    assert tx_ref_for("INV/2024 007").startswith("hub-")
    assert len(tx_ref_for("INV/2024 007")) == 44
    assert tx_ref_for("fee-2024_07.1") == "fee-2024_07.1"


def test_a_hosted_link_is_delivered_under_the_tx_ref() -> None:
    answer = {"status": "success", "message": "Hosted Link", "data": {"link": "https://x/pay/1"}}
    outcome = ADAPTER.classify(sent(create(), 200, answer))
    assert outcome == Delivered(
        "rcpt-1", 200, {"payment_url": "https://x/pay/1", "tx_ref": "rcpt-1"}
    )


def flw_error(message: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "data": None}


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "Duplicate transaction reference", Rejected("Duplicate transaction reference", 400)),
        (401, "Invalid authorization key", Rejected("Invalid authorization key", 401)),
        (429, "Too many requests", RetryLater("Too many requests", 429)),
        (503, "An error occurred. Please contact support", RetryLater(
            "An error occurred. Please contact support", 503)),
        (504, "Gateway timeout", RetryLater("Gateway timeout", 504)),
    ],
)  # fmt: skip
def test_create_failures_are_classified(status: int, message: str, expected: object) -> None:
    assert ADAPTER.classify(sent(create(), status, flw_error(message))) == expected


def test_a_success_without_a_link_is_rejected() -> None:
    outcome = ADAPTER.classify(sent(create(), 200, {"status": "success", "data": {}}))
    assert isinstance(outcome, Rejected)


# --- status --------------------------------------------------------------------------------


def transaction(status: str = "successful", **overrides: Any) -> dict[str, Any]:
    return {
        "id": 288200108,
        "tx_ref": "rcpt-1",
        "flw_ref": "FLW-MOCK-1",
        "amount": 1500.5,
        "currency": "NGN",
        "charged_amount": 1500.5,
        "processor_response": "Approved by Financial Institution",
        "status": status,
        "payment_type": "card",
        "created_at": "2020-07-15T14:31:16.000Z",
        **overrides,
    }


def fetched(data: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "message": "Transaction fetched successfully", "data": data}


def test_the_status_query_verifies_by_reference() -> None:
    request = status_request()
    assert request.method == "GET"
    assert str(request.url) == (
        "https://api.flutterwave.com/v3/transactions/verify_by_reference?tx_ref=rcpt-1"
    )
    assert request.headers["authorization"].startswith("Bearer FLWSECK_TEST-")


@pytest.mark.parametrize(
    ("status", "expected"),
    [("successful", "CAPTURED"), ("failed", "FAILED"), ("pending", "PENDING")],
)
def test_a_transaction_status_becomes_a_snapshot(status: str, expected: str) -> None:
    outcome = ADAPTER.classify(sent(status_request(), 200, fetched(transaction(status))))
    assert isinstance(outcome, Delivered)
    snapshot = PaymentSnapshot.from_details(outcome.details)
    assert snapshot is not None
    assert (snapshot.status, snapshot.order_id, snapshot.payment_id) == (
        expected,
        "rcpt-1",
        "288200108",
    )
    assert (snapshot.amount_minor, snapshot.currency, snapshot.method) == (150_050, "NGN", "card")


def test_no_transaction_yet_is_not_found() -> None:
    answer = flw_error("No transaction was found for this id")
    outcome = ADAPTER.classify(sent(status_request(), 400, answer))
    assert isinstance(outcome, Delivered)
    assert outcome.details["payment.status"] == "NOT_FOUND"
    assert outcome.details["payment.order_id"] == "rcpt-1"


def test_an_answer_about_another_tx_ref_or_currency_is_rejected() -> None:
    other = fetched(transaction(tx_ref="someone-else"))
    assert isinstance(ADAPTER.classify(sent(status_request(), 200, other)), Rejected)
    dollars = fetched(transaction(currency="USD"))
    assert isinstance(ADAPTER.classify(sent(status_request(), 200, dollars)), Rejected)


def test_a_status_query_failing_at_flutterwave_is_retried() -> None:
    outcome = ADAPTER.classify(sent(status_request(), 502, flw_error("Bad gateway")))
    assert outcome == RetryLater("Bad gateway", 502)


# --- refund --------------------------------------------------------------------------------


def test_a_refund_posts_the_amount_to_the_transaction() -> None:
    payload = RefundPayment(
        payment_id="288200108", order_id="rcpt-1", amount_minor=50_025, currency="NGN"
    )
    request = ADAPTER.build_request(command("flutterwave", payload), payload, T1, BASE)
    assert str(request.url) == "https://api.flutterwave.com/v3/transactions/288200108/refund"
    assert json.loads(request.content, parse_float=Decimal) == {"amount": Decimal("500.25")}
    answer = {
        "status": "success",
        "message": "Transaction refund initiated",
        "data": {"id": 75923, "status": "completed", "amount_refunded": 500.25},
    }
    assert ADAPTER.classify(sent(request, 200, answer)) == Delivered(
        "75923", 200, {"refund_id": "75923", "refund_status": "completed"}
    )
    refused = ADAPTER.classify(sent(request, 400, flw_error("Refund amount too high")))
    assert refused == Rejected("Refund amount too high", 400)


def test_the_probe_reads_the_balances() -> None:
    request = ADAPTER.probe_request(T1, None, BASE + "/")
    assert (request.method, str(request.url)) == ("GET", "https://api.flutterwave.com/v3/balances")


# --- verif-hash ------------------------------------------------------------------------------

HASH = ACCOUNT.secret_hash.get_secret_value()
BODY = json.dumps({"event": "charge.completed", "data": transaction()}).encode()


def test_the_secret_hash_in_verif_hash_verifies() -> None:
    assert VERIFIER.verify(BODY, {"verif-hash": HASH}, HASH)
    assert VERIFIER.signed_headers(BODY, HASH) == {"verif-hash": HASH}


@pytest.mark.parametrize(
    "headers",
    [{}, {"verif-hash": ""}, {"verif-hash": "another-hash"}, {"verif-hash": HASH[:-1]},
     {"verif-hash": HASH + "x"}, {"flutterwave-signature": HASH}],
)  # fmt: skip
def test_a_wrong_missing_or_garbled_hash_is_refused(headers: dict[str, str]) -> None:
    assert not VERIFIER.verify(BODY, headers, HASH)


def test_the_hash_does_not_bind_the_body() -> None:
    # The v3 scheme in one assertion: the header is the same for every body, so a
    # tampered body verifies. The status query and the money checks guard the amount.
    assert VERIFIER.verify(BODY.replace(b"1500.5", b"9999.5"), {"verif-hash": HASH}, HASH)


KEY = WebhookKey("flutterwave-primary", HASH, ACCOUNT)


def delivery(headers: dict[str, str], body: bytes = BODY) -> Delivery:
    url = "http://ingress.test/webhooks/flutterwave/t1"
    return Delivery("POST", url, {}, headers, body, "127.0.0.1")


def test_the_ingress_accepts_a_hashed_webhook_as_a_raw_record() -> None:
    keys = check_route("flutterwave", "t1", TENANTS)
    assert keys == [KEY]
    headers = {"content-type": "application/json", "verif-hash": HASH}
    raw = accept("flutterwave", "t1", [KEY], delivery(headers))
    assert isinstance(raw, RawWebhook)
    assert raw.body == BODY
    assert (raw.provider_event_id, raw.provider_event_type) == (
        "288200108:successful",
        "charge.completed",
    )
    assert raw.account == "flutterwave-primary"


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({"content-type": "application/json"}, BODY, 401, "missing signature"),
        ({"content-type": "application/json", "verif-hash": "nope"}, BODY, 401,
         "signature does not match the body"),
        ({"content-type": "application/json", "verif-hash": HASH}, b"{not json", 400,
         "body is not valid JSON"),
    ],
)  # fmt: skip
def test_the_ingress_refuses_what_does_not_verify_or_parse(
    headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    assert accept("flutterwave", "t1", [KEY], delivery(headers, body)) == Rejection(
        status, reason, security=status == 401
    )


def test_the_ingress_wants_json() -> None:
    refused = check_headers({"content-type": "text/plain"}, 1024)
    assert refused == Rejection(415, "content type must be application/json")


# --- the normalizer ---------------------------------------------------------------------------


def raw_webhook(body: dict[str, Any]) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="flutterwave",
        provider_event_id="288200108:successful",
        content_type="application/json",
        http_headers={},
        body=json.dumps(body).encode(),
        received_at=datetime(2020, 7, 15, 14, 31, 20, tzinfo=UTC),
    )


def charge(status: str = "successful", **data: Any) -> dict[str, Any]:
    return {"event": "charge.completed", "data": transaction(status, **data)}


def test_a_successful_charge_is_a_captured_payment() -> None:
    event = normalize_flutterwave(raw_webhook(charge()), charge())
    assert event is not None
    assert event.kind is PaymentEventKind.CAPTURED
    assert (event.payment_id, event.order_id) == ("288200108", "rcpt-1")
    assert (event.amount_minor, event.currency, event.method) == (150_050, "NGN", "card")
    assert event.error_description is None
    assert event.provider_created_at == datetime(2020, 7, 15, 14, 31, 16, tzinfo=UTC)


def test_a_failed_charge_is_a_failed_payment_with_the_processors_words() -> None:
    body = charge("failed", processor_response="Insufficient funds", amount=200)
    event = normalize_flutterwave(raw_webhook(body), body)
    assert event is not None
    assert event.kind is PaymentEventKind.FAILED
    assert (event.amount_minor, event.error_description) == (20_000, "Insufficient funds")


@pytest.mark.parametrize(
    "body",
    [charge("pending"), {"event": "transfer.completed", "data": {"id": 1}}, {"event": None}],
)
def test_what_the_hub_does_not_act_on_is_ignored(body: dict[str, Any]) -> None:
    assert normalize_flutterwave(raw_webhook(body), body) is None


@pytest.mark.parametrize(
    "body",
    [
        {"event": "charge.completed"},
        charge(tx_ref=None),
        charge(id=None),
        charge(amount="lots"),
        charge(amount=10.005),
        charge(currency=""),
    ],
)
def test_a_malformed_charge_is_a_normalization_error(body: dict[str, Any]) -> None:
    with pytest.raises(NormalizationError):
        normalize_flutterwave(raw_webhook(body), body)
