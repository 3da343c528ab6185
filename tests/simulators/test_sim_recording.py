"""Recorded requests: content, masking, filters, clearing; health and reset."""

from __future__ import annotations

import time

import httpx
import pytest
from sim_support import mail, rzp_auth, sendgrid_auth, twilio_auth, twilio_path

from core.tenants import Tenant

pytestmark = pytest.mark.anyio


async def recorded(client: httpx.AsyncClient, **params: str) -> list[dict[str, object]]:
    response = await client.get("/_sim/requests", params=params)
    assert response.status_code == 200
    return list(response.json()["requests"])


async def send_sms(client: httpx.AsyncClient, t: Tenant, to: str) -> None:
    data = {"To": to, "From": "+15005550006", "Body": f"hi {to}"}
    assert (await client.post(twilio_path(t), data=data, headers=twilio_auth(t))).status_code == 201


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/_sim/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_twilio_request_is_recorded_with_masked_auth(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    before = time.time()
    await send_sms(client, t1, "+919800000001")
    [entry] = await recorded(client)
    assert entry["provider"] == "twilio"
    assert entry["method"] == "POST"
    assert entry["path"] == twilio_path(t1)
    assert entry["body"] == {
        "To": "+919800000001",
        "From": "+15005550006",
        "Body": "hi +919800000001",
    }
    assert entry["response_status"] == 201
    assert entry["tenant"] == "t1"
    assert isinstance(entry["received_at"], float)
    assert before <= entry["received_at"] <= time.time()
    headers = entry["headers"]
    assert isinstance(headers, dict)
    assert headers["authorization"] == "***"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert all(k == k.lower() for k in headers)


async def test_json_bodies_errors_and_tenants_are_recorded(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    body = {"amount": 50000, "currency": "INR", "receipt": "r-1"}
    await client.post("/razorpay/v1/orders", json=body, headers=rzp_auth(t2))
    await client.post("/razorpay/v1/orders", json=body)  # no auth: 401
    await client.post("/sendgrid/v3/mail/send", json=mail(), headers=sendgrid_auth(t1))
    entries = await recorded(client)
    assert [(e["provider"], e["response_status"], e["tenant"]) for e in entries] == [
        ("razorpay", 200, "t2"),
        ("razorpay", 401, None),
        ("sendgrid", 202, "t1"),
    ]
    assert entries[0]["body"] == body
    ids = [int(str(e["id"])) for e in entries]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


async def test_filters(client: httpx.AsyncClient, t1: Tenant) -> None:
    await send_sms(client, t1, "+919800000001")
    await send_sms(client, t1, "+919800000002")
    await send_sms(client, t1, "+919800000001")
    await client.post(
        "/sendgrid/v3/mail/send", json=mail(to="Parent@Example.com"), headers=sendgrid_auth(t1)
    )
    body = {"amount": 50000, "currency": "INR"}
    await client.post("/razorpay/v1/orders", json=body, headers=rzp_auth(t1))

    twilio = await recorded(client, provider="twilio")
    assert len(twilio) == 3
    to_one = await recorded(client, provider="twilio", To="+919800000001")
    assert [e["id"] for e in to_one] == [twilio[0]["id"], twilio[2]["id"]]
    since = await recorded(client, provider="twilio", since_id=str(twilio[0]["id"]))
    assert [e["id"] for e in since] == [twilio[1]["id"], twilio[2]["id"]]
    both = await recorded(client, To="+919800000001", Body="hi +919800000002")
    assert both == []
    assert len(await recorded(client, provider="sendgrid", to="parent@example.com")) == 1
    assert await recorded(client, provider="sendgrid", to="other@example.com") == []
    assert len(await recorded(client, provider="razorpay", amount="50000")) == 1
    assert await recorded(client, provider="razorpay", amount="100") == []


async def test_bad_since_id_is_400(client: httpx.AsyncClient) -> None:
    assert (await client.get("/_sim/requests", params={"since_id": "x"})).status_code == 400


async def test_clear_keeps_ids_increasing(client: httpx.AsyncClient, t1: Tenant) -> None:
    await send_sms(client, t1, "+919800000001")
    [first] = await recorded(client)
    response = await client.delete("/_sim/requests")
    assert response.json() == {"cleared": 1}
    assert await recorded(client) == []
    await send_sms(client, t1, "+919800000001")
    [second] = await recorded(client)
    assert isinstance(first["id"], int)
    assert isinstance(second["id"], int)
    assert second["id"] > first["id"]


async def test_unknown_provider_paths_are_recorded(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await client.get("/twilio/2010-04-01/Accounts.json", headers=twilio_auth(t1))
    assert response.status_code == 404
    assert response.json()["code"] == 20404
    [entry] = await recorded(client, provider="twilio")
    assert entry["path"] == "/twilio/2010-04-01/Accounts.json"
    assert entry["response_status"] == 404


async def test_reset_forgets_everything(client: httpx.AsyncClient, t1: Tenant) -> None:
    body = {"amount": 50000, "currency": "INR"}
    order = (await client.post("/razorpay/v1/orders", json=body, headers=rzp_auth(t1))).json()
    await client.post("/_sim/faults", json={"provider": "twilio"})
    assert (await client.post("/_sim/reset")).status_code == 200
    assert await recorded(client) == []
    assert (await client.get("/_sim/faults")).json()["faults"] == []
    assert (await client.get(f"/_sim/razorpay/orders/{order['id']}")).status_code == 404
