"""Paytm: the checksum (against Paytm's own paytmchecksum as the oracle), the adapter's
requests and classification, the CHECKSUMHASH callback verifier, the normalizer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from connector_support import command, make_tenants, order, tenant
from paytmchecksum import generateSignature, verifySignature
from tenant_accounts import primary

from providers.base import Delivered, Rejected, RetryLater
from providers.payments import FollowUp, PaymentSnapshot
from providers.paytm import Paytm, PaytmAccount, paytm_id
from providers.paytm_checksum import generate_signature, params_text, verify_signature
from providers.paytm_webhooks import PaytmVerifier, normalize_paytm, signed_form
from providers.probe import ProbeResult
from providers.spec import Delivery, NormalizationError
from schemas.events import (
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import Rejection, WebhookKey, accept, check_headers

ADAPTER, VERIFIER = Paytm(), PaytmVerifier()
T1 = tenant(make_tenants())
ACCOUNT = primary(T1, PaytmAccount)
KEY = ACCOUNT.merchant_key.get_secret_value()
BASE = "https://secure.paytmpayments.com"

# --- the checksum ---------------------------------------------------------------------

VECTOR_KEY = "ABCDEFGHIJKLMNOP"  # providers.md's COMPUTED-HERE vectors, salt "aB3x"
VECTOR_BODY = '{"mid":"TESTMID00000000000000","orderId":"ORDER_1"}'
VECTOR_BODY_SIG = (
    "UmLCvSjkX+l408kHKnWtLuQ688yFlMLlWKwwetettqksYnDkDohBO90x65VPMD9d5uWKw4G+049U0bJ4tZVmz/"
    "bhOj0dfO6fBDYwBwm+jD0="
)
VECTOR_FORM_SIG = (
    "1PdnuG93aoE7EClE1p8sL2/z9udKR12dyQib4o2qmwWgIBPBofIVVXxEu2Ex4UUKHo4Ygi6HleSboF8eVqSCyUoR"
    "pvdH5CSYIY8HvpxzdBo="
)


def test_the_checksum_matches_the_literal_vectors() -> None:
    assert generate_signature(VECTOR_BODY, VECTOR_KEY, salt="aB3x") == VECTOR_BODY_SIG
    form = {"MID": "TESTMID00000000000000", "ORDERID": "ORDER_1"}
    assert generate_signature(form, VECTOR_KEY, salt="aB3x") == VECTOR_FORM_SIG
    assert verify_signature(VECTOR_BODY, VECTOR_KEY, VECTOR_BODY_SIG)


@pytest.mark.parametrize(
    "params",
    [
        VECTOR_BODY,
        {"ORDERID": "o-1", "MID": "M1", "TXNAMOUNT": "10.00"},
        {"B": "null", "A": "NULL", "C": "x|y", "D": ""},  # "null" in any case counts as ""
    ],
)
def test_the_official_paytmchecksum_and_ours_verify_each_other(params: Any) -> None:
    theirs = generateSignature(dict(params) if isinstance(params, dict) else params, VECTOR_KEY)
    assert verify_signature(params, VECTOR_KEY, theirs)
    ours = generate_signature(params, VECTOR_KEY)
    assert verifySignature(dict(params) if isinstance(params, dict) else params, VECTOR_KEY, ours)


def test_form_values_are_joined_in_sorted_key_order_without_the_checksum() -> None:
    fields = {"b": "2", "A": "1", "a": None, "CHECKSUMHASH": "zzz"}
    assert params_text(fields) == "1||2"  # "A" < "a" < "b"; None is ""


@pytest.mark.parametrize(
    ("params", "key", "checksum"),
    [
        (VECTOR_BODY + " ", VECTOR_KEY, VECTOR_BODY_SIG),  # the text changed
        (VECTOR_BODY, "PONMLKJIHGFEDCBA", VECTOR_BODY_SIG),  # another key
        (VECTOR_BODY, VECTOR_KEY, "not base64 at all!"),
        (VECTOR_BODY, VECTOR_KEY, "QUJD"),  # base64, not whole AES blocks
        (VECTOR_BODY, VECTOR_KEY, ""),
        (VECTOR_BODY, "short", VECTOR_BODY_SIG),  # no AES key at all
    ],
)
def test_a_wrong_checksum_does_not_verify(params: str, key: str, checksum: str) -> None:
    assert not verify_signature(params, key, checksum)


def test_a_merchant_key_that_is_no_aes_key_is_refused_by_the_account_model() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        PaytmAccount(mid="M1", merchant_key="too-short")


# --- the requests ---------------------------------------------------------------------


def envelope(request: httpx.Request) -> tuple[str, dict[str, Any], str]:
    """The body's JSON text as sent, the body, and head.signature."""
    raw = request.content.decode()
    parsed = json.loads(raw)
    text = raw[len('{"body":') : raw.index(',"head":')]
    assert json.loads(text) == parsed["body"]
    return text, parsed["body"], parsed["head"]["signature"]


