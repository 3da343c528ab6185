import hashlib
import hmac
import json
import tomllib

import pytest

from core.tenants import demo_tenant_config, parse_tenants
from schemas.events import RawWebhook
from webhook_ingress.decision import Rejection, accept, check_headers, check_route
from webhook_ingress.signatures import RazorpayVerifier

TENANTS = parse_tenants(tomllib.loads(demo_tenant_config("greenwood")))
SECRET = TENANTS.get("greenwood").razorpay.webhook_secret.get_secret_value()  # type: ignore[union-attr]
BODY = json.dumps({"event": "payment.captured", "payload": {}}).encode()


def signed(body: bytes = BODY, **extra: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-razorpay-signature": RazorpayVerifier().sign(body, SECRET),
        "x-razorpay-event-id": "evt_1",
        **extra,
    }


def test_github_style_hmac_vector_from_the_reference():
    # reference.md: secret "It's a Secret to Everybody", payload "Hello, World!"
    digest = RazorpayVerifier().sign(b"Hello, World!", "It's a Secret to Everybody")
    assert digest == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_signature_is_hmac_sha256_hex_of_the_raw_body():
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert RazorpayVerifier().verify(BODY, {"x-razorpay-signature": expected}, SECRET)
    assert RazorpayVerifier().verify(BODY, {"x-razorpay-signature": expected.upper()}, SECRET)
    assert not RazorpayVerifier().verify(BODY + b" ", {"x-razorpay-signature": expected}, SECRET)


def test_a_verified_webhook_becomes_a_raw_record_with_the_exact_bytes():
    raw = accept("razorpay", "greenwood", SECRET, signed(authorization="Basic x"), BODY)
    assert isinstance(raw, RawWebhook)
    assert raw.body == BODY
    assert raw.provider_event_id == "evt_1"
    assert raw.provider_event_type == "payment.captured"
    assert "authorization" not in raw.http_headers
    assert raw.key() == "razorpay:greenwood:evt_1"


def test_without_an_event_id_the_body_hash_identifies_the_delivery():
    headers = signed()
    del headers["x-razorpay-event-id"]
    raw = accept("razorpay", "greenwood", SECRET, headers, BODY)
    assert isinstance(raw, RawWebhook)
    assert raw.provider_event_id == hashlib.sha256(BODY).hexdigest()


@pytest.mark.parametrize(
    ("headers", "body", "status", "security"),
    [
        ({"content-type": "application/json"}, BODY, 401, True),
        (signed(**{"x-razorpay-signature": "0" * 64}), BODY, 401, True),
        (signed(), BODY.replace(b"captured", b"capturer"), 401, True),
        (signed(b"{not json"), b"{not json", 400, False),
        (signed(b"[1, 2]"), b"[1, 2]", 400, False),
    ],
)
def test_rejections(headers: dict[str, str], body: bytes, status: int, security: bool):
    rejection = accept("razorpay", "greenwood", SECRET, headers, body)
    assert isinstance(rejection, Rejection)
    assert (rejection.status, rejection.security) == (status, security)


def test_route_checks():
    assert check_route("razorpay", "greenwood", TENANTS) == SECRET
    assert check_route("paytm", "greenwood", TENANTS) == Rejection(404, "unknown provider 'paytm'")
    missing = check_route("razorpay", "nobody", TENANTS)
    assert isinstance(missing, Rejection) and missing.status == 404


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "text/plain"}, 415),
        ({}, 415),
        ({"content-type": "application/json", "content-length": "300000"}, 413),
        ({"content-type": "application/json", "content-length": "-1"}, 400),
        ({"content-type": "application/json; charset=utf-8", "content-length": "10"}, None),
        ({"content-type": "application/vnd.api+json"}, None),
    ],
)
def test_header_checks_run_before_the_body_is_read(headers: dict[str, str], status: int | None):
    result = check_headers(headers, max_body=256 * 1024)
    assert (result.status if result else None) == status
