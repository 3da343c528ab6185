"""The MSG91 adapter against the MSG91 simulator: Flow sends, auth refused MSG91's way,
"HTTP 200 but failed", the balance probe, and v3 delivery reports through the hub's
ingress and normalizer (MSG91 has no official SDK to use as an oracle)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx
import pytest
from pydantic import SecretStr
from sim_support import Receiver
from starlette.applications import Starlette
from tenant_accounts import primary

import providers
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from providers import ProbeResult
from providers.base import Delivered, Outcome, Rejected, RetryLater
from providers.msg91 import Msg91, Msg91Account
from providers.msg91_receipts import normalize_msg91
from providers.spec import Delivery
from schemas.events import (
    ConnectorCommand,
    DeliveryReceipt,
    EventHeader,
    RawWebhook,
    ReceiptStatus,
    SendSms,
)
from simulators.state import Fault
from webhook_ingress.decision import accept, check_route

pytestmark = pytest.mark.anyio

ADAPTER = Msg91()
BASE = "http://sim/msg91"
NUMBER = "+919876543210"
TEMPLATE = "6601a2b3c4d5e6f7a8b9c0d1"
WAIT_SECONDS = 3.0


def sms(to: str = NUMBER, **fields: Any) -> SendSms:
    return SendSms(
        to=to,
        text="Fee received. Thank you.",
        template_id=fields.pop("template_id", TEMPLATE),
        variables=fields.pop("variables", {"name": "Asha", "amount": "1,500"}),
        **fields,
    )


def cmd(payload: SendSms, tenant_id: str = "t1") -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, tenant_id, source="test"),
        idempotency_key="key-1",
        provider="msg91",
        payload=payload,
    )


async def send(client: httpx.AsyncClient, t: Tenant, payload: SendSms) -> Outcome:
    request = ADAPTER.build_request(cmd(payload, t.id), payload, t, BASE)
    return ADAPTER.classify(await client.send(request))


async def sent(client: httpx.AsyncClient, t: Tenant, to: str = NUMBER) -> str:
    outcome = await send(client, t, sms(to))
    assert isinstance(outcome, Delivered), outcome
    assert outcome.provider_ref is not None
    return outcome.provider_ref


def key_of(t: Tenant) -> str:
    return primary(t, Msg91Account).authkey.get_secret_value()


async def arrived(receiver: Receiver, count: int) -> list[httpx.Request]:
    deadline = time.monotonic() + WAIT_SECONDS
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} of {count} receipts came"
        await anyio.sleep(0.02)
    return receiver.requests


def through_the_hub(request: httpx.Request, tenants: TenantDirectory) -> DeliveryReceipt:
    """The report as the ingress verifies it and the normalizer reads it."""
    url = urlsplit(str(request.url))
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://ingress.test/webhooks/msg91/t1"
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = dict(parse_qsl(url.query))
    delivery = Delivery("POST", str(request.url), query, headers, request.content, "127.0.0.1")
    keys = check_route("msg91", "t1", tenants)
    assert isinstance(keys, list)
    raw = accept("msg91", "t1", keys, delivery)
    assert isinstance(raw, RawWebhook), raw
    found = normalize_msg91(raw, json.loads(raw.body))
    assert isinstance(found, DeliveryReceipt)
    return found


# --- sending ---------------------------------------------------------------------------


async def test_a_send_is_answered_with_a_request_id_and_recorded_as_sent(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    request_id = await sent(client, t1)
    assert len(request_id) == 24
    assert int(request_id, 16) >= 0  # hex, like MSG91's
    [recorded] = app.state.sim.state.recorder.list("msg91")
    assert (recorded.path, recorded.tenant, recorded.response_status) == (
        "/msg91/api/v5/flow/",
        "t1",
        200,
    )
    assert recorded.headers["authkey"] == "***"
    assert recorded.body == {
        "template_id": TEMPLATE,
        "short_url": "0",
        "recipients": [{"mobiles": "919876543210", "name": "Asha", "amount": "1,500"}],
        "sender": "SCHOOL",
    }


async def test_the_flow_path_without_the_trailing_slash_works_too(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    answer = await client.post(
        "/msg91/api/v5/flow",
        json={"template_id": "any", "recipients": [{"mobiles": "919876543210"}]},
        headers={"authkey": key_of(t1)},
    )
    assert answer.status_code == 200
    assert answer.json()["type"] == "success"


async def test_a_wrong_or_missing_authkey_is_refused_msg91s_way(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    body = {"template_id": TEMPLATE, "recipients": [{"mobiles": "919876543210"}]}
    wrong = await client.post("/msg91/api/v5/flow/", json=body, headers={"authkey": "nope"})
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"type": "error", "message": "Invalid authentication key", "code": "207"},
    )
    missing = await client.post("/msg91/api/v5/flow/", json=body)
    assert (missing.status_code, missing.json()) == (
        401,
        {"type": "error", "message": "Missing Authentication Key", "code": "106"},
    )
    outcome = ADAPTER.classify(wrong)
    assert outcome == Rejected("Invalid authentication key", 401, "207")
    messaging = providers.get("msg91").messaging
    assert messaging is not None
    assert "207" in messaging.account_errors  # the account, not the message: try the backup


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"template_id": TEMPLATE, "recipients": [{"mobiles": "12345"}]},
            {"type": "error", "message": "Invalid mobile number", "code": "202"},
        ),
        (
            {"template_id": TEMPLATE, "recipients": []},
            {"type": "error", "message": "Missing mobile no.", "code": "101"},
        ),
        (
            {"recipients": [{"mobiles": "919876543210"}]},
            {"type": "error", "message": "Template ID missing"},
        ),
    ],
)
async def test_an_unusable_body_is_http_200_with_type_error(
    client: httpx.AsyncClient, t1: Tenant, body: dict[str, Any], expected: dict[str, str]
) -> None:
    answer = await client.post("/msg91/api/v5/flow/", json=body, headers={"authkey": key_of(t1)})
    assert (answer.status_code, answer.json()) == (200, expected)
    assert ADAPTER.classify(answer) == Rejected(expected["message"], 200, expected.get("code"))


async def test_an_invalid_number_from_the_hub_is_rejected_on_the_body(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    assert await send(client, t1, sms("+91 12")) == Rejected("Invalid mobile number", 200, "202")
    await anyio.sleep(0.4)
    assert receiver.requests == []


async def test_a_queued_fault_is_answered_as_msg91_and_retried(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    # The control plane's fault route lists its providers itself: queue it on the state.
    app.state.sim.state.faults.add(Fault(provider="msg91", status=503))
    assert await send(client, t1, sms()) == RetryLater("Internal server error", 503, None)


# --- delivery reports ----------------------------------------------------------------------


async def test_a_delivered_report_passes_the_hubs_ingress_and_links_to_the_send(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    request_id = await sent(client, t1)
    [report] = await arrived(receiver, 1)
    assert report.headers["content-type"] == "application/json"
    assert dict(parse_qsl(urlsplit(str(report.url)).query)) == {
        "token": primary(t1, Msg91Account).webhook_token.get_secret_value()
    }
    body = json.loads(report.content)
    assert (body["requestId"], body["number"], body["status"], body["desc"]) == (
        request_id,
        "919876543210",
        "1",
        "DELIVERED",
    )
    receipt = through_the_hub(report, tenants)
    assert (receipt.status, receipt.provider_ref, receipt.recipient) == (
        ReceiptStatus.DELIVERED,
        request_id,
        "919876543210",
    )
    assert receipt.provider_event_id == f"{request_id}:919876543210:1"
    assert receipt.occurred_at is not None


async def test_an_undeliverable_number_reports_failed_with_msg91s_code(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    ruled = await client.post(
        "/_sim/messages/undeliverable", json={"addresses": [NUMBER], "provider": "msg91"}
    )
    assert ruled.status_code == 200
    request_id = await sent(client, t1)
    [report] = await arrived(receiver, 1)
    receipt = through_the_hub(report, tenants)
    assert (receipt.status, receipt.provider_ref, receipt.error_code) == (
        ReceiptStatus.UNDELIVERED,
        request_id,
        "2",
    )
    assert (receipt.provider_status, receipt.error_description) == ("FAILED (2)", "FAILED")


async def test_a_rule_naming_the_number_without_the_plus_applies_too(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    await client.post("/_sim/messages/undeliverable", json={"addresses": ["919876543210"]})
    await sent(client, t1)
    [report] = await arrived(receiver, 1)
    assert through_the_hub(report, tenants).status is ReceiptStatus.UNDELIVERED


async def test_a_silent_number_gets_no_report(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    await client.post("/_sim/messages/silent", json={"addresses": [NUMBER], "provider": "msg91"})
    await sent(client, t1)
    await sent(client, t1, "+919000000001")  # another number still gets its report
    [report] = await arrived(receiver, 1)
    await anyio.sleep(0.4)
    assert receiver.requests == [report]
    assert json.loads(report.content)["number"] == "919000000001"
    listed = await client.get("/_sim/messages/receipts", params={"provider": "msg91"})
    assert [r["event"] for r in listed.json()["receipts"]] == ["DELIVERED"]


async def test_each_number_of_a_multi_number_recipient_gets_its_report(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    answer = await client.post(
        "/msg91/api/v5/flow/",
        json={"template_id": TEMPLATE, "recipients": [{"mobiles": "919876543210,919000000001"}]},
        headers={"authkey": key_of(t1)},
    )
    request_id = answer.json()["message"]
    reports = await arrived(receiver, 2)
    assert sorted(json.loads(r.content)["number"] for r in reports) == [
        "919000000001",
        "919876543210",
    ]
    assert {json.loads(r.content)["requestId"] for r in reports} == {request_id}


async def test_another_schools_send_reports_to_its_own_route(
    client: httpx.AsyncClient, t2: Tenant, receiver: Receiver
) -> None:
    await sent(client, t2)
    [report] = await arrived(receiver, 1)
    assert str(report.url).startswith("http://ingress.test/webhooks/msg91/t2?token=")


# --- the test connection -------------------------------------------------------------------


async def test_the_balance_probe_is_ok_and_a_wrong_key_is_auth_failed(
    app: Starlette, t1: Tenant
) -> None:
    settings = Settings(provider_base_urls=providers.simulator_base_urls("http://sim"))
    account = t1.accounts_for("msg91")[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        ok = await providers.probe(account, settings, http=http)
        assert (ok.status, ok.http_status) == ("ok", 200)
        [recorded] = app.state.sim.state.recorder.list("msg91")
        assert (recorded.path, recorded.query, recorded.tenant) == (
            "/msg91/api/balance.php",
            "type=4",
            "t1",
        )
        config = account.config.model_copy(update={"authkey": SecretStr("wrong-key")})
        wrong = await providers.probe(
            account.model_copy(update={"config": config}), settings, http=http
        )
    assert wrong == ProbeResult(
        "auth_failed", "401 from msg91: Invalid authentication key (207)", 401
    )


async def test_the_balance_answers_text_to_the_documented_query_form_too(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    answer = await client.get("/msg91/api/balance.php", params={"authkey": key_of(t1), "type": "4"})
    assert (answer.status_code, answer.text) == (200, "1000")