def test_initiate_transaction_is_paytms_shape_and_signed_over_the_exact_body() -> None:
    notes = {"invoice_id": "inv-1", "customer_phone": "+919876543210", "customer_email": "p@x.in"}
    payload = order(notes=notes).model_copy(
        update={"amount_minor": 150_050, "callback_url": "https://hub.example/webhooks/paytm/t1"}
    )
    request = ADAPTER.build_request(command("paytm", payload), payload, T1, BASE)
    assert request.method == "POST"
    assert request.url.path == "/theia/api/v1/initiateTransaction"
    assert dict(request.url.params) == {"mid": ACCOUNT.mid, "orderId": "rcpt-1"}
    assert request.headers["content-type"] == "application/json"
    text, body, signature = envelope(request)
    assert verifySignature(text, KEY, signature)  # the official utility accepts it
    assert body["requestType"] == "Payment"
    assert (body["mid"], body["websiteName"], body["orderId"]) == (
        ACCOUNT.mid,
        "WEBSTAGING",
        "rcpt-1",
    )
    assert body["txnAmount"] == {"value": "1500.50", "currency": "INR"}
    assert body["callbackUrl"] == "https://hub.example/webhooks/paytm/t1"
    assert body["userInfo"]["mobile"] == "9876543210"
    assert body["userInfo"]["email"] == "p@x.in"
    assert body["userInfo"]["custId"].startswith("hub_")


def test_without_a_callback_url_the_dashboards_is_used_and_a_bad_phone_is_left_out() -> None:
    payload = order(notes={"customer_phone": "12345"})
    request = ADAPTER.build_request(command("paytm", payload), payload, T1, BASE)
    _, body, _ = envelope(request)
    assert "callbackUrl" not in body
    assert set(body["userInfo"]) == {"custId"}


def test_a_receipt_paytm_would_refuse_as_order_id_is_hashed_deterministically() -> None:
    assert paytm_id("INV/2024/007") == paytm_id("INV/2024/007")
    assert paytm_id("INV/2024/007").startswith("hub_")
    assert len(paytm_id("x" * 60)) == 44
    assert paytm_id("fee-2024_07@school") == "fee-2024_07@school"


def test_the_status_query_is_signed_and_names_the_order() -> None:
    payload = FetchPaymentStatus(order_id="rcpt-1")
    request = ADAPTER.build_request(command("paytm", payload), payload, T1, BASE + "/")
    assert str(request.url) == "https://secure.paytmpayments.com/v3/order/status"
    text, body, signature = envelope(request)
    assert body == {"mid": ACCOUNT.mid, "orderId": "rcpt-1"}
    assert verifySignature(text, KEY, signature)


def test_the_refund_carries_a_ref_id_from_the_idempotency_key() -> None:
    payload = RefundPayment(
        payment_id="TXN1", order_id="rcpt-1", amount_minor=50_000, currency="INR"
    )
    request = ADAPTER.build_request(
        command("paytm", payload, key="refund-key-1"), payload, T1, BASE
    )
    assert request.url.path == "/refund/apply"
    text, body, signature = envelope(request)
    assert body == {
        "mid": ACCOUNT.mid,
        "txnType": "REFUND",
        "orderId": "rcpt-1",
        "txnId": "TXN1",
        "refId": "refund-key-1",
        "refundAmount": "500.00",
    }
    assert verifySignature(text, KEY, signature)
    odd = ADAPTER.build_request(
        command("paytm", payload, key="a key with spaces"), payload, T1, BASE
    )
    assert envelope(odd)[1]["refId"].startswith("hubrf_")


# --- the classification -----------------------------------------------------------------


def answered(request: httpx.Request, status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json={"head": {"version": "v1"}, "body": body}, request=request)


def info(status: str, code: str, message: str) -> dict[str, Any]:
    return {"resultInfo": {"resultStatus": status, "resultCode": code, "resultMsg": message}}


def initiate_request() -> httpx.Request:
    payload = order()
    return ADAPTER.build_request(command("paytm", payload), payload, T1, "http://sim/paytm")


