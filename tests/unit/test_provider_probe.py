"""Test connection (`providers.probe`): each adapter's cheap read, and how its answer is sorted.

The provider is an `httpx.MockTransport` here; tests/simulators/test_sim_probes.py
probes the simulators, which answer like the real providers.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import botocore.auth
import httpx
import pytest
from paytmchecksum import verifySignature

import providers
from catalog.tenant_file import new_rsa_key_pem
from core.ports import free_port
from core.settings import Settings
from core.tenants import ProviderAccount
from providers import ProbeResult

pytestmark = pytest.mark.anyio

TOKEN_URL = "http://oauth.test/token"
BASE_URLS = {
    "razorpay": "http://razorpay.test",
    "twilio": "http://twilio.test",
    "sendgrid": "http://sendgrid.test",
    "gworkspace": "http://gworkspace.test",
    "gworkspace.token": TOKEN_URL,
    "fcm": "http://fcm.test",
    "fcm.token": TOKEN_URL,
    "mobileapp": "http://app.test",
    "smsgateway": "http://gateway.test",
    "cashfree": "http://cashfree.test/pg",
    "paypal": "http://paypal.test",
    "paypal.token": TOKEN_URL,
    "paytm": "http://paytm.test",
    "stripe": "http://stripe.test",
    "mpesa": "http://mpesa.test",
    "mpesa.token": TOKEN_URL,  # Daraja's token request adds ?grant_type=client_credentials
    "pesapal": "http://pesapal.test/v3",
    "pesapal.token": TOKEN_URL,
    "flutterwave": "http://flutterwave.test",
    "msg91": "http://msg91.test",
    "africastalking": "http://africastalking.test",
    "whatsapp": "http://whatsapp.test/v21.0",  # Graph's version is in the base URL
    "mailgun": "http://mailgun.test",
    "ses": "http://ses.test",
    # A configured server wins over the account's host and port (the simulators' sink).
    "smtp": "smtp://smtp.test:2525",
}
SETTINGS = Settings(provider_base_urls=BASE_URLS, http_connect_timeout=2.0, http_read_timeout=7.0)
SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token-0001"
RZP_SECRET = "razorpay-key-secret-0001"
SENDGRID_KEY = "SG.sendgrid-key-0001.secret-part"
APP_KEY = "mobileapp-api-key-0001"
GATEWAY_KEY = "gateway-authkey-0001"
CF_SECRET = "cfsk_ma_test_probe0001"
PAYTM_KEY = "paytm-probe-0001"  # Paytm's merchant keys are 16 characters (an AES-128 key)
STRIPE_KEY = "sk_test_stripe-probe-0001"
MSG91_KEY = "msg91-authkey-0001"
AT_KEY = "atsk_africastalking-probe-0001"
WA_NUMBER_ID = "106540352242922"
WA_TOKEN = "EAAwhatsapp-probe-0001"
MAILGUN_DOMAIN = "mg.school.example"
MAILGUN_KEY = "key-mailgun-probe-0001"
SES_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SES_SECRET = "ses-secret-access-key-0001"
# SigV4 signs the time: the SES row's Authorization is the one for this instant.
SES_NOW = datetime(2026, 3, 1, 9, 45, tzinfo=UTC)
SES_AUTHORIZATION = (
    f"AWS4-HMAC-SHA256 Credential={SES_KEY_ID}/20260301/ap-south-1/ses/aws4_request, "
    "SignedHeaders=host;x-amz-date, "
    "Signature=bcaf14f85ae1ef6c66420ae20c63511e19899366eace0a856583b1bc31d908cd"
)
SMTP_USER = "fees@school.example"
SMTP_PASSWORD = "smtp-password-0001"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's clock at SES_NOW, so a SigV4 signature is the same on every run."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SES_NOW)


def account(provider: str, **overrides: Any) -> ProviderAccount:
    fields: dict[str, dict[str, Any]] = {
        "razorpay": {"key_id": "rzp_test_abc", "key_secret": RZP_SECRET, "webhook_secret": "whs"},
        "twilio": {"account_sid": SID, "auth_token": TWILIO_TOKEN, "from_number": "+15005550006"},
        "sendgrid": {"api_key": SENDGRID_KEY, "from_email": "fees@school.example"},
        "mobileapp": {"api_key": APP_KEY},
        "smsgateway": {"api_key": GATEWAY_KEY},
        "cashfree": {"client_id": "CF1001", "client_secret": CF_SECRET},
        "flutterwave": {
            "secret_key": "FLWSECK_TEST-probe-X",
            "secret_hash": "h",
            "default_customer_email": "f@s.example",
            "redirect_url": "https://s.example",
        },
        "pesapal": {
            "consumer_key": "pk",
            "consumer_secret": "ps",
            "ipn_id": "ipn-1",
            "ipn_token": "it",
            "callback_url": "https://s.example",
        },
        "paypal": {
            "client_id": "AYprobe",
            "client_secret": "paypal-secret-0001",
            "webhook_id": "WH1",
        },
        "paytm": {"mid": "PAYTMPROBE0000000001", "merchant_key": PAYTM_KEY},
        "stripe": {"secret_key": STRIPE_KEY, "webhook_secret": "whsec_probe"},
        "mpesa": {
            "consumer_key": "mpesa-key-0001",
            "consumer_secret": "mpesa-secret-0001",
            "shortcode": "174379",
            "passkey": "mpesa-passkey-0001",
            "callback_token": "mpesa-callback-token-0001",
        },
        # A fresh key per account: the adapters keep one token flow per service account.
        "gworkspace": {
            "client_email": "sync@school-erp.iam.gserviceaccount.com",
            "private_key": new_rsa_key_pem(),
            "admin_email": "it-admin@school.example",
        },
        "fcm": {
            "client_email": "push@school-app.iam.gserviceaccount.com",
            "private_key": new_rsa_key_pem(),
            "project_id": "school-parent-app",
        },
        "msg91": {"authkey": MSG91_KEY, "webhook_token": "msg91-webhook-token"},
        "africastalking": {
            "username": "school-one",
            "api_key": AT_KEY,
            "webhook_token": "at-webhook-token",
        },
        "whatsapp": {
            "phone_number_id": WA_NUMBER_ID,
            "access_token": WA_TOKEN,
            "app_secret": "whatsapp-app-secret",
            "verify_token": "whatsapp-verify-token",
        },
        "mailgun": {
            "domain": MAILGUN_DOMAIN,
            "api_key": MAILGUN_KEY,
            "from_email": "fees@school.example",
            "webhook_signing_key": "mailgun-signing-key",
        },
        "ses": {
            "access_key_id": SES_KEY_ID,
            "secret_access_key": SES_SECRET,
            "region": "ap-south-1",
            "from_email": "fees@school.example",
        },
        "smtp": {
            "host": "smtp.school.example",
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
            "from_email": "fees@school.example",
        },
    }
    return providers.parse_account(provider, f"{provider}-primary", fields[provider] | overrides)


class FakeProvider:
    """A MockTransport playing a token endpoint (for Google) and the provider's API."""

    def __init__(self, api: Handler, token: Handler | None = None) -> None:
        self.api = api
        self.token = token or (
            # Pesapal names its token "token", every OAuth endpoint "access_token".
            lambda r: httpx.Response(
                200, json={"access_token": "ya29.probe", "token": "ya29.probe", "expires_in": 3599}
            )
        )
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        is_token = str(request.url.copy_with(query=None)) == TOKEN_URL
        return self.token(request) if is_token else self.api(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


async def probe_with(
    probed: ProviderAccount, api: Handler, token: Handler | None = None
) -> tuple[ProbeResult, FakeProvider]:
    fake = FakeProvider(api, token)
    async with fake.client() as http:
        return await providers.probe(probed, SETTINGS, http=http), fake


def answer(status: int, body: Any = None) -> Handler:
    return lambda request: httpx.Response(status, json=body if body is not None else {})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- each adapter's probe request ------------------------------------------------------

PROBE_REQUESTS = [
    ("razorpay", "GET", "http://razorpay.test/v1/orders?count=1", "authorization",
     basic("rzp_test_abc", RZP_SECRET)),
    ("twilio", "GET", f"http://twilio.test/2010-04-01/Accounts/{SID}.json", "authorization",
     basic(SID, TWILIO_TOKEN)),
    ("sendgrid", "GET", "http://sendgrid.test/v3/scopes", "authorization",
     f"Bearer {SENDGRID_KEY}"),
    ("gworkspace", "GET",
     "http://gworkspace.test/admin/directory/v1/users/it-admin@school.example",
     "authorization", "Bearer ya29.probe"),
    ("fcm", "POST", "http://fcm.test/v1/projects/school-parent-app/messages:send",
     "authorization", "Bearer ya29.probe"),
    ("mobileapp", "GET", "http://app.test/api/v1/health", "authorization", f"Bearer {APP_KEY}"),
    ("smsgateway", "GET", "http://gateway.test/v1/account", "authkey", GATEWAY_KEY),
    ("cashfree", "GET", "http://cashfree.test/pg/orders/hub_probe_order", "x-client-secret",
     CF_SECRET),
    ("paypal", "GET", "http://paypal.test/v2/checkout/orders/HUBPROBE0000000000",
     "authorization", "Bearer ya29.probe"),
    # Paytm sends no credential header: the body's checksum is the credential (test below).
    ("paytm", "POST", "http://paytm.test/v3/order/status", "content-type", "application/json"),
    ("stripe", "GET", "http://stripe.test/v1/balance", "authorization", f"Bearer {STRIPE_KEY}"),
    ("mpesa", "POST", "http://mpesa.test/mpesa/stkpushquery/v1/query", "authorization",
     "Bearer ya29.probe"),
    ("flutterwave", "GET", "http://flutterwave.test/v3/balances", "authorization",
     "Bearer FLWSECK_TEST-probe-X"),
    ("pesapal", "GET", "http://pesapal.test/v3/api/URLSetup/GetIpnList", "authorization",
     "Bearer ya29.probe"),
    ("msg91", "GET", "http://msg91.test/api/balance.php?type=4", "authkey", MSG91_KEY),
    ("africastalking", "GET", "http://africastalking.test/version1/user?username=school-one",
     "apikey", AT_KEY),
    ("whatsapp", "GET", f"http://whatsapp.test/v21.0/{WA_NUMBER_ID}", "authorization",
     f"Bearer {WA_TOKEN}"),
    ("mailgun", "GET", f"http://mailgun.test/v3/domains/{MAILGUN_DOMAIN}", "authorization",
     basic("api", MAILGUN_KEY)),
    # SigV4 (botocore's signer, service "ses") at SES_NOW: tests/unit/test_provider_ses.py
    # checks the signer against AWS's published vector and one written from the spec.
    ("ses", "GET", "http://ses.test/v2/email/account", "authorization",
     SES_AUTHORIZATION),
    # Not HTTP: SmtpTransport connects, logs in with these and quits (the GET sends nothing).
    ("smtp", "GET", "smtp://smtp.test:2525/", "authorization", basic(SMTP_USER, SMTP_PASSWORD)),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "method", "url", "header", "credential"), PROBE_REQUESTS)
