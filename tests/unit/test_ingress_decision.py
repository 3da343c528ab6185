import hashlib
import hmac
import json
import tomllib

import pytest
from tenant_accounts import primary

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.tenants import Tenant
from providers.cashfree import CashfreeVerifier
from providers.razorpay import RazorpayAccount, RazorpayVerifier
from providers.spec import Delivery
from schemas.events import RawWebhook
from webhook_ingress.decision import (
    ChallengeAnswer,
    Rejection,
    WebhookKey,
    accept,
    answer_challenge,
    check_headers,
    check_route,
    query_body,
)
from webhook_ingress.signatures import verifier_for

TENANTS = parse_tenants(tomllib.loads(demo_tenant_config("greenwood")))
GREENWOOD = TENANTS.get("greenwood")
assert isinstance(GREENWOOD, Tenant)
SECRET = primary(GREENWOOD, RazorpayAccount).webhook_secret.get_secret_value()
KEY = WebhookKey("razorpay-primary", SECRET)
BODY = json.dumps({"event": "payment.captured", "payload": {}}).encode()


def signed(body: bytes = BODY, **extra: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-razorpay-signature": RazorpayVerifier().sign(body, SECRET),
        "x-razorpay-event-id": "evt_1",
        **extra,
    }


def delivery(headers: dict[str, str], body: bytes) -> Delivery:
    return Delivery("POST", "http://ingress.test/webhooks", {}, headers, body, "127.0.0.1")


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
    raw = accept("razorpay", "greenwood", [KEY], delivery(signed(authorization="Basic x"), BODY))
    assert isinstance(raw, RawWebhook)
    assert raw.body == BODY
    assert raw.provider_event_type == "payment.captured"
    assert "authorization" not in raw.http_headers
    assert "x-razorpay-signature" not in raw.http_headers
    assert raw.http_headers["x-razorpay-event-id"] == "evt_1"  # kept, as information


@pytest.mark.parametrize("event_id", ["evt_1", "evt_other", None])
def test_without_a_signed_id_the_body_hash_identifies_the_delivery_whatever_the_header(
    event_id: str | None,
):
    # BODY has no created_at, so no id can be derived from it: its hash is the id, and
    # the unsigned X-Razorpay-Event-Id (whatever it says, or missing) changes nothing.
    headers = signed()
    if event_id is None:
        del headers["x-razorpay-event-id"]
    else:
        headers["x-razorpay-event-id"] = event_id
    raw = accept("razorpay", "greenwood", [KEY], delivery(headers, BODY))
    assert isinstance(raw, RawWebhook)
    assert raw.provider_event_id == hashlib.sha256(BODY).hexdigest()
    assert raw.key() == f"razorpay:greenwood:{hashlib.sha256(BODY).hexdigest()}"


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
    rejection = accept("razorpay", "greenwood", [KEY], delivery(headers, body))
    assert isinstance(rejection, Rejection)
    assert (rejection.status, rejection.security) == (status, security)


def test_the_ingress_verifies_with_the_providers_own_verifier() -> None:
    assert isinstance(verifier_for("razorpay"), RazorpayVerifier)
    assert verifier_for("gworkspace") is None  # declared without webhooks: never calls the hub
    assert verifier_for("nosuch") is None


def test_route_checks():
    keys = check_route("razorpay", "greenwood", TENANTS)
    assert isinstance(keys, list)
    assert [(k.account, k.secret) for k in keys] == [("razorpay-primary", SECRET)]
    assert check_route("nosuch", "greenwood", TENANTS) == Rejection(
        404, "unknown provider 'nosuch'"
    )
    missing = check_route("razorpay", "nobody", TENANTS)
    assert isinstance(missing, Rejection) and missing.status == 404


# A school moving to a new Razorpay account (or running two) gets webhooks signed
# with either account's secret; a disabled account's secret no longer counts.
TWO_ACCOUNTS = parse_tenants(
    tomllib.loads(
        """
[tenants.riverside.accounts.rzp-old]
provider = "razorpay"
priority = 5
key_id = "rzp_test_old"
key_secret = "old-key-secret"
webhook_secret = "old-webhook-secret"

[tenants.riverside.accounts.rzp-new]
provider = "razorpay"
key_id = "rzp_test_new"
key_secret = "new-key-secret"
webhook_secret = "new-webhook-secret"

[tenants.riverside.accounts.rzp-closed]
provider = "razorpay"
enabled = false
key_id = "rzp_test_closed"
key_secret = "closed-key-secret"
webhook_secret = "closed-webhook-secret"

[tenants.lakeside.accounts.twilio-primary]
provider = "twilio"
account_sid = "AC00000000000000000000000000000000"
auth_token = "token"
from_number = "+15005550006"
"""
    )
)


def test_route_lists_every_enabled_accounts_webhook_secret_primary_first() -> None:
    secrets = check_route("razorpay", "riverside", TWO_ACCOUNTS)
    assert isinstance(secrets, list)
    assert [(k.account, k.secret) for k in secrets] == [
        ("rzp-new", "new-webhook-secret"),
        ("rzp-old", "old-webhook-secret"),
    ]


def test_a_tenant_without_an_account_of_the_provider_is_unknown_for_it() -> None:
    assert check_route("razorpay", "lakeside", TWO_ACCOUNTS) == Rejection(
        404, "unknown tenant 'lakeside' for razorpay"
    )


