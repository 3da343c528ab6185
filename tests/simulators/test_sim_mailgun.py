"""The Mailgun adapter against the Mailgun simulator: the send, Mailgun's refusals, and each
message's signed webhook through the hub's ingress and normalizer (the `mailgun` SDK's
SecurityGuard as the signature's oracle)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from mailgun.security import SecurityGuard
from sim_support import Receiver, basic
from starlette.applications import Starlette
from tenant_accounts import primary

from core.tenants import Tenant, TenantDirectory
from providers.base import Delivered, Outcome, Rejected, RetryLater
from providers.mailgun import Mailgun, MailgunAccount
from providers.mailgun_receipts import normalize_mailgun
from providers.spec import Delivery
from schemas.events import (
    ConnectorCommand,
    DeliveryReceipt,
    EventHeader,
    RawWebhook,
    ReceiptStatus,
    SendEmail,
)
from simulators.mailgun import BOUNCE_MESSAGE, NO_BODY
from simulators.state import Fault
from webhook_ingress.decision import accept, check_route

pytestmark = pytest.mark.anyio

ADAPTER = Mailgun()
BASE = "http://sim/mailgun"
MESSAGE_ID = re.compile(r"\d{14}\.[0-9a-f]{16}@mg\.t1\.school\.example")


def cmd(to: str = "parent@example.com", key: str = "key-1") -> ConnectorCommand:
    payload = SendEmail(to=to, to_name="Parent", subject="Fee receipt", text="Thank you")
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test"),
        idempotency_key=key,
        provider="mailgun",
        payload=payload,
    )


async def send(
    client: httpx.AsyncClient, t: Tenant, command: ConnectorCommand
) -> tuple[httpx.Response, Outcome]:
    request = ADAPTER.build_request(command, command.payload, t, BASE)
    response = await client.send(request)
    return response, ADAPTER.classify(response)


def auth(t: Tenant) -> dict[str, str]:
    return basic("api", primary(t, MailgunAccount).api_key.get_secret_value())


async def webhooks(receiver: Receiver, count: int, wait: float = 3.0) -> list[httpx.Request]:
    """The webhooks posted so far, once there are `count` (or after `wait` seconds)."""
    for _ in range(int(wait / 0.05)):
        if len(receiver.requests) >= count:
            break
        await asyncio.sleep(0.05)
    return list(receiver.requests)


def through_the_hub(request: httpx.Request, tenants: TenantDirectory) -> DeliveryReceipt:
    assert str(request.url) == "http://ingress.test/webhooks/mailgun/t1"
    headers = {k.lower(): v for k, v in request.headers.items()}
    delivery = Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")
    keys = check_route("mailgun", "t1", tenants)
    assert isinstance(keys, list)
    raw = accept("mailgun", "t1", keys, delivery)
    assert isinstance(raw, RawWebhook), raw
    receipt = normalize_mailgun(raw, json.loads(raw.body))
    assert isinstance(receipt, DeliveryReceipt)
    return receipt


# --- the send ------------------------------------------------------------------------


async def test_a_send_is_queued_with_a_message_id_of_the_domain(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    response, outcome = await send(client, t1, cmd())
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Queued. Thank you."
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref is not None
    assert MESSAGE_ID.fullmatch(outcome.provider_ref)
    assert body["id"] == f"<{outcome.provider_ref}>"


async def test_the_simulator_records_the_form_the_adapter_sent(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await send(client, t1, cmd(key="receipt-42"))
    recorded = (await client.get("/_sim/requests", params={"provider": "mailgun"})).json()
    [entry] = recorded["requests"]
    assert entry["path"] == "/mailgun/v3/mg.t1.school.example/messages"
    assert entry["headers"]["authorization"] == "***"
    assert entry["tenant"] == "t1"
    assert entry["body"]["to"] == "Parent <parent@example.com>"
    assert entry["body"]["v:idempotency_key"] == "receipt-42"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic YXBpOm5vcGU="}, "user"])
async def test_a_missing_or_wrong_key_is_a_plain_forbidden(
    client: httpx.AsyncClient, t1: Tenant, headers: Any
) -> None:
    if headers == "user":  # the right key under another user name than "api"
        headers = basic("apikey", primary(t1, MailgunAccount).api_key.get_secret_value())
    response = await client.post(
        "/mailgun/v3/mg.t1.school.example/messages",
        data={"from": "a@b.example", "to": "c@d.example", "text": "x"},
        headers=headers,
    )
    assert (response.status_code, response.text) == (401, "Forbidden")
    assert ADAPTER.classify(response) == Rejected("Forbidden", 401, "401")


async def test_another_schools_domain_is_not_found(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    domain = primary(t2, MailgunAccount).domain
    response = await client.post(
        f"/mailgun/v3/{domain}/messages",
        data={"from": "a@b.example", "to": "c@d.example", "text": "x"},
        headers=auth(t1),
    )
    assert response.status_code == 404
    assert response.json() == {"message": "Domain not found: mg.t2.school.example"}
    assert ADAPTER.classify(response) == Rejected(
        "Domain not found: mg.t2.school.example", 404, "404"
    )


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"to": "c@d.example", "text": "x"}, "'from' parameter is missing"),
        ({"from": "a@b.example", "text": "x"}, "'to' parameter is missing"),
        (
            {"from": "a@b.example", "to": "not-an-address", "text": "x"},
            "'to' parameter is not a valid address. please check documentation",
        ),
        ({"from": "a@b.example", "to": "c@d.example", "subject": "s"}, NO_BODY),
    ],
)
async def test_an_incomplete_form_is_a_400_with_mailguns_message(
    client: httpx.AsyncClient, t1: Tenant, form: dict[str, str], message: str
) -> None:
    response = await client.post(
        "/mailgun/v3/mg.t1.school.example/messages", data=form, headers=auth(t1)
    )
    assert (response.status_code, response.json()) == (400, {"message": message})
    assert ADAPTER.classify(response) == Rejected(message, 400, "400")


async def test_a_queued_fault_is_retried(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    # Queued on the state itself: /_sim/faults names its providers in simulators/state.py.
    app.state.sim.state.faults.add(Fault(provider="mailgun", status=503, retry_after=2.0))
    response, outcome = await send(client, t1, cmd())
    assert response.json() == {"message": "Service Unavailable"}
    assert outcome == RetryLater("Service Unavailable", 503, "503", 2.0)
    _, again = await send(client, t1, cmd())
    assert isinstance(again, Delivered)


async def test_the_probe_reads_the_domain(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await client.send(ADAPTER.probe_request(t1, None, BASE))
    assert response.status_code == 200
    assert response.json()["domain"]["name"] == "mg.t1.school.example"


# --- the webhooks --------------------------------------------------------------------


async def test_a_delivered_message_is_a_signed_webhook_the_hub_reads_as_delivered(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    _, outcome = await send(client, t1, cmd(key="receipt-42"))
    assert isinstance(outcome, Delivered)
    [request] = await webhooks(receiver, 1)
    assert request.headers["content-type"] == "application/json"
    receipt = through_the_hub(request, tenants)
    assert (receipt.status, receipt.provider_status) == (ReceiptStatus.DELIVERED, "delivered")
    assert receipt.provider_ref == outcome.provider_ref
    assert (receipt.recipient, receipt.idempotency_key) == ("parent@example.com", "receipt-42")
    # The official SDK accepts the simulator's signature with the account's signing key.
    signature = json.loads(request.content)["signature"]
    signing_key = primary(t1, MailgunAccount).webhook_signing_key.get_secret_value()
    assert len(signature["token"]) == 50
    assert SecurityGuard.verify_webhook(
        signing_key, signature["token"], signature["timestamp"], signature["signature"]
    )


async def test_an_undeliverable_address_is_a_permanent_failure_with_550(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    rule = {"addresses": ["gone@example.com"], "provider": "mailgun"}
    assert (await client.post("/_sim/messages/undeliverable", json=rule)).status_code == 200
    _, outcome = await send(client, t1, cmd(to="gone@example.com"))
    assert isinstance(outcome, Delivered)
    [request] = await webhooks(receiver, 1)
    receipt = through_the_hub(request, tenants)
    assert (receipt.status, receipt.provider_status) == (
        ReceiptStatus.UNDELIVERED,
        "failed:permanent",
    )
    assert (receipt.error_code, receipt.error_description) == ("550", BOUNCE_MESSAGE)
    assert receipt.provider_ref == outcome.provider_ref


async def test_a_silent_address_gets_no_webhook(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    rule = {"addresses": ["quiet@example.com"]}
    assert (await client.post("/_sim/messages/silent", json=rule)).status_code == 200
    _, outcome = await send(client, t1, cmd(to="quiet@example.com"))
    assert isinstance(outcome, Delivered)
    assert await webhooks(receiver, 1, wait=0.6) == []
    listed = (await client.get("/_sim/messages/receipts", params={"provider": "mailgun"})).json()
    assert listed == {"receipts": []}


async def test_each_recipient_of_one_message_gets_its_own_webhook(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    rule = {"addresses": ["gone@example.com"], "provider": "mailgun"}
    await client.post("/_sim/messages/undeliverable", json=rule)
    form = {
        "from": "fees@mg.t1.school.example",
        "to": ["a@example.com, gone@example.com", "Mr B <b@example.com>"],
        "text": "x",
    }
    response = await client.post(
        "/mailgun/v3/mg.t1.school.example/messages", data=form, headers=auth(t1)
    )
    assert response.status_code == 200
    receipts = [through_the_hub(r, tenants) for r in await webhooks(receiver, 3)]
    assert sorted((r.recipient, r.status) for r in receipts) == [
        ("a@example.com", ReceiptStatus.DELIVERED),
        ("b@example.com", ReceiptStatus.DELIVERED),
        ("gone@example.com", ReceiptStatus.UNDELIVERED),
    ]
    assert {r.provider_ref for r in receipts} == {response.json()["id"][1:-1]}