async def test_each_adapter_probes_with_a_cheap_read(
    provider: str, method: str, url: str, header: str, credential: str, frozen_clock: None
) -> None:
    result, fake = await probe_with(account(provider), answer(200, {"ok": True}))
    api_call = fake.requests[-1]
    assert (api_call.method, str(api_call.url)) == (method, url)
    assert api_call.headers[header] == credential
    assert result.status == "ok"
    assert result.http_status == 200
    assert result.detail == f"{provider} answered 200 to {method} {httpx.URL(url).path}"


def test_every_declared_provider_can_be_probed() -> None:
    assert {p for p, *_ in PROBE_REQUESTS} == set(providers.names())


async def test_a_cashfree_404_for_the_probe_order_means_the_credentials_work() -> None:
    not_found = {"message": "order not found", "code": "order_not_found", "type": "x"}
    result, _ = await probe_with(account("cashfree"), answer(404, not_found))
    assert (result.status, result.http_status) == ("ok", 404)
    auth_error = {"message": "authentication Failed", "code": "request_failed", "type": "y"}
    result, _ = await probe_with(account("cashfree"), answer(401, auth_error))
    assert result.status == "auth_failed"


async def test_a_paytm_probe_is_signed_and_its_200_refusal_is_auth_failed() -> None:
    refusal = {
        "resultStatus": "F",
        "resultCode": "227",
        "resultMsg": "Checksum provided is invalid",
    }
    result, fake = await probe_with(
        account("paytm"), answer(200, {"body": {"resultInfo": refusal}})
    )
    assert result == ProbeResult(
        "auth_failed", "200 from paytm: Checksum provided is invalid (227)", 200
    )
    sent = json.loads(fake.requests[-1].content)
    assert sent["body"] == {"mid": "PAYTMPROBE0000000001", "orderId": "hub_probe_order"}
    text = json.dumps(sent["body"], separators=(",", ":"))
    assert verifySignature(text, PAYTM_KEY, sent["head"]["signature"])