def test_a_token_is_a_delivered_order_with_the_payment_page() -> None:
    body = {**info("S", "0000", "Success"), "txnToken": "tok123", "authenticated": False}
    outcome = ADAPTER.classify(answered(initiate_request(), 200, body))
    assert outcome == Delivered(
        "rcpt-1",
        200,
        {
            "order_id": "rcpt-1",
            "txn_token": "tok123",
            "payment_url": (
                f"http://sim/paytm/theia/api/v1/showPaymentPage?mid={ACCOUNT.mid}&orderId=rcpt-1"
            ),
            "payment_form": "POST mid, orderId, txnToken",
        },
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, info("F", "334", "Duplicate Order Id"), Rejected(
            "Duplicate Order Id: orderId already initiated; its token cannot be fetched again",
            200, "334")),
        (200, info("F", "227", "Checksum provided is invalid"),
         Rejected("Checksum provided is invalid", 200, "227")),
        (200, info("F", "501", "System Error"), RetryLater("System Error", 200, "501")),
        (200, info("S", "0000", "Success"),  # no token: nothing a payer could use
         Rejected("unexpected initiateTransaction answer: S", 200)),
        (503, info("F", "501", "System Error"), RetryLater("System Error", 503, "501")),
        (429, {}, RetryLater("Too Many Requests", 429)),
        (504, {}, RetryLater("Gateway Timeout", 504)),
        (400, info("F", "400", "Bad Request"), Rejected("Bad Request", 400, "400")),
    ],
)  # fmt: skip
def test_initiate_failures_are_classified_by_result_code(
    status: int, body: dict[str, Any], expected: object
) -> None:
    assert ADAPTER.classify(answered(initiate_request(), status, body)) == expected


def status_request(order_id: str = "rcpt-1") -> httpx.Request:
    payload = FetchPaymentStatus(order_id=order_id)
    return ADAPTER.build_request(command("paytm", payload), payload, T1, BASE)


def paid(
    status: str = "TXN_SUCCESS", code: str = "01", message: str = "Txn Success"
) -> dict[str, Any]:
    return {
        **info(status, code, message),
        "txnId": "20240115111212800110168000000000001",
        "bankTxnId": "777001234567",
        "orderId": "rcpt-1",
        "txnAmount": "1500.50",
        "txnType": "SALE",
        "paymentMode": "UPI",
        "mid": ACCOUNT.mid,
    }


def snapshot_of(outcome: object) -> PaymentSnapshot:
    assert isinstance(outcome, Delivered)
    found = PaymentSnapshot.from_details(outcome.details)
    assert found is not None
    return found


def test_a_successful_order_status_is_a_captured_snapshot_with_the_txn_id() -> None:
    outcome = ADAPTER.classify(answered(status_request(), 200, paid()))
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref == "rcpt-1"
    assert snapshot_of(outcome) == PaymentSnapshot(
        status="CAPTURED",
        order_id="rcpt-1",
        payment_id="20240115111212800110168000000000001",
        amount_minor=150_050,
        currency="INR",
        method="UPI",
    )


def test_a_failed_order_status_carries_paytms_code_and_message() -> None:
    body = paid("TXN_FAILURE", "227", "Your payment has been declined by your bank.")
    snap = snapshot_of(ADAPTER.classify(answered(status_request(), 200, body)))
    assert (snap.status, snap.error_code) == ("FAILED", "227")
    assert snap.error_description == "Your payment has been declined by your bank."


def test_pending_and_unknown_orders_are_not_settled() -> None:
    pending = snapshot_of(
        ADAPTER.classify(answered(status_request(), 200, info("PENDING", "402", "wait")))
    )
    assert (pending.status, pending.order_id, pending.payment_id) == ("PENDING", "rcpt-1", "")
    body = info("TXN_FAILURE", "331", "No Record Found")
    unknown = snapshot_of(ADAPTER.classify(answered(status_request("nope"), 200, body)))
    assert (unknown.status, unknown.order_id) == ("NOT_FOUND", "nope")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, info("F", "227", "Checksum provided is invalid"),
         Rejected("Checksum provided is invalid", 200, "227")),
        (200, info("F", "501", "System Error"), RetryLater("System Error", 200, "501")),
        (502, {}, RetryLater("Bad Gateway", 502)),
        (200, {**paid(), "txnAmount": "a lot"},
         Rejected("txnAmount 'a lot' is not a number", 200, "01")),
    ],
)  # fmt: skip
def test_status_failures_are_classified(
    status: int, body: dict[str, Any], expected: object
) -> None:
    assert ADAPTER.classify(answered(status_request(), status, body)) == expected


def refund_request() -> httpx.Request:
    payload = RefundPayment(
        payment_id="TXN1", order_id="rcpt-1", amount_minor=50_000, currency="INR"
    )
    return ADAPTER.build_request(command("paytm", payload, key="rf-1"), payload, T1, BASE)


