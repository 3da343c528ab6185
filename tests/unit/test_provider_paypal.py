"""PayPal: the Orders v2 requests and their classification, the token flow, the certificate
webhook verifier (pure part and through the ingress's decision), and the normalizer."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from connector_support import command, make_tenants, order, tenant
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from tenant_accounts import primary

import providers
from core.settings import Settings
from providers.base import AuthError, Delivered, Rejected, RetryLater
from providers.payments import FollowUp, PaymentSnapshot, UnsupportedOperationError
from providers.paypal import PayPal, PayPalAccount, invoice_id_for, request_id
from providers.paypal_webhooks import (
    CertificateStore,
    PayPalVerifier,
    cert_url_allowed,
    load_certificate,
    minor_units,
    normalize_paypal,
    paypal_value,
    signature_valid,
    signed_message,
)
from providers.spec import Delivery, NormalizationError
from schemas.events import (
    CapturePayment,
    EventHeader,
    FetchPaymentStatus,
    PaymentEventKind,
    RawWebhook,
    RefundPayment,
)
from webhook_ingress.decision import Rejection, WebhookKey, accept

ADAPTER = PayPal()
T1 = tenant(make_tenants())
BASE = "https://api-m.paypal.com"
TOKEN_URL = "https://api-m.paypal.com/v1/oauth2/token"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
WEBHOOK_ID = "4JH86294D6297924G"


# --- what the adapter sends ------------------------------------------------------------


def usd_order(amount_minor: int = 123_450, currency: str = "USD") -> Any:
    return order(notes={"invoice_id": "inv-1", "request_id": "req-9"}).model_copy(
        update={
            "amount_minor": amount_minor,
            "currency": currency,
            "return_url": "https://r.example/ok",
        }
    )


def test_the_create_order_request_is_orders_v2_with_the_commands_request_id() -> None:
    payload = usd_order()
    request = ADAPTER.build_request(command("paypal", payload, key="key-42"), payload, T1, BASE)
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/v2/checkout/orders")
    assert request.headers["paypal-request-id"] == "key-42"
    assert "authorization" not in request.headers  # the token flow adds it
    assert json.loads(request.content) == {
        "intent": "CAPTURE",
        "purchase_units": [
            {
                "reference_id": "rcpt-1",
                "invoice_id": "rcpt-1",
                "custom_id": "inv-1",
                "amount": {"currency_code": "USD", "value": "1234.50"},
            }
        ],
        "payment_source": {
            "paypal": {
                "experience_context": {
                    "user_action": "PAY_NOW",
                    "shipping_preference": "NO_SHIPPING",
                    "return_url": "https://r.example/ok",
                    "cancel_url": "https://r.example/ok",
                }
            }
        },
    }


@pytest.mark.parametrize(
    ("minor", "currency", "value"),
    [
        (123_450, "USD", "1234.50"),
        (5, "EUR", "0.05"),
        (5000, "JPY", "5000"),
        (150_000, "HUF", "1500"),
    ],
)
def test_amounts_are_major_unit_strings_in_the_currencys_decimals(
    minor: int, currency: str, value: str
) -> None:
    assert paypal_value(minor, currency) == value
    assert minor_units(value, currency) == minor


def test_a_fraction_of_a_forint_is_rejected_before_sending() -> None:
    payload = usd_order(150_050, "HUF")
    with pytest.raises(UnsupportedOperationError):
        ADAPTER.build_request(command("paypal", payload), payload, T1, BASE)


def test_long_keys_and_receipts_are_hashed_to_fit_paypals_limits() -> None:
    assert len(request_id("k" * 200)) == 64
    assert request_id("short") == "short"
    assert invoice_id_for("r" * 200).startswith("hub_")
    assert invoice_id_for("fee-2024/07") == "fee-2024/07"


def test_capture_status_and_refund_requests() -> None:
    capture = CapturePayment(order_id="5O190127TN364715T")
    request = ADAPTER.build_request(command("paypal", capture, key="cap-1"), capture, T1, BASE)
    assert (request.method, str(request.url)) == (
        "POST",
        f"{BASE}/v2/checkout/orders/5O190127TN364715T/capture",
    )
    assert request.headers["paypal-request-id"] == "cap-1"
    status = FetchPaymentStatus(order_id="5O190127TN364715T")
    request = ADAPTER.build_request(command("paypal", status), status, T1, BASE)
    assert (request.method, str(request.url)) == (
        "GET",
        f"{BASE}/v2/checkout/orders/5O190127TN364715T",
    )
    refund = RefundPayment(
        payment_id="3C679366HH908993F",
        order_id="o",
        amount_minor=1000,
        currency="USD",
        reason="dup",
    )
    request = ADAPTER.build_request(command("paypal", refund, key="rf-1"), refund, T1, BASE)
    assert str(request.url) == f"{BASE}/v2/payments/captures/3C679366HH908993F/refund"
    assert request.headers["paypal-request-id"] == "rf-1"
    assert json.loads(request.content) == {
        "amount": {"currency_code": "USD", "value": "10.00"},
        "note_to_payer": "dup",
    }


# --- how answers are classified -------------------------------------------------------


def answer(
    status: int,
    body: dict[str, Any],
    path: str = "/v2/checkout/orders",
    operation: str = "payment.create_order",
) -> httpx.Response:
    request = httpx.Request("POST", f"{BASE}{path}")
    request.extensions = {"hub.operation": operation}
    return httpx.Response(status, json=body, request=request)


def pp_error(status_name: str, issue: str, description: str) -> dict[str, Any]:
    return {
        "name": status_name,
        "message": "m",
        "debug_id": "f1c2a3",
        "details": [{"issue": issue, "description": description}],
    }


def test_a_created_order_is_delivered_with_the_payer_action_url() -> None:
    body = {
        "id": "5O190127TN364715T",
        "status": "PAYER_ACTION_REQUIRED",
        "links": [
            {"href": f"{BASE}/v2/checkout/orders/5O190127TN364715T", "rel": "self"},
            {
                "href": "https://www.paypal.com/checkoutnow?token=5O190127TN364715T",
                "rel": "payer-action",
            },
        ],
    }
    assert ADAPTER.classify(answer(201, body)) == Delivered(
        "5O190127TN364715T",
        201,
        {
            "order_id": "5O190127TN364715T",
            "status": "PAYER_ACTION_REQUIRED",
            "payment_url": "https://www.paypal.com/checkoutnow?token=5O190127TN364715T",
        },
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, pp_error("INVALID_REQUEST", "INVALID_PARAMETER_SYNTAX", "bad value"),
         Rejected("bad value", 400, "INVALID_PARAMETER_SYNTAX")),
        (401, {"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed"},
         Rejected("Authentication failed", 401, "AUTHENTICATION_FAILURE")),
        (422, pp_error("UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION", "two places"),
         Rejected("two places", 422, "DECIMAL_PRECISION")),
        (429, {"name": "RATE_LIMIT_REACHED", "message": "Too many requests"},
         RetryLater("Too many requests", 429, "RATE_LIMIT_REACHED")),
        (503, {"name": "SERVICE_UNAVAILABLE", "message": "Service Unavailable."},
         RetryLater("Service Unavailable.", 503, "SERVICE_UNAVAILABLE")),
    ],
)  # fmt: skip
def test_failures_are_classified(status: int, body: dict[str, Any], expected: object) -> None:
    assert ADAPTER.classify(answer(status, body)) == expected


def completed_order(capture_status: str = "COMPLETED") -> dict[str, Any]:
    capture = {
        "id": "3C679366HH908993F",
        "status": capture_status,
        "amount": {"currency_code": "USD", "value": "100.00"},
    }
    return {
        "id": "5O190127TN364715T",
        "status": "COMPLETED",
        "purchase_units": [{"payments": {"captures": [capture]}}],
    }


def snapshot_of(outcome: object) -> PaymentSnapshot:
    assert isinstance(outcome, Delivered)
    found = PaymentSnapshot.from_details(outcome.details)
    assert found is not None
    return found


CAPTURE_PATH = "/v2/checkout/orders/5O190127TN364715T/capture"


def test_a_completed_capture_is_a_captured_snapshot_with_the_capture_id() -> None:
    found = snapshot_of(
        ADAPTER.classify(answer(201, completed_order(), CAPTURE_PATH, "payment.capture"))
    )
    assert found == PaymentSnapshot(
        "CAPTURED", "5O190127TN364715T", "3C679366HH908993F", 10_000, "USD", "paypal"
    )


def test_a_declined_instrument_is_a_failed_payment_not_a_failed_call() -> None:
    body = pp_error("UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED", "The instrument was declined")
    found = snapshot_of(ADAPTER.classify(answer(422, body, CAPTURE_PATH, "payment.capture")))
    assert (found.status, found.order_id, found.payment_id, found.error_code) == (
        "FAILED",
        "5O190127TN364715T",
        "5O190127TN364715T",
        "INSTRUMENT_DECLINED",
    )


def test_an_order_already_captured_is_captured_without_claiming_a_capture_id() -> None:
    body = pp_error("UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED", "Order already captured")
    found = snapshot_of(ADAPTER.classify(answer(422, body, CAPTURE_PATH, "payment.capture")))
    assert (found.status, found.payment_id) == ("CAPTURED", "")


@pytest.mark.parametrize(
    ("order_status", "expected"),
    [
        ("APPROVED", "AUTHORIZED"),
        ("PAYER_ACTION_REQUIRED", "PENDING"),
        ("CREATED", "PENDING"),
        ("VOIDED", "FAILED"),
    ],
)
def test_order_statuses_map_to_snapshots(order_status: str, expected: str) -> None:
    path = "/v2/checkout/orders/5O190127TN364715T"
    body = {"id": "5O190127TN364715T", "status": order_status}
    assert (
        snapshot_of(ADAPTER.classify(answer(200, body, path, "payment.fetch_status"))).status
        == expected
    )


def test_an_unknown_order_is_not_found() -> None:
    body = pp_error("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "no such id")
    path = "/v2/checkout/orders/NOPE"
    found = snapshot_of(ADAPTER.classify(answer(404, body, path, "payment.fetch_status")))
    assert (found.status, found.order_id) == ("NOT_FOUND", "NOPE")


# --- the token flow -------------------------------------------------------------------


def test_the_token_is_fetched_with_basic_auth_cached_and_refreshed_on_401() -> None:
    seen: list[tuple[str, str, bytes]] = []  # url, authorization, body as each was sent
    api_answers = iter([200, 401, 200])
    tokens = iter(["A21.first", "A21.second"])

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers["authorization"], request.content))
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": next(tokens), "expires_in": 32400})
        return httpx.Response(next(api_answers), json={"id": "x"})

    auth = PayPal().auth(T1, Settings())
    account = primary(T1, PayPalAccount)
    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        client.get(f"{BASE}/v2/checkout/orders/A", auth=auth)
        client.get(f"{BASE}/v2/checkout/orders/B", auth=auth)
    token_calls = [(auth, body) for url, auth, body in seen if url == TOKEN_URL]
    assert len(token_calls) == 2  # once, then once more after the 401
    expected = (
        "Basic "
        + base64.b64encode(
            f"{account.client_id}:{account.client_secret.get_secret_value()}".encode()
        ).decode()
    )
    assert token_calls[0] == (expected, b"grant_type=client_credentials")
    api = [auth for url, auth, _ in seen if url != TOKEN_URL]
    assert api == ["Bearer A21.first", "Bearer A21.first", "Bearer A21.second"]


def test_refused_credentials_at_the_token_endpoint_are_an_auth_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = {"error": "invalid_client", "error_description": "Client Authentication failed"}
        return httpx.Response(401, json=body)

    refused = pytest.raises(AuthError, match="invalid_client: Client Authentication failed")
    with httpx.Client(transport=httpx.MockTransport(handle)) as client, refused:
        client.get(f"{BASE}/v2/checkout/orders/A", auth=PayPal().auth(T1, Settings()))


# --- the certificate scheme -----------------------------------------------------------

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NOW = datetime.now(UTC)


def certificate_pem(key: rsa.RSAPrivateKey = KEY, *, expired: bool = False) -> bytes:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com")]
    )
    start = NOW - timedelta(days=400 if expired else 1)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(start).not_valid_after(start + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


PEM = certificate_pem()
BODY = json.dumps(
    {
        "id": "WH-1",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "resource": {"id": "3C679366HH908993F"},
    }
).encode()


def test_the_signed_message_ends_with_the_bodys_unsigned_crc32() -> None:
    # "123456789" is CRC-32's published check input: 0xCBF43926, above 2**31 (unsigned).
    message = signed_message(
        "dfb3be50-fd74-11e4-8bf3-77339302725b", "2015-05-18T15:45:13Z", WEBHOOK_ID, b"123456789"
    )
    assert message == (
        b"dfb3be50-fd74-11e4-8bf3-77339302725b|2015-05-18T15:45:13Z|4JH86294D6297924G|3421780262"
    )
    assert signed_message("i", "t", "w", b"") == b"i|t|w|0"


def headers_for(
    body: bytes = BODY,
    *,
    key: rsa.RSAPrivateKey = KEY,
    at: datetime = NOW,
    webhook_id: str = WEBHOOK_ID,
    **overrides: str,
) -> dict[str, str]:
    when = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    message = f"tid-1|{when}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()
    signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    headers = {
        "content-type": "application/json",
        "paypal-transmission-id": "tid-1",
        "paypal-transmission-time": when,
        "paypal-transmission-sig": signature,
        "paypal-cert-url": CERT_URL,
        "paypal-auth-algo": "SHA256withRSA",
    }
    return headers | overrides


class Fetches:
    def __init__(self, pem: bytes | None = PEM) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes | None:
        self.urls.append(url)
        return self.pem


def at_now() -> float:
    # The transmissions are signed at NOW (module import): the verifier's clock stays
    # there, however long the suite took to reach these tests.
    return NOW.timestamp()


def verifier(fetches: Fetches | None = None) -> PayPalVerifier:
    return PayPalVerifier(CertificateStore(fetches or Fetches()), clock=at_now)


def test_the_rsa_check_needs_the_certificates_key_and_validity() -> None:
    message = b"m"
    signature = base64.b64encode(KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    cert = load_certificate(PEM)
    assert cert is not None
    assert signature_valid(message, signature, cert, NOW)
    assert not signature_valid(b"n", signature, cert, NOW)
    assert not signature_valid(message, "not base64!", cert, NOW)
    expired = load_certificate(certificate_pem(expired=True))
    assert expired is not None
    assert not signature_valid(message, signature, expired, NOW)


def test_a_correctly_signed_transmission_verifies_and_the_cert_is_fetched_once() -> None:
    fetches = Fetches()
    check = verifier(fetches)
    assert check.verify_headers(BODY, headers_for(), WEBHOOK_ID)
    assert check.verify_headers(BODY, headers_for(), WEBHOOK_ID)
    assert fetches.urls == [CERT_URL]


OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("body", "headers", "webhook_id"),
    [
        (BODY[:-1] + b"]", headers_for(), WEBHOOK_ID),  # one byte changed
        (BODY, headers_for(), "ANOTHERWEBHOOK01"),  # another subscription
        (BODY, headers_for(key=OTHER_KEY), WEBHOOK_ID),  # not PayPal's key
        (BODY, headers_for(at=NOW - timedelta(minutes=11)), WEBHOOK_ID),  # stale
        (BODY, headers_for(at=NOW + timedelta(minutes=11)), WEBHOOK_ID),  # future
        (BODY, headers_for(**{"paypal-transmission-sig": ""}), WEBHOOK_ID),
        (BODY, headers_for(**{"paypal-transmission-sig": "garbled=="}), WEBHOOK_ID),
        (BODY, headers_for(**{"paypal-transmission-time": "yesterday"}), WEBHOOK_ID),
        (BODY, headers_for(**{"paypal-auth-algo": "SHA1withRSA"}), WEBHOOK_ID),
        (BODY, headers_for(**{"paypal-transmission-id": "tid-2"}), WEBHOOK_ID),
    ],
)
def test_bad_transmissions_are_refused(
    body: bytes, headers: dict[str, str], webhook_id: str
) -> None:
    assert not verifier().verify_headers(body, headers, webhook_id)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/v1/notifications/certs/CERT-1",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",  # not https
        "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
        "https://api.paypal.com@evil.example/v1/notifications/certs/CERT-1",
        "https://api.paypal.com/v1/notifications/certs/../../oauth2/token",
        "https://api.paypal.com/v1/notifications/certs/CERT-1?x=1",
        "https://api.paypal.com/v1/other/CERT-1",
    ],
)
def test_a_cert_url_off_paypals_certificate_path_is_never_fetched(url: str) -> None:
    fetches = Fetches()
    assert not verifier(fetches).verify_headers(
        BODY, headers_for(**{"paypal-cert-url": url}), WEBHOOK_ID
    )
    assert fetches.urls == []


def test_the_configured_simulator_prefix_is_trusted_too() -> None:
    prefixes = (
        "https://api.paypal.com/v1/notifications/certs/",
        "http://127.0.0.1:8099/paypal/v1/notifications/certs/",
    )
    assert cert_url_allowed("http://127.0.0.1:8099/paypal/v1/notifications/certs/CERT-x", prefixes)
    assert not cert_url_allowed(
        "http://127.0.0.1:8098/paypal/v1/notifications/certs/CERT-x", prefixes
    )


def test_a_failed_fetch_is_refused_and_remembered() -> None:
    fetches = Fetches(pem=None)
    check = verifier(fetches)
    assert not check.verify_headers(BODY, headers_for(), WEBHOOK_ID)
    assert not check.verify_headers(BODY, headers_for(), WEBHOOK_ID)
    assert fetches.urls == [CERT_URL]


def test_the_store_keeps_a_bounded_number_of_certificates() -> None:
    fetches = Fetches()
    store = CertificateStore(fetches, size=2)
    for name in ("a", "b", "c", "a"):
        assert store.get(f"https://api.paypal.com/v1/notifications/certs/{name}") is not None
    assert [u.rsplit("/", 1)[1] for u in fetches.urls] == ["a", "b", "c", "a"]


# --- through the ingress's decision -------------------------------------------------------


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> Fetches:
    """The declared verifier, its certificate fetch replaced (no network in unit tests)."""
    fetches = Fetches()
    webhooks = providers.get("paypal").webhooks
    assert webhooks is not None
    monkeypatch.setattr(webhooks.verifier, "certificates", CertificateStore(fetches))
    monkeypatch.setattr(webhooks.verifier, "clock", at_now)
    return fetches


def delivery(headers: dict[str, str], body: bytes = BODY) -> Delivery:
    return Delivery(
        "POST", "https://hub.example/webhooks/paypal/greenwood", {}, headers, body, None
    )


def key() -> WebhookKey:
    account = PayPalAccount(client_id="AY1", client_secret="s3cret", webhook_id=WEBHOOK_ID)  # type: ignore[arg-type]
    return WebhookKey("paypal-primary", "s3cret", account)


def test_the_ingress_accepts_a_signed_delivery_as_a_raw_webhook(declared: Fetches) -> None:
    raw = accept("paypal", "greenwood", [key()], delivery(headers_for()))
    assert isinstance(raw, RawWebhook)
    assert (raw.provider_event_id, raw.provider_event_type, raw.account) == (
        "WH-1",
        "PAYMENT.CAPTURE.COMPLETED",
        "paypal-primary",
    )


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({"content-type": "application/json"}, BODY, 401, "missing signature"),
        (headers_for(), BODY + b" ", 401, "signature does not match the body"),
        (headers_for(b"[1]"), b"[1]", 400, "body must be a JSON object"),
    ],
)
def test_the_ingress_refuses_with_the_precise_status(
    declared: Fetches, headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    refused = accept("paypal", "greenwood", [key()], delivery(headers, body))
    assert isinstance(refused, Rejection)
    assert (refused.status, refused.reason) == (status, reason)


# --- the normalizer -------------------------------------------------------------------


def raw_of(body: dict[str, Any]) -> RawWebhook:
    return RawWebhook(
        header=EventHeader.new("webhook.received", "t1", source="test"),
        provider="paypal",
        provider_event_id=str(body.get("id", "WH-x")),
        content_type="application/json",
        http_headers={},
        body=json.dumps(body).encode(),
        received_at=NOW,
    )


def capture_webhook(
    kind: str, status: str, value: Any = "100.00", **resource: Any
) -> dict[str, Any]:
    return {
        "id": "WH-58D329510W468432D-8HN650336L201105X",
        "event_type": kind,
        "summary": "Payment denied for $ 100.00 USD",
        "resource": {
            "id": "3C679366HH908993F",
            "status": status,
            "amount": {"currency_code": "USD", "value": value},
            "supplementary_data": {"related_ids": {"order_id": "5O190127TN364715T"}},
            "create_time": "2024-05-01T10:00:00Z",
            **resource,
        },
    }


def test_a_completed_capture_is_a_captured_payment_named_by_order_and_capture() -> None:
    body = capture_webhook("PAYMENT.CAPTURE.COMPLETED", "COMPLETED")
    event = normalize_paypal(raw_of(body), body)
    assert event is not None and not isinstance(event, FollowUp)
    assert event.kind is PaymentEventKind.CAPTURED
    assert (event.order_id, event.payment_id) == ("5O190127TN364715T", "3C679366HH908993F")
    assert (event.amount_minor, event.currency, event.method) == (10_000, "USD", "paypal")
    assert event.error_code is None


def test_a_denied_capture_is_a_failed_payment() -> None:
    body = capture_webhook("PAYMENT.CAPTURE.DENIED", "DECLINED", status_details={"reason": "RISK"})
    event = normalize_paypal(raw_of(body), body)
    assert event is not None and not isinstance(event, FollowUp)
    assert (event.kind, event.error_code) == (PaymentEventKind.FAILED, "RISK")


def test_an_approved_order_asks_for_a_capture() -> None:
    body = {
        "id": "WH-2",
        "event_type": "CHECKOUT.ORDER.APPROVED",
        "resource": {"id": "5O190127TN364715T", "status": "APPROVED"},
    }
    assert normalize_paypal(raw_of(body), body) == FollowUp(
        "capture", "5O190127TN364715T", "approved"
    )


@pytest.mark.parametrize(
    "kind", ["PAYMENT.CAPTURE.PENDING", "PAYMENT.CAPTURE.REFUNDED", "CHECKOUT.ORDER.COMPLETED"]
)
def test_other_events_are_not_payment_events(kind: str) -> None:
    body = capture_webhook(kind, "PENDING")
    assert normalize_paypal(raw_of(body), body) is None


@pytest.mark.parametrize(
    "body",
    [
        {"event_type": "PAYMENT.CAPTURE.COMPLETED"},
        {"event_type": "CHECKOUT.ORDER.APPROVED", "resource": {"status": "APPROVED"}},
        capture_webhook("PAYMENT.CAPTURE.COMPLETED", "COMPLETED", value="1.005"),
        capture_webhook("PAYMENT.CAPTURE.COMPLETED", "COMPLETED", value=100),
        capture_webhook("PAYMENT.CAPTURE.COMPLETED", "COMPLETED", supplementary_data={}),
    ],
)
def test_malformed_webhooks_are_normalization_errors(body: dict[str, Any]) -> None:
    with pytest.raises(NormalizationError):
        normalize_paypal(raw_of(body), body)