async def test_fcm_probe_is_a_validate_only_topic_message() -> None:
    _, fake = await probe_with(account("fcm"), answer(200, {"name": "projects/p/messages/x"}))
    assert json.loads(fake.requests[-1].content) == {
        "validate_only": True,
        "message": {
            "topic": "hub-connection-test",
            "notification": {"title": "Connection test", "body": "Not delivered"},
        },
    }


async def test_google_probes_fetch_a_token_for_the_delegated_admin() -> None:
    _, fake = await probe_with(account("gworkspace"), answer(200, {"id": "1"}))
    token_call, api_call = fake.requests
    assert str(token_call.url) == TOKEN_URL
    form = {k: v[0] for k, v in parse_qs(token_call.content.decode()).items()}
    claims_part = form["assertion"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))
    assert claims["sub"] == "it-admin@school.example"
    assert claims["scope"] == "https://www.googleapis.com/auth/admin.directory.user"
    assert api_call.url.host == "gworkspace.test"


async def test_the_request_carries_the_settings_timeouts() -> None:
    _, fake = await probe_with(account("twilio"), answer(200, {"sid": SID}))
    assert fake.requests[0].extensions["timeout"] == {
        "connect": 2.0,
        "read": 7.0,
        "write": 7.0,
        "pool": 7.0,
    }