def test_an_accepted_refund_is_delivered_under_its_ref_id() -> None:
    body = {
        **info("PENDING", "601", "Refund request was raised"),
        "refId": "rf-1",
        "refundId": "R9",
        "refundAmount": "500.00",
    }
    assert ADAPTER.classify(answered(refund_request(), 200, body)) == Delivered(
        "rf-1",
        200,
        {
            "ref_id": "rf-1",
            "refund_id": "R9",
            "refund_status": "PENDING",
            "refund_amount": "500.00",
        },
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # The same refId again (a retry after a lost answer): the refund exists.
        (info("TXN_FAILURE", "617", "Refund Already Raised"), Delivered(
            "rf-1", 200,
            {"ref_id": "rf-1", "refund_id": "", "refund_status": "ALREADY_RAISED",
             "refund_amount": ""})),
        (info("TXN_FAILURE", "619", "Invalid refund amount"),
         Rejected("Invalid refund amount", 200, "619")),
        (info("TXN_FAILURE", "626", "Another Refund on same order is already in Progress"),
         RetryLater("Another Refund on same order is already in Progress", 200, "626")),
        (info("F", "227", "Checksum provided is invalid"),
         Rejected("Checksum provided is invalid", 200, "227")),
    ],
)  # fmt: skip
def test_refund_answers_are_classified_by_result_code(
    body: dict[str, Any], expected: object
) -> None:
    assert ADAPTER.classify(answered(refund_request(), 200, body)) == expected


def test_the_probe_reads_paytms_200_refusals() -> None:
    request = ADAPTER.probe_request(T1, None, BASE)
    assert json.loads(request.content)["body"] == {"mid": ACCOUNT.mid, "orderId": "hub_probe_order"}
    refused = answered(request, 200, info("F", "227", "Checksum provided is invalid"))
    assert ADAPTER.probe_answer(refused) == ProbeResult(
        "auth_failed", "200 from paytm: Checksum provided is invalid (227)", 200
    )
    down = answered(request, 200, info("F", "501", "System Error"))
    assert ADAPTER.probe_answer(down) == ProbeResult(
        "unreachable", "provider unavailable: 200 from paytm: System Error (501)", 200
    )
    assert (
        ADAPTER.probe_answer(answered(request, 200, info("TXN_FAILURE", "331", "No Record Found")))
        is None
    )


# --- the callback verifier -------------------------------------------------------------------


def callback_fields(**overrides: str) -> dict[str, str]:
    fields = {
        "BANKNAME": "",
        "BANKTXNID": "777001234567",
        "CURRENCY": "INR",
        "GATEWAYNAME": "PPBL",
        "MID": ACCOUNT.mid,
        "ORDERID": "rcpt-1",
        "PAYMENTMODE": "UPI",
        "RESPCODE": "01",
        "RESPMSG": "Txn Success",
        "STATUS": "TXN_SUCCESS",
        "TXNAMOUNT": "1500.50",
        "TXNDATE": "2024-01-15 12:30:45.0",
        "TXNID": "20240115111212800110168000000000001",
    }
    return {**fields, **overrides}


def oracle_signed(fields: dict[str, str], key: str = KEY) -> bytes:
    """The callback body signed by Paytm's own utility, not by the code under test."""
    return urlencode({**fields, "CHECKSUMHASH": generateSignature(dict(fields), key)}).encode()


FORM_HEADERS = {"content-type": "application/x-www-form-urlencoded"}


def test_a_callback_signed_by_paytms_utility_verifies() -> None:
    assert VERIFIER.verify(oracle_signed(callback_fields()), FORM_HEADERS, KEY)
    ours = signed_form(callback_fields(), KEY)
    fields = dict(part.split("=", 1) for part in ours.decode().split("&"))
    assert "CHECKSUMHASH" in fields
    assert VERIFIER.signed_headers(ours, KEY) == {}
    assert VERIFIER.verify(ours, FORM_HEADERS, KEY)


def tampered_amount() -> bytes:
    body = oracle_signed(callback_fields())
    return body.replace(b"TXNAMOUNT=1500.50", b"TXNAMOUNT=1500.60")  # one byte


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (tampered_amount(), KEY),
        (oracle_signed(callback_fields()), "PONMLKJIHGFEDCBA"),  # wrong key
        (urlencode(callback_fields()).encode(), KEY),  # no CHECKSUMHASH
        (urlencode({**callback_fields(), "CHECKSUMHASH": "garbled=="}).encode(), KEY),
        (urlencode({**callback_fields(), "CHECKSUMHASH": ""}).encode(), KEY),
        (b"\xff\xfe", KEY),  # not UTF-8
        (b"", KEY),
    ],
)
def test_bad_callbacks_are_refused(body: bytes, key: str) -> None:
    assert not VERIFIER.verify(body, FORM_HEADERS, key)