@pytest.mark.parametrize(
    ("secret", "account"), [("new-webhook-secret", "rzp-new"), ("old-webhook-secret", "rzp-old")]
)
def test_a_webhook_signed_with_any_of_the_tenants_secrets_is_accepted(
    secret: str, account: str
) -> None:
    secrets = check_route("razorpay", "riverside", TWO_ACCOUNTS)
    assert isinstance(secrets, list)
    headers = {
        "content-type": "application/json",
        "x-razorpay-signature": RazorpayVerifier().sign(BODY, secret),
    }
    raw = accept("razorpay", "riverside", secrets, delivery(headers, BODY))
    assert isinstance(raw, RawWebhook)
    assert raw.header.tenant == "riverside"
    assert raw.account == account  # the account whose secret verified it


@pytest.mark.parametrize("secret", ["closed-webhook-secret", SECRET])
def test_a_webhook_signed_with_a_disabled_or_another_tenants_secret_is_refused(secret: str) -> None:
    secrets = check_route("razorpay", "riverside", TWO_ACCOUNTS)
    assert isinstance(secrets, list)
    headers = {
        "content-type": "application/json",
        "x-razorpay-signature": RazorpayVerifier().sign(BODY, secret),
    }
    assert accept("razorpay", "riverside", secrets, delivery(headers, BODY)) == Rejection(
        401, "signature does not match the body", security=True
    )


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


def test_a_cashfree_webhook_keeps_its_type_as_the_event_type() -> None:
    # Cashfree names the event "type" (Razorpay: "event"); its signature covers the timestamp.
    body = b'{"type":"PAYMENT_SUCCESS_WEBHOOK","data":{"order":{"order_id":"o-1"}}}'
    headers = {
        "content-type": "application/json",
        **CashfreeVerifier().signed_headers(body, "cf-secret"),
    }
    key = WebhookKey("cashfree-primary", "cf-secret")
    raw = accept("cashfree", "greenwood", [key], delivery(headers, body))
    assert isinstance(raw, RawWebhook)
    assert (raw.provider_event_type, raw.account) == ("PAYMENT_SUCCESS_WEBHOOK", "cashfree-primary")


def test_a_method_the_provider_does_not_call_with_is_405() -> None:
    assert check_route("razorpay", "greenwood", TENANTS, "GET") == Rejection(
        405, "razorpay webhooks are POST"
    )


def test_a_form_provider_needs_a_form_and_a_json_provider_json() -> None:
    form = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    assert check_headers(form, 1024, "form") is None
    assert check_headers(form, 1024, "json") == Rejection(
        415, "content type must be application/json"
    )
    json_type = {"content-type": "application/json"}
    assert check_headers(json_type, 1024, "form") == Rejection(
        415, "content type must be application/x-www-form-urlencoded"
    )


def test_a_get_delivery_keeps_its_query_as_the_body_without_the_secret_token() -> None:
    url = "http://ingress.test/webhooks/pesapal/t?OrderTrackingId=trk-1&token=s3cret&x=1"
    delivery = Delivery("GET", url, {}, {}, b"", "127.0.0.1")
    assert query_body(delivery) == b"OrderTrackingId=trk-1&x=1"


# --- subscription checks (Meta's GET hub.challenge), answered before any verification ----

CHALLENGED = parse_tenants(
    tomllib.loads(
        """
[tenants.hillside.accounts.wa-main]
provider = "whatsapp"
phone_number_id = "106540352242922"
access_token = "EAAG-main"
app_secret = "main-app-secret"
verify_token = "main-verify-token"

[tenants.hillside.accounts.wa-second]
provider = "whatsapp"
priority = 5
phone_number_id = "106540352242923"
access_token = "EAAG-second"
app_secret = "second-app-secret"
verify_token = "second-verify-token"

[tenants.hillside.accounts.wa-closed]
provider = "whatsapp"
enabled = false
phone_number_id = "106540352242924"
access_token = "EAAG-closed"
app_secret = "closed-app-secret"
verify_token = "closed-verify-token"
"""
    )
)


def subscribe(token: str, challenge: str = "1158201444") -> dict[str, str]:
    return {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": challenge}


@pytest.mark.parametrize("token", ["main-verify-token", "second-verify-token"])
def test_a_subscription_check_with_an_accounts_token_is_answered_with_its_challenge(
    token: str,
) -> None:
    answer = answer_challenge("whatsapp", "hillside", CHALLENGED, "GET", subscribe(token))
    assert answer == ChallengeAnswer(200, "1158201444")


@pytest.mark.parametrize(
    ("tenant", "query"),
    [
        ("hillside", subscribe("closed-verify-token")),  # a disabled account's token
        ("hillside", subscribe("main-app-secret")),  # another field's secret
        ("hillside", {"hub.mode": "subscribe", "hub.challenge": "1"}),
        ("hillside", {}),
        ("nobody", subscribe("main-verify-token")),  # an unknown tenant
    ],
)
def test_any_other_subscription_check_is_403(tenant: str, query: dict[str, str]) -> None:
    assert answer_challenge("whatsapp", tenant, CHALLENGED, "GET", query) == ChallengeAnswer(
        403, "Forbidden"
    )


def test_only_a_get_to_a_provider_with_a_check_is_one() -> None:
    query = subscribe("main-verify-token")
    assert answer_challenge("whatsapp", "hillside", CHALLENGED, "POST", query) is None
    # Pesapal's IPN is a GET too, but Pesapal declares no subscription check.
    assert answer_challenge("pesapal", "greenwood", TENANTS, "GET", query) is None
    assert answer_challenge("razorpay", "greenwood", TENANTS, "GET", query) is None
    assert answer_challenge("nosuch", "greenwood", TENANTS, "GET", query) is None