async def test_a_disabled_account_is_probed_all_the_same() -> None:
    disabled = account("mobileapp").model_copy(update={"enabled": False})
    result, fake = await probe_with(disabled, answer(200, {"status": "ok"}))
    assert result.status == "ok"
    assert len(fake.requests) == 1


# --- how answers are sorted --------------------------------------------------------------

TWILIO_401 = {
    "code": 20003,
    "message": "Authenticate",
    "more_info": "https://www.twilio.com/docs/errors/20003",
    "status": 401,
}


async def test_401_is_auth_failed_with_the_providers_message() -> None:
    result, _ = await probe_with(account("twilio"), answer(401, TWILIO_401))
    assert result == ProbeResult("auth_failed", "401 from twilio: Authenticate (20003)", 401)


async def test_403_is_auth_failed() -> None:
    body = {"errors": [{"field": None, "message": "access forbidden"}]}
    result, _ = await probe_with(account("sendgrid"), answer(403, body))
    assert result == ProbeResult("auth_failed", "403 from sendgrid: access forbidden", 403)


async def test_a_google_rate_limit_403_is_unreachable_not_auth_failed() -> None:
    body = {
        "error": {
            "code": 403,
            "message": "Rate Limit Exceeded",
            "errors": [{"message": "Rate Limit Exceeded", "reason": "rateLimitExceeded"}],
        }
    }
    result, _ = await probe_with(account("gworkspace"), answer(403, body))
    assert result == ProbeResult(
        "unreachable",
        "provider unavailable: 403 from gworkspace: Rate Limit Exceeded (rateLimitExceeded)",
        403,
    )


async def test_503_is_unreachable() -> None:
    body = {"error": {"code": "SERVER_ERROR", "description": "The server encountered an error."}}
    result, _ = await probe_with(account("razorpay"), answer(503, body))
    assert result == ProbeResult(
        "unreachable",
        "provider unavailable: 503 from razorpay: The server encountered an error. (SERVER_ERROR)",
        503,
    )


async def test_429_is_unreachable() -> None:
    result, _ = await probe_with(account("smsgateway"), answer(429, {"message": "slow down"}))
    assert result == ProbeResult(
        "unreachable", "provider unavailable: 429 from smsgateway: slow down", 429
    )


async def test_another_4xx_is_unreachable_with_its_status() -> None:
    body = {"code": 20404, "message": "The requested resource was not found", "status": 404}
    result, _ = await probe_with(account("twilio"), answer(404, body))
    assert result == ProbeResult(
        "unreachable",
        f"unexpected answer to GET /2010-04-01/Accounts/{SID}.json: "
        "404 from twilio: The requested resource was not found (20404)",
        404,
    )


