"""The Africa's Talking adapter against its simulator: sends answered in the Recipients
shape, auth refused its way, the app-data probe, and delivery reports through the hub's
ingress and normalizer; the official SDK (africastalking 2.0.3) as the oracle, over a
real socket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx
import pytest
import uvicorn
from africastalking.Application import ApplicationService
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService
from pydantic import SecretStr
from sim_support import WEBHOOK_TEMPLATE, Receiver
from starlette.applications import Starlette
from tenant_accounts import primary

import providers
from core.ports import free_port
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from providers import ProbeResult
from providers.africastalking import AfricasTalking, AfricasTalkingAccount
from providers.africastalking_receipts import normalize_africastalking
from providers.base import Delivered, Outcome, Rejected, RetryLater
from providers.spec import Delivery
from schemas.events import (
    ConnectorCommand,
    DeliveryReceipt,
    EventHeader,
    RawWebhook,
    ReceiptStatus,
    SendSms,
)
from simulators import create_app
from simulators.state import Fault
from webhook_ingress.decision import accept, check_route

ADAPTER = AfricasTalking()
BASE = "http://sim/africastalking"
NUMBER = "+254712345678"
TEXT = "Fee of KES 1,500 received for Amani. Thank you."
WAIT_SECONDS = 3.0
INVALID_AUTH = "The supplied authentication is invalid"


def cmd(payload: SendSms, tenant_id: str = "t1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, tenant_id, source="test"),
        idempotency_key="key-1",
        provider="africastalking",
        payload=payload,
    )


async def send(client: httpx.AsyncClient, t: Tenant, to: str = NUMBER) -> Outcome:
    payload = SendSms(to=to, text=TEXT)
    request = ADAPTER.build_request(cmd(payload, t.id), payload, t, BASE)
    return ADAPTER.classify(await client.send(request))


async def sent(client: httpx.AsyncClient, t: Tenant, to: str = NUMBER) -> str:
    outcome = await send(client, t, to)
    assert isinstance(outcome, Delivered), outcome
    assert outcome.provider_ref is not None
    return outcome.provider_ref


def account_of(t: Tenant) -> AfricasTalkingAccount:
    return primary(t, AfricasTalkingAccount)


def headers_of(t: Tenant) -> dict[str, str]:
    return {"apiKey": account_of(t).api_key.get_secret_value(), "Accept": "application/json"}


async def arrived(receiver: Receiver, count: int) -> list[httpx.Request]:
    deadline = time.monotonic() + WAIT_SECONDS
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} of {count} receipts came"
        await anyio.sleep(0.02)
    return receiver.requests


def through_the_hub(request: httpx.Request, tenants: TenantDirectory) -> DeliveryReceipt:
    """The report as the ingress verifies it and the normalizer reads it."""
    url = urlsplit(str(request.url))
    assert f"{url.scheme}://{url.netloc}{url.path}" == (
        "http://ingress.test/webhooks/africastalking/t1"
    )
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = dict(parse_qsl(url.query))
    delivery = Delivery("POST", str(request.url), query, headers, request.content, "127.0.0.1")
    keys = check_route("africastalking", "t1", tenants)
    assert isinstance(keys, list)
    raw = accept("africastalking", "t1", keys, delivery)
    assert isinstance(raw, RawWebhook), raw
    found = normalize_africastalking(raw, dict(parse_qsl(raw.body.decode())))
    assert isinstance(found, DeliveryReceipt)
    return found


# --- sending ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_send_is_answered_in_the_recipients_shape(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    payload = SendSms(to=NUMBER, text=TEXT)
    response = await client.send(ADAPTER.build_request(cmd(payload), payload, t1, BASE))
    assert (response.status_code, response.headers["content-type"]) == (201, "application/json")
    data = response.json()["SMSMessageData"]
    assert data["Message"] == "Sent to 1/1 Total Cost: KES 0.8000"
    [recipient] = data["Recipients"]
    assert recipient["messageId"].startswith("ATXid_")
    assert {k: v for k, v in recipient.items() if k != "messageId"} == {
        "statusCode": 101,
        "number": "+254712345678",
        "status": "Success",
        "cost": "KES 0.8000",
    }
    assert ADAPTER.classify(response) == Delivered(
        recipient["messageId"],
        201,
        {"status": "Success", "status_code": "101", "cost": "KES 0.8000", "number": NUMBER},
    )
    [recorded] = app.state.sim.state.recorder.list("africastalking")
    assert (recorded.path, recorded.tenant) == ("/africastalking/version1/messaging", "t1")
    assert recorded.body == {
        "username": "t1-school",
        "to": NUMBER,
        "message": TEXT,
        "bulkSMSMode": "1",
    }


@pytest.mark.anyio
async def test_a_wrong_key_or_another_apps_username_is_refused_in_text(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    form = {"username": "t1-school", "to": NUMBER, "message": "hi"}
    wrong = await client.post(
        "/africastalking/version1/messaging", data=form, headers={"apiKey": "atsk_wrong"}
    )
    assert (wrong.status_code, wrong.text) == (401, INVALID_AUTH)
    assert ADAPTER.classify(wrong) == Rejected(INVALID_AUTH, 401, None)
    # t2's key with t1's username: the key is not that app's.
    mixed = await client.post(
        "/africastalking/version1/messaging", data=form, headers=headers_of(t2)
    )
    assert (mixed.status_code, mixed.text) == (401, INVALID_AUTH)


@pytest.mark.anyio
async def test_an_invalid_number_is_refused_in_its_recipient_entry(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    assert await send(client, t1, "0712345678") == Rejected(
        "InvalidPhoneNumber (statusCode 403)", 201, "403"
    )
    await anyio.sleep(0.4)
    assert receiver.requests == []


@pytest.mark.anyio
async def test_an_unregistered_sender_id_sends_to_no_one(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    form = {"username": "t1-school", "to": NUMBER, "message": "hi", "from": "NOTOURS"}
    answer = await client.post(
        "/africastalking/version1/messaging", data=form, headers=headers_of(t1)
    )
    assert answer.json() == {"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}
    assert ADAPTER.classify(answer) == Rejected(
        "Africa's Talking sent to no recipient: InvalidSenderId", 201, "InvalidSenderId"
    )


@pytest.mark.anyio
async def test_a_missing_field_is_a_400_in_text(client: httpx.AsyncClient, t1: Tenant) -> None:
    answer = await client.post(
        "/africastalking/version1/messaging",
        data={"username": "t1-school", "message": "hi"},
        headers=headers_of(t1),
    )
    assert (answer.status_code, answer.text) == (
        400,
        "Request is missing required form field 'to'",
    )


@pytest.mark.anyio
async def test_a_queued_fault_is_retried(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    # The control plane's fault route lists its providers itself: queue it on the state.
    app.state.sim.state.faults.add(Fault(provider="africastalking", status=502))
    assert await send(client, t1) == RetryLater("Bad Gateway", 502, None)


# --- delivery reports ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_delivered_report_passes_the_hubs_ingress_and_links_to_the_send(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    message_id = await sent(client, t1)
    [report] = await arrived(receiver, 1)
    assert report.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(urlsplit(str(report.url)).query)) == {
        "token": account_of(t1).webhook_token.get_secret_value()
    }
    assert dict(parse_qsl(report.content.decode())) == {
        "id": message_id,
        "status": "Success",
        "phoneNumber": NUMBER,
        "networkCode": "63902",
        "retryCount": "0",
    }
    receipt = through_the_hub(report, tenants)
    assert (receipt.status, receipt.provider_ref, receipt.recipient) == (
        ReceiptStatus.DELIVERED,
        message_id,
        NUMBER,
    )
    assert receipt.provider_event_id == f"{message_id}:Success"


@pytest.mark.anyio
async def test_an_undeliverable_number_reports_failed_with_its_failure_reason(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    ruled = await client.post(
        "/_sim/messages/undeliverable",
        json={"addresses": [NUMBER], "provider": "africastalking"},
    )
    assert ruled.status_code == 200
    message_id = await sent(client, t1)
    [report] = await arrived(receiver, 1)
    receipt = through_the_hub(report, tenants)
    assert (receipt.status, receipt.provider_ref, receipt.provider_status) == (
        ReceiptStatus.UNDELIVERED,
        message_id,
        "Failed",
    )
    assert (receipt.error_code, receipt.error_description) == (
        "DeliveryFailure",
        "Failed: DeliveryFailure",
    )


@pytest.mark.anyio
async def test_a_silent_number_gets_no_report(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    await client.post("/_sim/messages/silent", json={"addresses": [NUMBER]})
    await sent(client, t1)
    await sent(client, t1, "+254700000001")
    [report] = await arrived(receiver, 1)
    await anyio.sleep(0.4)
    assert receiver.requests == [report]
    assert dict(parse_qsl(report.content.decode()))["phoneNumber"] == "+254700000001"


@pytest.mark.anyio
async def test_a_bulk_send_reports_each_accepted_number(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    form = {"username": "t1-school", "to": f"{NUMBER},+254700000001,07bad", "message": "hi"}
    answer = await client.post(
        "/africastalking/version1/messaging", data=form, headers=headers_of(t1)
    )
    data = answer.json()["SMSMessageData"]
    assert data["Message"] == "Sent to 2/3 Total Cost: KES 1.6000"
    assert [(r["number"], r["statusCode"]) for r in data["Recipients"]] == [
        (NUMBER, 101),
        ("+254700000001", 101),
        ("07bad", 403),
    ]
    reports = await arrived(receiver, 2)
    ids = {dict(parse_qsl(r.content.decode()))["id"] for r in reports}
    assert ids == {r["messageId"] for r in data["Recipients"][:2]}


# --- the test connection --------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_app_data_probe_is_ok_and_a_wrong_key_is_auth_failed(
    app: Starlette, t1: Tenant
) -> None:
    settings = Settings(provider_base_urls=providers.simulator_base_urls("http://sim"))
    account = t1.accounts_for("africastalking")[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        ok = await providers.probe(account, settings, http=http)
        assert (ok.status, ok.http_status) == ("ok", 200)
        [recorded] = app.state.sim.state.recorder.list("africastalking")
        assert (recorded.path, recorded.query, recorded.tenant) == (
            "/africastalking/version1/user",
            "username=t1-school",
            "t1",
        )
        config = account.config.model_copy(update={"api_key": SecretStr("atsk_wrong")})
        wrong_account = account.model_copy(update={"config": config})
        wrong = await providers.probe(wrong_account, settings, http=http)
    assert wrong == ProbeResult("auth_failed", f"401 from africastalking: {INVALID_AUTH}", 401)


# --- the official SDK as the oracle, over a real socket ----------------------------------------


@pytest.fixture
def server(tenants: TenantDirectory, receiver: Receiver) -> Iterator[str]:
    app = create_app(
        tenants, webhook_url_template=WEBHOOK_TEMPLATE, webhook_transport=receiver.transport()
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        running.should_exit = True
        thread.join(timeout=10)


def sdk_sms(server: str, username: str, api_key: str) -> SMSService:
    """The SDK's SMS service pointed at the simulator: it builds every URL from
    `_baseUrl` (no public setting for it), as Service.py shows."""
    sms = SMSService(username, api_key)
    sms._baseUrl = f"{server}/africastalking/version1"
    return sms


def test_the_sdk_sends_through_the_simulator_and_reads_the_recipients(
    server: str, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    account = account_of(t1)
    answer: Any = sdk_sms(server, account.username, account.api_key.get_secret_value()).send(
        TEXT, [NUMBER]
    )
    assert isinstance(answer, dict)  # parsed as JSON: the content type was exactly JSON
    data = answer["SMSMessageData"]
    assert data["Message"] == "Sent to 1/1 Total Cost: KES 0.8000"
    [recipient] = data["Recipients"]
    assert (recipient["statusCode"], recipient["status"], recipient["number"]) == (
        101,
        "Success",
        NUMBER,
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while not receiver.requests:
        assert time.monotonic() < deadline, "no delivery report came"
        time.sleep(0.02)
    receipt = through_the_hub(receiver.requests[0], tenants)
    assert (receipt.provider_ref, receipt.status) == (
        recipient["messageId"],
        ReceiptStatus.DELIVERED,
    )


def test_the_sdk_reads_the_refusal_and_the_app_data(server: str, t1: Tenant) -> None:
    account = account_of(t1)
    with pytest.raises(AfricasTalkingException) as refused:
        sdk_sms(server, account.username, "atsk_wrong").send(TEXT, [NUMBER])
    assert str(refused.value) == INVALID_AUTH
    app_data = ApplicationService(account.username, account.api_key.get_secret_value())
    app_data._baseUrl = f"{server}/africastalking/version1"
    assert app_data.fetch_application_data() == {"UserData": {"balance": "KES 1000.0000"}}
