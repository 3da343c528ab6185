"""Faults: N failures then success, provider error shapes, Retry-After, match, FIFO, modes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sim_support import mail, rzp_auth, sendgrid_auth, twilio_auth, twilio_path
from tenant_accounts import primary

from core.tenants import Tenant
from providers.twilio import TwilioAccount

pytestmark = pytest.mark.anyio

TO_A = "+919800000001"
TO_B = "+919800000002"


async def add_fault(client: httpx.AsyncClient, **fault: Any) -> dict[str, Any]:
    response = await client.post("/_sim/faults", json=fault)
    assert response.status_code == 201, response.text
    return dict(response.json()["fault"])


async def sms(client: httpx.AsyncClient, t: Tenant, to: str = TO_A) -> httpx.Response:
    data = {"To": to, "From": "+15005550006", "Body": "hello"}
    return await client.post(twilio_path(t), data=data, headers=twilio_auth(t))


async def order(client: httpx.AsyncClient, t: Tenant) -> httpx.Response:
    body = {"amount": 1000, "currency": "INR"}
    return await client.post("/razorpay/v1/orders", json=body, headers=rzp_auth(t))


async def statuses(client: httpx.AsyncClient, provider: str) -> list[int]:
    found = (await client.get("/_sim/requests", params={"provider": provider})).json()
    return [r["response_status"] for r in found["requests"]]


async def test_status_fault_n_times_then_success(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="twilio", status=503, times=2)
    first, second, third = [await sms(client, t1) for _ in range(3)]
    assert first.status_code == second.status_code == 503
    assert first.json() == {
        "code": 20500,
        "message": "Internal Server Error",
        "more_info": "https://www.twilio.com/docs/errors/20500",
        "status": 503,
    }
    assert third.status_code == 201
    assert await statuses(client, "twilio") == [503, 503, 201]
    assert (await client.get("/_sim/faults")).json() == {"faults": []}


async def test_retry_after_header_and_429_shape(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="twilio", status=429, retry_after=1)
    response = await sms(client, t1)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == 20429
    assert response.json()["message"] == "Too Many Requests"
    await add_fault(client, provider="twilio", status=429, retry_after=0.25)
    assert (await sms(client, t1)).headers["retry-after"] == "0.25"
    assert "retry-after" not in (await sms(client, t1)).headers


async def test_razorpay_5xx_fault_is_server_error(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="razorpay", status=502)
    response = await order(client, t1)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "SERVER_ERROR"
    assert error["source"] == error["step"] == error["reason"] == "NA"


async def test_sendgrid_fault_uses_errors_list(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="sendgrid", status=429, retry_after=2)
    response = await client.post("/sendgrid/v3/mail/send", json=mail(), headers=sendgrid_auth(t1))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json() == {
        "errors": [{"message": "too many requests", "field": None, "help": None}]
    }


async def test_match_only_faults_matching_requests(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="twilio", status=500, match={"To": TO_A})
    assert (await sms(client, t1, TO_B)).status_code == 201
    assert len((await client.get("/_sim/faults")).json()["faults"]) == 1
    assert (await sms(client, t1, TO_A)).status_code == 500
    assert (await sms(client, t1, TO_A)).status_code == 201


async def test_faults_are_fifo_per_provider(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="razorpay", status=500)
    await add_fault(client, provider="twilio", status=503)
    await add_fault(client, provider="razorpay", status=429)
    assert [(await order(client, t1)).status_code for _ in range(3)] == [500, 429, 200]
    remaining = (await client.get("/_sim/faults")).json()["faults"]
    assert [(f["provider"], f["status"]) for f in remaining] == [("twilio", 503)]


async def test_fault_answers_before_auth_and_is_recorded(client: httpx.AsyncClient) -> None:
    await add_fault(client, provider="sendgrid", status=503)
    response = await client.post("/sendgrid/v3/mail/send", json=mail())
    assert response.status_code == 503
    recorded = (await client.get("/_sim/requests")).json()["requests"]
    assert [(r["provider"], r["response_status"], r["tenant"]) for r in recorded] == [
        ("sendgrid", 503, None)
    ]


async def test_timeout_mode_sleeps_then_504(client: httpx.AsyncClient, t1: Tenant) -> None:
    await add_fault(client, provider="twilio", mode="timeout", delay_seconds=0.3, retry_after=5)
    started = time.monotonic()
    response = await sms(client, t1)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 504
    assert response.json()["code"] == 20500
    assert response.headers["retry-after"] == "5"


async def test_slow_mode_sleeps_then_answers_normally(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await add_fault(client, provider="twilio", mode="slow", delay_seconds=0.3)
    started = time.monotonic()
    response = await sms(client, t1)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 201


async def test_list_and_clear_faults(client: httpx.AsyncClient) -> None:
    created = await add_fault(client, provider="twilio", status=500, times=3, match={"To": TO_A})
    assert created["times"] == 3
    listed = (await client.get("/_sim/faults")).json()["faults"]
    assert listed == [created]
    assert (await client.delete("/_sim/faults")).status_code == 200
    assert (await client.get("/_sim/faults")).json()["faults"] == []


@pytest.mark.parametrize(
    "fault",
    [
        {"provider": "nosuch"},
        {"provider": "twilio", "mode": "explode"},
        {"provider": "twilio", "status": 42},
        {"provider": "twilio", "times": 0},
        {"provider": "twilio", "retry_after": -1},
        {"provider": "twilio", "match": ["To"]},
        {"provider": "twilio", "colour": "red"},
    ],
)
async def test_invalid_faults_are_rejected(
    client: httpx.AsyncClient, fault: dict[str, Any]
) -> None:
    response = await client.post("/_sim/faults", json=fault)
    assert response.status_code == 400
    assert response.json()["error"]
    assert (await client.get("/_sim/faults")).json()["faults"] == []


async def test_a_tenant_scoped_fault_hits_only_that_tenants_calls(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    await add_fault(client, provider="twilio", status=503, times=5, tenant=t2.id)
    assert (await sms(client, t1)).status_code == 201  # the other school is untouched
    assert (await sms(client, t2)).status_code == 503
    [left] = (await client.get("/_sim/faults")).json()["faults"]
    assert (left["tenant"], left["times"]) == (t2.id, 4)


async def test_a_fault_tenant_must_be_a_string(client: httpx.AsyncClient) -> None:
    response = await client.post("/_sim/faults", json={"provider": "twilio", "tenant": 7})
    assert response.status_code == 400
    assert "tenant" in response.json()["error"]


async def test_effects_list_what_the_providers_did_whoever_asked(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    await add_fault(client, provider="twilio", status=503, times=1)
    assert (await sms(client, t1, TO_A)).status_code == 503  # failed: no effect
    assert (await sms(client, t2, TO_B)).status_code == 201
    sent = await client.post("/sendgrid/v3/mail/send", json=mail(), headers=sendgrid_auth(t1))
    assert sent.status_code == 202
    assert (await order(client, t1)).status_code == 200
    effects = (await client.get("/_sim/effects")).json()
    assert [(m["to"], m["body"]) for m in effects["sms"]] == [(TO_B, "hello")]
    assert effects["sms"][0]["account_sid"] == primary(t2, TwilioAccount).account_sid
    assert len(effects["mails"]) == 1 and effects["mails"][0]["tenant"] == t1.id
    assert [o["tenant"] for o in effects["orders"]] == [t1.id]