async def test_an_adapter_may_count_other_statuses_as_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter_type = type(providers.get("smsgateway").adapter)
    monkeypatch.setattr(adapter_type, "probe_ok_statuses", frozenset({404}), raising=False)
    result, _ = await probe_with(account("smsgateway"), answer(404, {"type": "error"}))
    assert result == ProbeResult("ok", "smsgateway answered 404 to GET /v1/account", 404)


async def test_connect_error_is_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result, _ = await probe_with(account("mobileapp"), refuse)
    assert result == ProbeResult(
        "unreachable", "could not connect: ConnectError: [Errno 111] Connection refused"
    )


async def test_read_timeout_is_unreachable() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    result, _ = await probe_with(account("sendgrid"), hang)
    assert result == ProbeResult("unreachable", "read timeout: ReadTimeout: timed out")


async def test_a_closed_port_is_unreachable_without_a_client_passed_in() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(provider_base_urls={"razorpay": url}, http_connect_timeout=2.0)
    result = await providers.probe(account("razorpay"), settings)
    assert result.status == "unreachable"
    assert result.detail.startswith("could not connect: ConnectError")
    assert result.http_status is None


async def test_a_mistyped_base_url_is_unreachable() -> None:
    settings = Settings(provider_base_urls={"razorpay": "http://razorpay.test:abc"})
    result = await providers.probe(account("razorpay"), settings)
    assert result == ProbeResult(
        "unreachable", "invalid base URL 'http://razorpay.test:abc': Invalid port: 'abc'"
    )


async def test_no_answer_at_all_is_unreachable_after_the_deadline() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    settings = Settings(
        provider_base_urls=BASE_URLS, http_connect_timeout=0.05, http_read_timeout=0.05
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(never)) as http:
        result = await providers.probe(account("twilio"), settings, http=http)
    assert result == ProbeResult("unreachable", "no answer within 0.2s")


@pytest.mark.parametrize("provider", ["fcm", "gworkspace"])
async def test_token_endpoint_invalid_grant_is_auth_failed(provider: str) -> None:
    refused = answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    result, fake = await probe_with(account(provider), answer(200, {}), token=refused)
    assert result == ProbeResult(
        "auth_failed",
        "credentials refused: token endpoint answered 400: invalid_grant: Invalid JWT Signature.",
    )
    assert [str(r.url) for r in fake.requests] == [TOKEN_URL]  # the API is never called


async def test_token_endpoint_503_is_unreachable() -> None:
    down = answer(503, {"error": "internal_failure", "error_description": "Backend Error"})
    result, _ = await probe_with(account("fcm"), answer(200, {}), token=down)
    assert result == ProbeResult(
        "unreachable",
        "token endpoint unavailable: token endpoint answered 503: internal_failure: Backend Error",
    )


async def test_an_unusable_private_key_is_auth_failed() -> None:
    result, fake = await probe_with(account("fcm", private_key="not a key"), answer(200, {}))
    assert result.status == "auth_failed"
    assert result.detail.startswith("credentials refused: service account private key")
    assert fake.requests == []


async def test_an_adapter_without_probe_request_is_unsupported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(type(providers.get("mobileapp").adapter), "probe_request")
    result, fake = await probe_with(account("mobileapp"), answer(200, {}))
    assert result == ProbeResult("unsupported", "mobileapp offers no test-connection call")
    assert fake.requests == []


# --- secrets ------------------------------------------------------------------------------


async def test_a_secret_the_provider_echoes_in_its_error_is_masked() -> None:
    body = {"error": "unauthorized", "message": f"invalid API key {APP_KEY}"}
    result, _ = await probe_with(account("mobileapp"), answer(401, body))
    assert result == ProbeResult(
        "auth_failed", "401 from mobileapp: invalid API key *** (unauthorized)", 401
    )


async def test_a_secret_in_a_network_error_is_masked() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"proxy refused {request.headers['authkey']}", request=request)

    result, _ = await probe_with(account("smsgateway"), fail)
    assert result == ProbeResult(
        "unreachable", "could not connect: ConnectError: proxy refused ***"
    )


async def test_an_answer_carrying_the_secret_is_not_echoed() -> None:
    # Twilio's account resource holds the account's auth token.
    body = {"sid": SID, "auth_token": TWILIO_TOKEN, "status": "active"}
    result, _ = await probe_with(account("twilio"), answer(200, body))
    assert TWILIO_TOKEN not in result.detail
    assert result.detail == f"twilio answered 200 to GET /2010-04-01/Accounts/{SID}.json"
