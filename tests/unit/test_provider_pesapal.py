"""Pesapal API 3.0: token flow, requests, HTTP-200 errors, the IPN token, the normalizer."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from adapter_support import FakeClock
from connector_support import command, make_tenants, order, tenant
from tenant_accounts import primary

from core.settings import Settings
from providers.base import AuthError, Delivered, Rejected, RetryLater
from providers.google_auth import TokenUnavailableError
from providers.payments import FollowUp, PaymentSnapshot
from providers.pesapal import (
    Pesapal,
    PesapalAccount,
    PesapalVerifier,
    ipn_url,
    merchant_reference_for,
    normalize_pesapal,
    pesapal_event_id_at,
    register_ipn,
    status_snapshot,
)
from providers.pesapal_auth import PesapalAuths
from providers.spec import Delivery, NormalizationError
from schemas.events import (
    CreatePaymentOrder,
    EventHeader,
    FetchPaymentStatus,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import (
    Rejection,
    WebhookKey,
    accept,
    acknowledgement,
    check_route,
    webhooks_of,
)

pytestmark = pytest.mark.anyio

BASE = "https://pay.pesapal.com/v3"
TOKEN_URL = BASE + "/api/Auth/RequestToken"
SETTINGS = Settings(provider_base_urls={"pesapal": BASE})
TENANTS = make_tenants()
T1 = tenant(TENANTS)
ACCOUNT = primary(T1, PesapalAccount)
ADAPTER = Pesapal()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def token_answer(token: str = "tok-1") -> httpx.Response:
    expiry = "2099-01-01T00:00:00.0000000Z"
    body = {"token": token, "expiryDate": expiry, "error": None, "status": "200", "message": "ok"}
    return httpx.Response(200, json=body)


class FakePesapal:
    """Token endpoint plus API behind one MockTransport; each side answers from a script."""

    def __init__(
        self,
        api: Callable[[httpx.Request], httpx.Response],
        token: Callable[[httpx.Request], httpx.Response] | None = None,
    ) -> None:
        self.api, self.issued = api, 0
        self.token = token or self.issue
        self.requests: list[httpx.Request] = []

    def issue(self, request: httpx.Request) -> httpx.Response:
        self.issued += 1
        return token_answer(f"tok-{self.issued}")

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.token(request) if str(request.url) == TOKEN_URL else self.api(request)

    async def send(self, request: httpx.Request, auth: httpx.Auth | None) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(self.handle)) as client:
            return await client.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT)


def answer(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


def create(payload: CreatePaymentOrder | None = None) -> httpx.Request:
    payload = payload or order(notes={"invoice_id": "inv-1", "customer_phone": "0712000000"})
    return ADAPTER.build_request(command("pesapal", payload), payload, T1, BASE)


def status_request(tracking: str = "trk-1") -> httpx.Request:
    payload = FetchPaymentStatus(order_id=tracking, reason="ipn")
    return ADAPTER.build_request(command("pesapal", payload), payload, T1, BASE)


# --- the token flow ------------------------------------------------------------------------


async def test_one_token_serves_several_calls_and_is_sent_as_bearer() -> None:
    fake = FakePesapal(answer(200, {"status": "200"}))
    auth = Pesapal().auth(T1, SETTINGS)
    for _ in range(2):
        await fake.send(status_request(), auth)
    token_calls = [r for r in fake.requests if str(r.url) == TOKEN_URL]
    assert len(token_calls) == 1
    assert json.loads(token_calls[0].content) == {
        "consumer_key": ACCOUNT.consumer_key,
        "consumer_secret": ACCOUNT.consumer_secret.get_secret_value(),
    }
    assert [r.headers["authorization"] for r in fake.requests[1:]] == ["Bearer tok-1"] * 2


async def test_an_expired_token_is_fetched_again() -> None:
    clock = FakeClock()
    adapter = Pesapal(PesapalAuths(clock))
    fake = FakePesapal(answer(200, {"status": "200"}))
    auth = adapter.auth(T1, SETTINGS)
    await fake.send(status_request(), auth)
    clock.advance(250)  # five-minute tokens are refreshed a minute early
    await fake.send(status_request(), auth)
    assert fake.issued == 2
    assert fake.requests[-1].headers["authorization"] == "Bearer tok-2"


async def test_a_401_from_the_api_fetches_a_fresh_token_and_resends_once() -> None:
    statuses = iter([401, 200])
    fake = FakePesapal(lambda r: httpx.Response(next(statuses), json={"status": "200"}))
    response = await fake.send(status_request(), Pesapal().auth(T1, SETTINGS))
    assert response.status_code == 200
    assert fake.issued == 2


async def test_refused_credentials_are_an_auth_error_even_with_http_200() -> None:
    refused = {
        "token": None,
        "error": {
            "error_type": "authentication_error",
            "code": "invalid_consumer_key_or_secret_provided",
            "message": "Invalid consumer_key or consumer_secret provided",
        },
        "status": "500",
    }
    fake = FakePesapal(answer(200, {}), token=answer(200, refused))
    with pytest.raises(AuthError, match="Invalid consumer_key"):
        await fake.send(status_request(), Pesapal().auth(T1, SETTINGS))
    assert len(fake.requests) == 1  # the API was never called


async def test_a_token_endpoint_outage_is_retryable() -> None:
    fake = FakePesapal(answer(200, {}), token=answer(503, {"error": None, "status": "503"}))
    with pytest.raises(TokenUnavailableError):
        await fake.send(status_request(), Pesapal().auth(T1, SETTINGS))


def test_the_auth_flow_never_shows_the_secret() -> None:
    auth = Pesapal().auth(T1, SETTINGS)
    assert ACCOUNT.consumer_secret.get_secret_value() not in repr(auth)


# --- create ---------------------------------------------------------------------------------


def test_the_order_request_is_pesapals_shape() -> None:
    request = create()
    assert (request.method, str(request.url)) == (
        "POST",
        "https://pay.pesapal.com/v3/api/Transactions/SubmitOrderRequest",
    )
    assert json.loads(request.content, parse_float=Decimal) == {
        "id": "rcpt-1",
        "currency": "INR",
        "amount": 1500,
        "description": "School fees, invoice inv-1",
        "callback_url": ACCOUNT.callback_url,
        "notification_id": ACCOUNT.ipn_id,
        "billing_address": {"phone_number": "0712000000"},
    }


def test_the_return_url_wins_and_kenyan_cents_are_kept() -> None:
    payload = CreatePaymentOrder(
        amount_minor=150_050,
        currency="KES",
        receipt="r 2",
        notes={"customer_email": "p@example.com", "customer_name": "Wanjiru"},
        return_url="https://school.example/back",
    )
    body = json.loads(create(payload).content, parse_float=Decimal)
    assert body["callback_url"] == "https://school.example/back"
    assert body["amount"] == Decimal("1500.5")
    assert body["id"] == merchant_reference_for("r 2")
    assert body["billing_address"] == {"email_address": "p@example.com", "first_name": "Wanjiru"}


def test_a_merchant_reference_fits_pesapals_fifty_characters() -> None:
    assert merchant_reference_for("fee-2024_07:1") == "fee-2024_07:1"
    hashed = merchant_reference_for("x" * 51)
    assert hashed.startswith("hub-")
    assert len(hashed) == 44
    assert hashed == merchant_reference_for("x" * 51)


def classify(request: httpx.Request, status: int, body: Any) -> object:
    response = httpx.Response(status, json=body, request=request)
    return ADAPTER.classify(response)


def test_a_submitted_order_is_delivered_under_its_tracking_id() -> None:
    body = {
        "order_tracking_id": "b945e4af-80a5-4ec1-8706-e03f8332fb04",
        "merchant_reference": "rcpt-1",
        "redirect_url": "https://pay.pesapal.com/iframe/PesapalIframe3/Index?OrderTrackingId=b9",
        "error": None,
        "status": "200",
    }
    assert classify(create(), 200, body) == Delivered(
        "b945e4af-80a5-4ec1-8706-e03f8332fb04",
        200,
        {"payment_url": body["redirect_url"], "merchant_reference": "rcpt-1"},
    )


def pesapal_error(code: str, message: str, status: str) -> dict[str, Any]:
    return {
        "error": {"error_type": "api_error", "code": code, "message": message},
        "status": status,
    }


@pytest.mark.parametrize(
    ("http", "body", "expected"),
    [
        (200, pesapal_error("invalid_notification_id", "not registered", "400"),
         Rejected("not registered", 200, "invalid_notification_id")),
        (200, pesapal_error("internal_error", "try later", "500"),
         RetryLater("try later", 200, "internal_error")),
        (401, pesapal_error("invalid_api_credentials_provided", "Invalid Access Token", "401"),
         Rejected("Invalid Access Token", 401, "invalid_api_credentials_provided")),
        (503, pesapal_error("internal_error", "Service Unavailable", "503"),
         RetryLater("Service Unavailable", 503, "internal_error")),
        (200, {"status": "200", "error": None}, Rejected(
            "pesapal answered without an order_tracking_id and redirect_url", 200)),
    ],
)  # fmt: skip
def test_order_failures_are_read_from_the_body(http: int, body: Any, expected: object) -> None:
    assert classify(create(), http, body) == expected


# --- status ------------------------------------------------------------------------------------


def status_body(code: int, described: str, **overrides: Any) -> dict[str, Any]:
    return {
        "payment_method": "MpesaKE",
        "amount": 1500.5,
        "created_date": "2024-07-01T10:00:00",
        "confirmation_code": "QGH7XK2L9P",
        "payment_status_description": described,
        "description": "Unable to authorize" if code == 2 else "",
        "message": "Request processed successfully",
        "status_code": code,
        "merchant_reference": "rcpt-1",
        "currency": "KES",
        "error": {"error_type": None, "code": None, "message": None, "call_back_url": None},
        "status": "200",
        **overrides,
    }


def test_the_status_query_names_the_tracking_id() -> None:
    request = status_request("trk-9")
    assert str(request.url) == (
        "https://pay.pesapal.com/v3/api/Transactions/GetTransactionStatus?orderTrackingId=trk-9"
    )


def test_a_completed_payment_is_captured_under_its_confirmation_code() -> None:
    outcome = classify(status_request(), 200, status_body(1, "Completed"))
    assert isinstance(outcome, Delivered)
    assert PaymentSnapshot.from_details(outcome.details) == PaymentSnapshot(
        status="CAPTURED",
        order_id="trk-1",
        payment_id="QGH7XK2L9P",
        amount_minor=150_050,
        currency="KES",
        method="MpesaKE",
    )


@pytest.mark.parametrize(
    ("body", "status", "payment_id"),
    [
        (status_body(2, "Failed"), "FAILED", "trk-1"),
        (status_body(0, "INVALID", payment_method="", confirmation_code=""), "PENDING", ""),
        (status_body(0, "INVALID", confirmation_code=""), "FAILED", "trk-1"),
        (status_body(3, "Reversed"), "PENDING", "QGH7XK2L9P"),
        (status_body(1, "Completed", confirmation_code=""), "PENDING", ""),
    ],
)
def test_other_states_of_an_order(body: dict[str, Any], status: str, payment_id: str) -> None:
    snapshot = status_snapshot("trk-1", body)
    assert (snapshot.status, snapshot.payment_id) == (status, payment_id)


def test_an_amount_in_shillings_of_uganda_has_no_cents() -> None:
    body = status_body(1, "Completed", amount=50000, currency="UGX")
    assert status_snapshot("trk-1", body).amount_minor == 50_000


def test_a_status_error_in_a_200_is_classified_by_its_status_text() -> None:
    failed = pesapal_error("internal_error", "try later", "500")
    assert classify(status_request(), 200, failed) == RetryLater("try later", 200, "internal_error")
    no_currency = status_body(1, "Completed", currency=None)
    assert isinstance(classify(status_request(), 200, no_currency), Rejected)


# --- refund -------------------------------------------------------------------------------------


def test_a_refund_names_the_confirmation_code() -> None:
    payload = RefundPayment(
        payment_id="QGH7XK2L9P", order_id="trk-1", amount_minor=50_000, currency="KES",
        reason="Paid twice",
    )  # fmt: skip
    request = ADAPTER.build_request(command("pesapal", payload), payload, T1, BASE)
    assert str(request.url) == "https://pay.pesapal.com/v3/api/Transactions/RefundRequest"
    assert json.loads(request.content) == {
        "confirmation_code": "QGH7XK2L9P",
        "amount": "500.00",
        "username": "integration-hub",
        "remarks": "Paid twice",
    }
    ok = {"status": "200", "message": "Refund request successfully"}
    assert classify(request, 200, ok) == Delivered(
        "QGH7XK2L9P", 200, {"message": "Refund request successfully"}
    )
    refused = pesapal_error("refund_failed", "already requested", "500")
    assert isinstance(classify(request, 200, refused), RetryLater)
    invalid = pesapal_error("refund_failed", "bad amount", "400")
    assert classify(request, 200, invalid) == Rejected("bad amount", 200, "refund_failed")


def test_the_probe_lists_the_ipns() -> None:
    request = ADAPTER.probe_request(T1, None, BASE)
    assert str(request.url) == "https://pay.pesapal.com/v3/api/URLSetup/GetIpnList"


# --- IPN registration -------------------------------------------------------------------------


async def test_register_ipn_registers_a_get_url_carrying_the_token() -> None:
    registered = {"url": "u", "ipn_id": "ipn-42", "error": None, "status": "200"}
    fake = FakePesapal(answer(200, registered))
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as client:
        ipn_id = await register_ipn(
            client, ACCOUNT, BASE, "https://hub.example/webhooks/pesapal/t1"
        )
    assert ipn_id == "ipn-42"
    sent = json.loads(fake.requests[-1].content)
    assert sent["ipn_notification_type"] == "GET"
    assert sent["url"] == ipn_url(
        "https://hub.example/webhooks/pesapal/t1", ACCOUNT.ipn_token.get_secret_value()
    )
    assert dict(parse_qsl(urlsplit(sent["url"]).query)) == {
        "token": ACCOUNT.ipn_token.get_secret_value()
    }


# --- the IPN at the ingress ---------------------------------------------------------------------

TOKEN = ACCOUNT.ipn_token.get_secret_value()
KEY = WebhookKey("pesapal-primary", TOKEN, ACCOUNT)
IDS = {
    "OrderTrackingId": "trk-1",
    "OrderMerchantReference": "rcpt-1",
    "OrderNotificationType": "IPNCHANGE",
}


def ipn(query: dict[str, str], method: str = "GET") -> Delivery:
    url = "http://ingress.test/webhooks/pesapal/t1?" + "&".join(
        f"{k}={v}" for k, v in query.items()
    )
    return Delivery(method, url, query, {}, b"", "127.0.0.1")


def test_an_ipn_with_the_accounts_token_is_accepted_with_its_query_as_body() -> None:
    assert check_route("pesapal", "t1", TENANTS, "GET") == [KEY]
    raw = accept("pesapal", "t1", [KEY], ipn({**IDS, "token": TOKEN}))
    assert isinstance(raw, RawWebhook)
    assert dict(parse_qsl(raw.body.decode()))["OrderTrackingId"] == "trk-1"
    assert raw.provider_event_type == "IPNCHANGE"
    assert raw.provider_event_id.startswith("trk-1:IPNCHANGE:")
    webhooks = webhooks_of("pesapal")
    assert webhooks is not None
    assert acknowledgement(webhooks, raw) == {
        "orderNotificationType": "IPNCHANGE",
        "orderTrackingId": "trk-1",
        "orderMerchantReference": "rcpt-1",
        "status": 200,
    }


def test_each_ipn_delivery_gets_its_own_event_id() -> None:
    ticks = iter([1, 2])
    event_id = pesapal_event_id_at(lambda: next(ticks))
    assert event_id(IDS) == "trk-1:IPNCHANGE:1"
    assert event_id(IDS) == "trk-1:IPNCHANGE:2"
    assert event_id({"OrderNotificationType": "IPNCHANGE"}) is None


@pytest.mark.parametrize(
    "query",
    [IDS, {**IDS, "token": "not-the-token"}, {**IDS, "token": ""}, {**IDS, "token": TOKEN[:-1]}],
)
def test_an_ipn_without_the_right_token_is_refused(query: dict[str, str]) -> None:
    assert accept("pesapal", "t1", [KEY], ipn(query)) == Rejection(
        401, "signature does not match the body", security=True
    )


def test_a_post_ipn_is_not_taken() -> None:
    assert check_route("pesapal", "t1", TENANTS, "POST") == Rejection(
        405, "pesapal webhooks are GET"
    )
    assert not PesapalVerifier().verify_delivery(
        ipn({**IDS, "token": TOKEN}, "POST"), TOKEN, ACCOUNT
    )


# --- the normalizer ---------------------------------------------------------------------


def raw_ipn(fields: dict[str, str]) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="pesapal",
        provider_event_id="trk-1:IPNCHANGE:1",
        content_type="application/x-www-form-urlencoded",
        http_headers={},
        body="&".join(f"{k}={v}" for k, v in fields.items()).encode(),
        received_at=datetime(2024, 7, 1, tzinfo=UTC),
    )


def test_an_ipnchange_asks_for_the_status() -> None:
    assert normalize_pesapal(raw_ipn(IDS), dict(IDS)) == FollowUp("fetch_status", "trk-1", "ipn")


def test_other_notifications_are_ignored_and_one_without_an_id_is_an_error() -> None:
    recurring = {**IDS, "OrderNotificationType": "RECURRING"}
    assert normalize_pesapal(raw_ipn(recurring), recurring) is None
    missing = {"OrderNotificationType": "IPNCHANGE", "OrderTrackingId": " "}
    with pytest.raises(NormalizationError):
        normalize_pesapal(raw_ipn(missing), missing)