def delivery(body: bytes, headers: dict[str, str] = FORM_HEADERS) -> Delivery:
    return Delivery("POST", "http://ingress.test/webhooks/paytm/t1", {}, headers, body, "127.0.0.1")


WEBHOOK_KEY = WebhookKey("paytm-primary", KEY, ACCOUNT)


def test_the_ingress_accepts_a_signed_callback_as_a_raw_webhook() -> None:
    body = oracle_signed(callback_fields())
    raw = accept("paytm", "t1", [WEBHOOK_KEY], delivery(body))
    assert isinstance(raw, RawWebhook)
    assert raw.body == body
    assert raw.account == "paytm-primary"
    assert raw.provider_event_id == "rcpt-1:20240115111212800110168000000000001:TXN_SUCCESS"
    assert raw.provider_event_type == "TXN_SUCCESS"


@pytest.mark.parametrize(
    "body",
    [
        tampered_amount(),
        urlencode(callback_fields()).encode(),  # no CHECKSUMHASH
        # Signed with this key but for another MID: not this account's callback.
        oracle_signed(callback_fields(MID="OTHERMID000000000000")),
    ],
)
def test_the_ingress_refuses_a_bad_callback_with_401(body: bytes) -> None:
    rejected = accept("paytm", "t1", [WEBHOOK_KEY], delivery(body))
    assert rejected == Rejection(401, "signature does not match the body", security=True)


def test_a_json_callback_is_refused_with_415() -> None:
    rejected = check_headers({"content-type": "application/json"}, 1_000_000, "form")
    assert rejected == Rejection(415, "content type must be application/x-www-form-urlencoded")


# --- the normalizer ------------------------------------------------------------------------


def raw_webhook(fields: dict[str, str]) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="paytm",
        provider_event_id="rcpt-1:TXN:STATUS",
        content_type="application/x-www-form-urlencoded",
        http_headers={},
        body=urlencode(fields).encode(),
        received_at=datetime(2024, 1, 15, 7, 0, tzinfo=UTC),
    )


def test_a_success_callback_is_a_captured_payment() -> None:
    fields = callback_fields()
    event = normalize_paytm(raw_webhook(fields), fields)
    assert event is not None
    assert not isinstance(event, FollowUp)
    assert event.kind is PaymentEventKind.CAPTURED
    assert (event.payment_id, event.order_id) == ("20240115111212800110168000000000001", "rcpt-1")
    assert (event.amount_minor, event.currency, event.method) == (150_050, "INR", "UPI")
    assert (event.error_code, event.error_description) == (None, None)
    assert event.provider_created_at is not None
    assert event.provider_created_at.isoformat() == "2024-01-15T12:30:45+05:30"


def test_a_failure_callback_is_a_failed_payment_with_respcode_and_respmsg() -> None:
    fields = callback_fields(
        STATUS="TXN_FAILURE", RESPCODE="141", RESPMSG="User has not completed transaction."
    )
    event = normalize_paytm(raw_webhook(fields), fields)
    assert event is not None
    assert not isinstance(event, FollowUp)
    assert event.kind is PaymentEventKind.FAILED
    assert (event.error_code, event.error_description) == (
        "141",
        "User has not completed transaction.",
    )


def test_a_pending_callback_asks_for_the_order_status() -> None:
    fields = callback_fields(STATUS="PENDING", RESPCODE="402")
    assert normalize_paytm(raw_webhook(fields), fields) == FollowUp(
        "fetch_status", "rcpt-1", "pending"
    )


def test_a_status_the_hub_does_not_act_on_is_ignored() -> None:
    fields = callback_fields(STATUS="OPEN")
    assert normalize_paytm(raw_webhook(fields), fields) is None


@pytest.mark.parametrize(
    "fields",
    [
        callback_fields(TXNID=""),
        callback_fields(ORDERID=""),
        callback_fields(TXNAMOUNT="a lot"),
        callback_fields(TXNAMOUNT="10.005"),
        callback_fields(STATUS=""),
        {k: v for k, v in callback_fields().items() if k != "TXNAMOUNT"},
        {"STATUS": "PENDING"},
    ],
)
def test_a_malformed_callback_is_a_normalization_error(fields: dict[str, str]) -> None:
    with pytest.raises(NormalizationError):
        normalize_paytm(raw_webhook(fields), fields)
