"""Test connection against the simulators: every declared provider's probe, as the hub sends it.

Each simulator answers the probe as its real provider does (shapes, auth, error codes);
where the official SDK is a dev dependency (Twilio, SendGrid) it reads the answer too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from python_http_client.exceptions import UnauthorizedError
from sendgrid import SendGridAPIClient
from sim_support import WEBHOOK_TEMPLATE, Receiver, basic, twilio_auth
from starlette.applications import Starlette
from tenant_accounts import primary
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client as TwilioClient

import providers
from catalog.tenant_file import new_rsa_key_pem
from core.ports import free_port
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from providers import ProbeResult
from providers.razorpay import RazorpayAccount
from providers.sendgrid import SendGridAccount
from providers.twilio import TwilioAccount
from simulators import create_app
from simulators.state import SimState

pytestmark = pytest.mark.anyio

SIM = "http://sim"
SETTINGS = Settings(provider_base_urls=providers.simulator_base_urls(SIM))
GOOGLE_REFUSED = (
    "credentials refused: token endpoint answered 400: invalid_grant: Invalid JWT Signature."
)
# The credential each probe proves, and what the provider answers when it is wrong.
REFUSALS: dict[str, tuple[str, str]] = {
    "razorpay": ("key_secret", "401 from razorpay: Authentication failed (BAD_REQUEST_ERROR)"),
    "twilio": ("auth_token", "401 from twilio: Authenticate (20003)"),
    "sendgrid": (
        "api_key",
        "401 from sendgrid: The provided authorization grant is invalid, expired, or revoked",
    ),
    "gworkspace": ("private_key", GOOGLE_REFUSED),
    "fcm": ("private_key", GOOGLE_REFUSED),
    "mobileapp": ("api_key", "401 from mobileapp: invalid API key (unauthorized)"),
    "smsgateway": ("api_key", "401 from smsgateway: Authentication failure"),
    "cashfree": ("client_secret", "401 from cashfree: authentication Failed (request_failed)"),
    "flutterwave": ("secret_key", "401 from flutterwave: Invalid authorization key"),
    "pesapal": (
        "consumer_secret",
        "credentials refused: token endpoint answered 200 (status 500): "
        "Invalid consumer_key or consumer_secret provided",
    ),
    "paypal": (
        "client_secret",
        "credentials refused: token endpoint answered 401: invalid_client:"
        " Client Authentication failed",
    ),
    "paytm": ("merchant_key", "200 from paytm: Checksum provided is invalid (227)"),
    "stripe": (
        "secret_key",
        "401 from stripe: Invalid API Key provided: wrong-cr************0000"
        " (invalid_request_error)",
    ),
    "mpesa": (
        "consumer_secret",
        "credentials refused: token endpoint answered 400: Invalid Authentication passed"
        " (400.008.01)",
    ),
    "msg91": ("authkey", "401 from msg91: Invalid authentication key (207)"),
    "africastalking": (
        "api_key",
        "401 from africastalking: The supplied authentication is invalid",
    ),
    "whatsapp": (
        "access_token",
        "401 from whatsapp: Invalid OAuth access token - Cannot parse access token (190)",
    ),
    "mailgun": ("api_key", "401 from mailgun: Forbidden (401)"),
    "ses": (
        "secret_access_key",
        "403 from ses: The request signature we calculated does not match the signature you"
        " provided. Check your AWS Secret Access Key and signing method. Consult the service"
        " documentation for details. (SignatureDoesNotMatch)",
    ),
    # The simulator's HTTP bridge to its SMTP sink answers a refused login as the transport does.
    "smtp": ("password", "401 from smtp: SMTP 535 5.7.8 Authentication credentials invalid (535)"),
}
# Which simulator route the probe reaches, as recorded (the Google ones after a token).
PROBE_PATHS = {
    "razorpay": "/razorpay/v1/orders",
    "twilio": "/twilio/2010-04-01/Accounts/{sid}.json",
    "sendgrid": "/sendgrid/v3/scopes",
    "gworkspace": "/gworkspace/admin/directory/v1/users/it-admin@{tenant}.school.example",
    "fcm": "/fcm/v1/projects/{tenant}-parent-app/messages:send",
    "mobileapp": "/mobileapp/api/v1/health",
    "smsgateway": "/smsgateway/v1/account",
    "cashfree": "/cashfree/orders/hub_probe_order",
    "flutterwave": "/flutterwave/v3/balances",
    "pesapal": "/pesapal/api/URLSetup/GetIpnList",
    "paypal": "/paypal/v2/checkout/orders/HUBPROBE0000000000",
    "paytm": "/paytm/v3/order/status",
    "stripe": "/stripe/v1/balance",
    "mpesa": "/mpesa/mpesa/stkpushquery/v1/query",
    "msg91": "/msg91/api/balance.php",
    "africastalking": "/africastalking/version1/user",
    "whatsapp": "/whatsapp/v21.0/{phone_number_id}",
    "mailgun": "/mailgun/v3/domains/mg.{tenant}.school.example",
    "ses": "/ses/v2/email/account",
    "smtp": "/smtp/login",
}
# Cashfree's probe fetches an order that does not exist: its 404 proves the credentials.
# M-Pesa's probe queries a CheckoutRequestID that does not exist: Daraja's 400 for it does.
PROBE_OK_STATUS = {"cashfree": 404, "mpesa": 400, "paypal": 404}
# Paytm refuses a checksum its merchant key did not make with HTTP 200, resultStatus "F".
# SES refuses a signature made with another secret with 403 SignatureDoesNotMatch.
REFUSED_STATUS = {"paytm": 200, "ses": 403}


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        yield client


def sim_state(app: Starlette) -> SimState:
    state: SimState = app.state.sim.state
    return state


def accounts_of(tenant: Tenant, provider: str) -> list[ProviderAccount]:
    found = tenant.accounts_for(provider)
    assert found, f"the demo tenant has no {provider} account"
    return found


def with_wrong_credential(account: ProviderAccount) -> ProviderAccount:
    field, _ = REFUSALS[account.provider]
    # A well-formed PEM of another key: the token endpoint, not the client, refuses it.
    wrong = new_rsa_key_pem() if field == "private_key" else "wrong-credential-0000"
    if field == "merchant_key":
        wrong = "wrong-credential"  # Paytm's keys are 16 characters: a well-formed wrong one
    config = account.config.model_copy(update={field: SecretStr(wrong)})
    return account.model_copy(update={"config": config})


def test_every_declared_provider_has_a_refusal_to_expect() -> None:
    assert set(REFUSALS) == set(providers.names()) == set(PROBE_PATHS)


@pytest.mark.parametrize("tenant_id", ["t1", "t2"])
@pytest.mark.parametrize("provider", providers.names())
async def test_probe_is_ok_with_the_accounts_credentials(
    app: Starlette, http: httpx.AsyncClient, tenants: TenantDirectory, provider: str, tenant_id: str
) -> None:
    tenant = tenants.get(tenant_id)
    assert tenant is not None
    for account in accounts_of(tenant, provider):
        result = await providers.probe(account, SETTINGS, http=http)
        status = PROBE_OK_STATUS.get(provider, 200)
        assert (result.status, result.http_status) == ("ok", status), result.detail
        [recorded] = sim_state(app).recorder.list(provider)[-1:]
        sid = getattr(account.config, "account_sid", "")
        number = getattr(account.config, "phone_number_id", "")
        assert recorded.path == PROBE_PATHS[provider].format(
            sid=sid, phone_number_id=number, tenant=tenant_id
        )
        # The simulator found the account's own tenant by its credentials.
        assert (recorded.tenant, recorded.response_status) == (tenant_id, status)


@pytest.mark.parametrize("provider", providers.names())
async def test_probe_with_a_wrong_credential_is_auth_failed(
    http: httpx.AsyncClient, t1: Tenant, provider: str
) -> None:
    wrong = with_wrong_credential(accounts_of(t1, provider)[0])
    result = await providers.probe(wrong, SETTINGS, http=http)
    _, detail = REFUSALS[provider]
    # Refused at a token endpoint (Google's, Daraja's OAuth): no API status to report.
    google = provider in ("gworkspace", "fcm", "mpesa", "paypal", "pesapal")
    assert result == ProbeResult(
        "auth_failed", detail, REFUSED_STATUS.get(provider, None if google else 401)
    )


@pytest.mark.parametrize("provider", providers.names())
async def test_a_queued_fault_makes_the_probe_unreachable(
    http: httpx.AsyncClient, t1: Tenant, provider: str
) -> None:
    added = await http.post(f"{SIM}/_sim/faults", json={"provider": provider, "status": 503})
    assert added.status_code == 201
    result = await providers.probe(accounts_of(t1, provider)[0], SETTINGS, http=http)
    assert (result.status, result.http_status) == ("unreachable", 503)
    assert result.detail.startswith(f"provider unavailable: 503 from {provider}: ")


async def test_the_probes_credentials_are_recorded_masked(
    app: Starlette, http: httpx.AsyncClient, t1: Tenant
) -> None:
    for provider in ("twilio", "smsgateway"):
        await providers.probe(accounts_of(t1, provider)[0], SETTINGS, http=http)
    twilio, gateway = sim_state(app).recorder.list()
    assert twilio.headers["authorization"] == "***"
    assert gateway.headers["authkey"] == "***"


# --- the simulators' answers to the probes, read directly ---------------------------------


async def test_razorpay_lists_the_keys_own_orders_newest_first(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    def auth(t: Tenant) -> dict[str, str]:
        key = primary(t, RazorpayAccount)
        return basic(key.key_id, key.key_secret.get_secret_value())

    for t, receipt in ((t1, "r-1"), (t2, "other-school"), (t1, "r-2")):
        order = {"amount": 50000, "currency": "INR", "receipt": receipt}
        assert (await client.post("/razorpay/v1/orders", json=order, headers=auth(t))).is_success
    listed = (await client.get("/razorpay/v1/orders", headers=auth(t1))).json()
    assert (listed["entity"], listed["count"]) == ("collection", 2)
    assert [o["receipt"] for o in listed["items"]] == ["r-2", "r-1"]
    assert {o["entity"] for o in listed["items"]} == {"order"}
    one = await client.get(
        "/razorpay/v1/orders", params={"count": "1", "skip": "1"}, headers=auth(t1)
    )
    assert [o["receipt"] for o in one.json()["items"]] == ["r-1"]
    too_many = await client.get("/razorpay/v1/orders", params={"count": "101"}, headers=auth(t1))
    assert too_many.status_code == 400
    assert too_many.json()["error"]["description"] == "The count must be between 1 and 100."


async def test_twilio_account_fetch_answers_like_twilio(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    mine, theirs = primary(t1, TwilioAccount).account_sid, primary(t2, TwilioAccount).account_sid
    path = "/twilio/2010-04-01/Accounts/{}.json"
    fetched = await client.get(path.format(mine), headers=twilio_auth(t1))
    assert fetched.status_code == 200
    body = fetched.json()
    assert (body["sid"], body["owner_account_sid"], body["status"]) == (mine, mine, "active")
    assert body["uri"] == f"/2010-04-01/Accounts/{mine}.json"
    other = await client.get(path.format(theirs), headers=twilio_auth(t1))
    assert (other.status_code, other.json()["code"]) == (404, 20404)
    refused = await client.get(path.format(mine), headers=basic(mine, "not-the-token"))
    assert refused.status_code == 401
    assert refused.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert refused.headers["www-authenticate"] == 'Basic realm="Twilio API"'


async def test_sendgrid_scopes_answer_like_sendgrid(client: httpx.AsyncClient, t1: Tenant) -> None:
    key = primary(t1, SendGridAccount).api_key.get_secret_value()
    ok = await client.get("/sendgrid/v3/scopes", headers={"Authorization": f"Bearer {key}"})
    assert ok.json() == {"scopes": ["mail.send", "messages.read"]}
    anonymous = await client.get("/sendgrid/v3/scopes")
    assert anonymous.status_code == 401
    assert anonymous.json() == {"errors": [{"field": None, "message": "authorization required"}]}


async def test_fcm_validate_only_answers_the_fake_message_and_sends_nothing(
    app: Starlette, http: httpx.AsyncClient, t1: Tenant
) -> None:
    result = await providers.probe(accounts_of(t1, "fcm")[0], SETTINGS, http=http)
    assert result.status == "ok"
    effects = (await http.get(f"{SIM}/_sim/effects")).json()
    assert effects == {"sms": [], "mails": [], "orders": []}
    [send] = sim_state(app).recorder.list("fcm")
    assert send.body["validate_only"] is True


# --- the official SDKs, over a real socket -------------------------------------------------


@pytest.fixture
def server_url(tenants: TenantDirectory, receiver: Receiver) -> Iterator[str]:
    app = create_app(
        tenants, webhook_url_template=WEBHOOK_TEMPLATE, webhook_transport=receiver.transport()
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_twilio_sdk_reads_the_account_the_probe_fetches(server_url: str, t1: Tenant) -> None:
    account = primary(t1, TwilioAccount)
    client = TwilioClient(account.account_sid, account.auth_token.get_secret_value())
    client.api.base_url = f"{server_url}/twilio"
    fetched = client.api.v2010.accounts(account.account_sid).fetch()
    assert (fetched.sid, fetched.status, fetched.type) == (account.account_sid, "active", "Full")
    assert fetched.friendly_name == "School One"
    assert fetched.date_created == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    intruder = TwilioClient(account.account_sid, "not-the-token")
    intruder.api.base_url = f"{server_url}/twilio"
    with pytest.raises(TwilioRestException) as refused:
        intruder.api.v2010.accounts(account.account_sid).fetch()
    assert (refused.value.status, refused.value.code) == (401, 20003)


def test_sendgrid_sdk_reads_the_scopes_the_probe_asks_for(server_url: str, t1: Tenant) -> None:
    key = primary(t1, SendGridAccount).api_key.get_secret_value()
    answer = SendGridAPIClient(key, host=f"{server_url}/sendgrid").client.scopes.get()
    assert answer.status_code == 200
    assert answer.to_dict == {"scopes": ["mail.send", "messages.read"]}
    with pytest.raises(UnauthorizedError) as refused:
        SendGridAPIClient("SG.wrong.key", host=f"{server_url}/sendgrid").client.scopes.get()
    assert refused.value.to_dict["errors"][0]["message"] == (
        "The provided authorization grant is invalid, expired, or revoked"
    )


async def test_probe_over_a_real_socket_for_every_provider(server_url: str, t1: Tenant) -> None:
    # No client passed in: probe makes its own, with the settings' timeouts.
    settings = Settings(provider_base_urls=providers.simulator_base_urls(server_url))
    results = {
        p: (await providers.probe(accounts_of(t1, p)[0], settings)).status
        for p in providers.names()
    }
    assert results == dict.fromkeys(providers.names(), "ok")
