"""The WhatsApp adapter against the WhatsApp simulator: the send and Graph's refusals, then the
status webhooks through the hub's ingress and normalizer, with pywa's validator as the
signature's oracle."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr
from pywa import utils as pywa_utils
from sim_support import Receiver
from starlette.applications import Starlette
from tenant_accounts import primary

import providers
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from providers import ProbeResult
from providers.base import Delivered, Outcome, Rejected, RetryLater
from providers.spec import Delivery
from providers.whatsapp import WhatsApp, WhatsAppAccount
from providers.whatsapp_webhooks import normalize_whatsapp
from schemas.events import (
    ConnectorCommand,
    DeliveryReceipt,
    EventHeader,
    RawWebhook,
    ReceiptStatus,
    SendWhatsApp,
)
from simulators.state import Fault
from simulators.whatsapp import messages
from webhook_ingress.decision import accept, check_route

pytestmark = pytest.mark.anyio

ADAPTER = WhatsApp()
BASE = "http://sim/whatsapp/v21.0"
PHONE = "+919876543210"
NOT_PARSED = "Invalid OAuth access token - Cannot parse access token"


def cmd(payload: SendWhatsApp, tenant_id: str = "t1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, tenant_id, source="test"),
        idempotency_key="key-1",
        provider="whatsapp",
        payload=payload,
    )


def reminder(to: str = PHONE, callback_data: str | None = "key-1") -> SendWhatsApp:
    return SendWhatsApp(
        to=to,
        template="fee_reminder",
        language="en_US",
        parameters=["Asha", "Rs 1,500"],
        callback_data=callback_data,
    )


async def send(
    client: httpx.AsyncClient, t: Tenant, payload: SendWhatsApp, base: str = BASE
) -> tuple[httpx.Response, Outcome]:
    request = ADAPTER.build_request(cmd(payload, t.id), payload, t, base)
    response = await client.send(request)
    return response, ADAPTER.classify(response)


async def sent(client: httpx.AsyncClient, t: Tenant, payload: SendWhatsApp) -> str:
    _, outcome = await send(client, t, payload)
    assert isinstance(outcome, Delivered), outcome
    assert outcome.provider_ref is not None
    return outcome.provider_ref


def account(t: Tenant) -> WhatsAppAccount:
    return primary(t, WhatsAppAccount)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def callbacks(receiver: Receiver, count: int, within: float = 5.0) -> list[httpx.Request]:
    """The webhooks posted so far, once there are `count` (the receipts come after a delay)."""
    deadline = time.monotonic() + within
    for _ in range(int(within / 0.02)):
        if len(receiver.requests) >= count or time.monotonic() > deadline:
            break
        await anyio.sleep(0.02)
    return list(receiver.requests)


def through_the_hub(request: httpx.Request, tenants: TenantDirectory) -> list[DeliveryReceipt]:
    """The status webhook as the ingress verifies it and the normalizer reads it."""
    assert str(request.url) == "http://ingress.test/webhooks/whatsapp/t1"
    headers = {k.lower(): v for k, v in request.headers.items()}
    delivery = Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")
    keys = check_route("whatsapp", "t1", tenants)
    assert isinstance(keys, list)
    raw = accept("whatsapp", "t1", keys, delivery)
    assert isinstance(raw, RawWebhook), raw
    receipts = normalize_whatsapp(raw, json.loads(raw.body))
    assert receipts is not None
    return receipts


# --- the send ------------------------------------------------------------------------------


async def test_a_send_is_answered_with_metas_shape_and_kept(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    response, outcome = await send(client, t1, reminder())
    assert response.status_code == 200
    body = response.json()
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert body == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "919876543210", "wa_id": "919876543210"}],
        "messages": [{"id": wamid}],
    }
    assert outcome == Delivered(wamid, 200, {"wa_id": "919876543210"})
    [stored] = messages(app.state.sim.state).of("t1")
    assert (stored.wamid, stored.to, stored.phone_number_id) == (
        wamid,
        "919876543210",
        account(t1).phone_number_id,
    )
    assert stored.body["template"]["components"][0]["parameters"][1] == {
        "type": "text",
        "text": "Rs 1,500",
    }
    [recorded] = app.state.sim.state.recorder.list("whatsapp")
    assert recorded.path == f"/whatsapp/v21.0/{account(t1).phone_number_id}/messages"
    assert (recorded.tenant, recorded.headers["authorization"]) == ("t1", "***")
    app.state.sim.state.reset()
    assert messages(app.state.sim.state).of("t1") == []


async def test_another_graph_version_is_served_too(client: httpx.AsyncClient, t1: Tenant) -> None:
    _, outcome = await send(client, t1, reminder(), "http://sim/whatsapp/v22.0")
    assert isinstance(outcome, Delivered)


async def test_a_bad_token_is_graphs_190_an_account_error(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    path = f"/whatsapp/v21.0/{account(t1).phone_number_id}/messages"
    for headers in (bearer("EAAGnot-the-token"), {}):
        refused = await client.post(path, json={"messaging_product": "whatsapp"}, headers=headers)
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert (error["message"], error["type"], error["code"]) == (
            NOT_PARSED,
            "OAuthException",
            190,
        )
        assert error["fbtrace_id"]
    outcome = ADAPTER.classify(refused)
    assert outcome == Rejected(NOT_PARSED, 401, "190")
    messaging = providers.get("whatsapp").messaging
    assert messaging is not None
    assert outcome.error_code in messaging.account_errors


async def test_another_businesss_phone_number_id_is_graphs_100(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    theirs = account(t2).phone_number_id
    refused = await client.post(
        f"/whatsapp/v21.0/{theirs}/messages",
        json={"messaging_product": "whatsapp"},
        headers=bearer(account(t1).access_token.get_secret_value()),
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["message"] == (
        f"Unsupported post request. Object with ID '{theirs}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation. Please read the "
        "Graph API documentation at https://developers.facebook.com/docs/graph-api"
    )
    assert (error["type"], error["code"], error["error_subcode"]) == (
        "GraphMethodException",
        100,
        33,
    )
    assert ADAPTER.classify(refused) == Rejected(error["message"], 400, "100")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"to": "919876543210"}, 100, "(#100) The parameter messaging_product is required."),
        ({"messaging_product": "whatsapp"}, 100, "(#100) The parameter to is required."),
        (
            {"messaging_product": "whatsapp", "to": "919876543210", "type": "template"},
            100,
            "(#100) The parameter template['name'] is required.",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": "919876543210",
                "type": "template",
                "template": {"name": "fee_reminder"},
            },
            100,
            "(#100) The parameter template['language'] is required.",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": "919876543210",
                "type": "text",
                "text": {"body": "hi"},
            },
            131047,
            "(#131047) Re-engagement message",
        ),
    ],
)
async def test_an_incomplete_send_is_refused_with_graphs_code(
    client: httpx.AsyncClient, t1: Tenant, body: dict[str, Any], code: int, message: str
) -> None:
    refused = await client.post(
        f"/whatsapp/v21.0/{account(t1).phone_number_id}/messages",
        json=body,
        headers=bearer(account(t1).access_token.get_secret_value()),
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["message"]) == (code, message)
    outcome = ADAPTER.classify(refused)
    assert isinstance(outcome, Rejected)
    assert outcome.error_code == str(code)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (503, RetryLater("Service temporarily unavailable", 503, "2")),
        (429, RetryLater("(#130429) Rate limit hit: Cloud API message throughput has been "
                         "reached.", 429, "130429")),
        (500, RetryLater("Something went wrong", 500, "131000")),
        (401, Rejected(NOT_PARSED, 401, "190")),
    ],
)  # fmt: skip
async def test_a_queued_fault_is_answered_as_meta(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant, status: int, expected: Outcome
) -> None:
    # Queued on the state: `/_sim/faults` accepts the providers simulators.state names.
    app.state.sim.state.faults.add(Fault(provider="whatsapp", status=status))
    _, outcome = await send(client, t1, reminder())
    assert outcome == expected
    assert messages(app.state.sim.state).of("t1") == []  # Meta never had it


async def test_an_unknown_path_is_graphs_2500(client: httpx.AsyncClient) -> None:
    answer = await client.get("/whatsapp/v21.0/123/nothing/here")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["message"]) == (
        2500,
        "Unknown path components: /whatsapp/v21.0/123/nothing/here",
    )


# --- the status webhooks ---------------------------------------------------------------------


async def test_a_delivered_message_sends_sent_then_delivered_which_the_hub_accepts(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    wamid = await sent(client, t1, reminder())
    first, second = await callbacks(receiver, 2)
    app_secret = account(t1).app_secret.get_secret_value()
    for request in (first, second):
        assert pywa_utils.webhook_updates_validator(
            app_secret, request.content, request.headers["x-hub-signature-256"]
        )
        assert request.headers["content-type"] == "application/json"
    [sent_receipt] = through_the_hub(first, tenants)
    [delivered] = through_the_hub(second, tenants)
    assert (sent_receipt.status, sent_receipt.provider_ref) == (ReceiptStatus.SENT, wamid)
    assert (delivered.status, delivered.provider_ref) == (ReceiptStatus.DELIVERED, wamid)
    assert (delivered.provider_status, delivered.provider_event_id) == (
        "delivered",
        f"{wamid}:delivered",
    )
    assert (delivered.recipient, delivered.idempotency_key) == ("919876543210", "key-1")
    assert (delivered.error_code, delivered.error_description) == (None, None)
    body = json.loads(second.content)
    value = body["entry"][0]["changes"][0]["value"]
    assert (body["object"], body["entry"][0]["id"]) == (
        "whatsapp_business_account",
        account(t1).waba_id,
    )
    assert body["entry"][0]["changes"][0]["field"] == "messages"
    assert value["metadata"]["phone_number_id"] == account(t1).phone_number_id
    assert value["statuses"][0]["biz_opaque_callback_data"] == "key-1"


async def test_an_undeliverable_number_gets_one_failed_status_with_131026(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    rule = {"addresses": [PHONE], "provider": "whatsapp"}
    assert (await client.post("/_sim/messages/undeliverable", json=rule)).status_code == 200
    wamid = await sent(client, t1, reminder(callback_data=None))
    [failed] = await callbacks(receiver, 1)
    [receipt] = through_the_hub(failed, tenants)
    assert (receipt.status, receipt.provider_status, receipt.provider_ref) == (
        ReceiptStatus.UNDELIVERED,
        "failed",
        wamid,
    )
    assert (receipt.error_code, receipt.error_description) == ("131026", "Message undeliverable")
    assert receipt.idempotency_key is None
    await anyio.sleep(0.4)
    assert len(receiver.requests) == 1  # nothing follows a failure
    listed = (await client.get("/_sim/messages/receipts", params={"provider": "whatsapp"})).json()
    assert [(r["order_id"], r["event"]) for r in listed["receipts"]] == [(wamid, "failed")]


async def test_a_silent_number_gets_no_status(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    # The rule written without the "+" the hub's number has: the same number.
    rule = {"addresses": ["919876543210"], "provider": "whatsapp"}
    assert (await client.post("/_sim/messages/silent", json=rule)).status_code == 200
    await sent(client, t1, reminder())
    await anyio.sleep(0.6)
    assert receiver.requests == []


async def test_a_rule_for_another_provider_does_not_apply(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    rule = {"addresses": [PHONE], "provider": "twilio"}
    assert (await client.post("/_sim/messages/silent", json=rule)).status_code == 200
    await sent(client, t1, reminder())
    assert len(await callbacks(receiver, 2)) == 2


# --- the test connection -------------------------------------------------------------------------

SETTINGS = Settings(provider_base_urls=providers.simulator_base_urls("http://sim"))


async def test_the_probe_reads_the_number_and_a_wrong_token_is_auth_failed(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    [wa] = t1.accounts_for("whatsapp")
    ok = await providers.probe(wa, SETTINGS, http=client)
    assert (ok.status, ok.http_status) == ("ok", 200)
    [recorded] = app.state.sim.state.recorder.list("whatsapp")
    assert recorded.path == f"/whatsapp/v21.0/{account(t1).phone_number_id}"
    config = wa.config.model_copy(update={"access_token": SecretStr("wrong-credential-0000")})
    wrong = await providers.probe(wa.model_copy(update={"config": config}), SETTINGS, http=client)
    assert wrong == ProbeResult("auth_failed", f"401 from whatsapp: {NOT_PARSED} (190)", 401)
    number = await client.get(
        f"/whatsapp/v21.0/{account(t1).phone_number_id}",
        headers=bearer(account(t1).access_token.get_secret_value()),
    )
    assert number.json() == {
        "verified_name": "School One",
        "code_verification_status": "VERIFIED",
        "display_phone_number": "1555" + account(t1).phone_number_id[-7:],
        "quality_rating": "GREEN",
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
        "id": account(t1).phone_number_id,
    }
