"""Mobile app backend and SMS gateway simulators; faults and recording for every
outbound-sync provider (Google token endpoint, Directory, FCM, mobile app, SMS gateway)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from sim_support import (
    bearer,
    directory_token,
    fcm_token,
    mobileapp_auth,
    school_domain,
    smsgateway_auth,
    token_response,
)
from tenant_accounts import primary

from core.tenants import Tenant
from providers.fcm import FcmAccount
from providers.mobileapp import MobileAppAccount
from providers.smsgateway import SmsGatewayAccount

pytestmark = pytest.mark.anyio


def profile_path(student: str) -> str:
    return f"/mobileapp/api/v1/students/{student}/profile"


CONTACTS = "/smsgateway/v1/contacts/update"


async def recorded(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    return list((await client.get("/_sim/requests", params=params)).json()["requests"])


# --- the mobile app backend --------------------------------------------------------


async def test_profile_put_merges_per_tenant_and_student(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    first = await client.put(
        profile_path("S-1001"),
        json={"phone": "+919812345678", "guardian": "Meena Rao"},
        headers=mobileapp_auth(t1),
    )
    assert first.status_code == 200, first.text
    assert first.json()["profile"] == {"phone": "+919812345678", "guardian": "Meena Rao"}
    assert datetime.fromisoformat(first.json()["updated_at"]).tzinfo is not None
    second = await client.put(
        profile_path("S-1001"), json={"guardian": None, "house": "Blue"}, headers=mobileapp_auth(t1)
    )
    assert second.json()["student_id"] == "S-1001"
    assert second.json()["profile"] == {"phone": "+919812345678", "guardian": None, "house": "Blue"}
    other = await client.put(
        profile_path("S-1001"), json={"house": "Red"}, headers=mobileapp_auth(t2)
    )
    assert other.json()["profile"] == {"house": "Red"}
    fetched = await client.get(profile_path("S-1001"), headers=mobileapp_auth(t1))
    assert fetched.json() == second.json()
    profiles = (await client.get("/_sim/mobileapp/profiles")).json()["profiles"]
    assert sorted((p["tenant"], p["profile"]["house"]) for p in profiles) == [
        ("t1", "Blue"),
        ("t2", "Red"),
    ]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
async def test_profile_without_a_valid_key_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.put(profile_path("S-1"), json={"house": "Blue"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "message": "invalid API key"}
    assert (await client.get("/_sim/mobileapp/profiles")).json()["profiles"] == []


@pytest.mark.parametrize(
    ("content", "status", "error", "message"),
    [
        (b'["house"]', 400, "bad_request", "request body must be a JSON object of profile fields"),
        (b'{"house": 7}', 400, "bad_request", "field 'house' must be a string or null"),
        (b'{"house": ', 400, "bad_request", "request body is not valid JSON"),
        (
            b'{"phone": "98123 45678"}',
            422,
            "invalid_phone",
            "phone must be in E.164 format, e.g. +919876543210",
        ),
    ],
)
async def test_profile_validation(
    client: httpx.AsyncClient, t1: Tenant, content: bytes, status: int, error: str, message: str
) -> None:
    headers = {**mobileapp_auth(t1), "Content-Type": "application/json"}
    response = await client.put(profile_path("S-1"), content=content, headers=headers)
    assert response.status_code == status
    assert (response.json()["error"], response.json()["message"]) == (error, message)
    assert (await client.get("/_sim/mobileapp/profiles")).json()["profiles"] == []


# --- the SMS gateway's contact book ------------------------------------------------


async def test_contact_update_keeps_one_contact_per_student(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    for phone in ("+919800000001", "+919800000002"):
        body = {"phone": phone, "studentId": "S-1001"}
        response = await client.post(CONTACTS, json=body, headers=smsgateway_auth(t1))
        assert response.status_code == 200
        assert response.json() == {"type": "success", "message": "Contact updated"}
    [contact] = (await client.get("/_sim/smsgateway/contacts")).json()["contacts"]
    assert (contact["tenant"], contact["studentId"], contact["phone"]) == (
        "t1",
        "S-1001",
        "+919800000002",
    )


@pytest.mark.parametrize("headers", [{}, {"authkey": "wrong"}, {"Authorization": "Bearer x"}])
async def test_contact_update_without_authkey_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {"phone": "+919800000001", "studentId": "S-1"}
    response = await client.post(CONTACTS, json=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"type": "error", "message": "Authentication failure"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"phone": "9800000001", "studentId": "S-1"}, "Invalid phone number"),
        ({"phone": "+91-98000-00001", "studentId": "S-1"}, "Invalid phone number"),
        ({"studentId": "S-1"}, "Missing required field: phone"),
        ({"phone": "+919800000001"}, "Missing required field: studentId"),
        (["+919800000001"], "Request body must be a JSON object"),
    ],
)
async def test_contact_update_validation(
    client: httpx.AsyncClient, t1: Tenant, body: Any, message: str
) -> None:
    response = await client.post(CONTACTS, json=body, headers=smsgateway_auth(t1))
    assert response.status_code == 400
    assert response.json() == {"type": "error", "message": message}
    assert (await client.get("/_sim/smsgateway/contacts")).json()["contacts"] == []


# --- faults and recording -----------------------------------------


async def test_faults_apply_in_each_providers_shape(client: httpx.AsyncClient, t1: Tenant) -> None:
    faults = [
        ("google", 503, {"error": "internal_failure", "error_description": "Backend Error"}),
        ("mobileapp", 429, {"error": "rate_limited", "message": "too many requests, slow down"}),
        ("smsgateway", 500, {"type": "error", "message": "Internal server error"}),
    ]
    for provider, status, _ in faults:
        fault = {"provider": provider, "status": status, "retry_after": 2}
        assert (await client.post("/_sim/faults", json=fault)).status_code == 201
    token = await token_response(client, "x.y.z")
    profile = await client.put(profile_path("S-1"), json={}, headers=mobileapp_auth(t1))
    contact = await client.post(CONTACTS, json={}, headers=smsgateway_auth(t1))
    for response, (_, status, body) in zip((token, profile, contact), faults, strict=True):
        assert (response.status_code, response.json()) == (status, body)
        assert response.headers["retry-after"] == "2"
    # Directory rate limiting is a 403; FCM's quota is a 429 with its own error code.
    headers = bearer(await directory_token(client, t1))
    for fault in ({"provider": "gworkspace", "status": 403}, {"provider": "fcm", "status": 429}):
        await client.post("/_sim/faults", json=fault)
    user = await client.patch(
        f"/gworkspace/admin/directory/v1/users/a@{school_domain(t1)}", json={}, headers=headers
    )
    assert user.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    push = await client.post(
        f"/fcm/v1/projects/{primary(t1, FcmAccount).project_id}/messages:send",
        json={"message": {"topic": "all"}},
        headers=bearer(await fcm_token(client, t1)),
    )
    assert push.status_code == 429
    assert push.json()["error"]["details"][0]["errorCode"] == "QUOTA_EXCEEDED"
    assert (await client.get("/_sim/faults")).json()["faults"] == []


async def test_recordings_mask_every_credential(client: httpx.AsyncClient, t1: Tenant) -> None:
    directory = await directory_token(client, t1)
    push = await fcm_token(client, t1)
    for email in ("asha", "ravi"):
        await client.patch(
            f"/gworkspace/admin/directory/v1/users/{email}@{school_domain(t1)}",
            json={"phones": []},
            headers=bearer(directory),
        )
    await client.put(profile_path("S-1"), json={"house": "Blue"}, headers=mobileapp_auth(t1))
    await client.post(
        CONTACTS, json={"phone": "+919800000001", "studentId": "S-1"}, headers=smsgateway_auth(t1)
    )
    entries = await recorded(client)
    assert [(e["provider"], e["tenant"], e["response_status"]) for e in entries] == [
        ("google", "t1", 200),
        ("google", "t1", 200),
        ("gworkspace", "t1", 200),
        ("gworkspace", "t1", 200),
        ("mobileapp", "t1", 200),
        ("smsgateway", "t1", 200),
    ]
    assert entries[-1]["headers"]["authkey"] == "***"
    assert all(e["headers"]["authorization"] == "***" for e in entries[2:5])
    dumped = json.dumps(entries)
    for secret in (directory, push, primary(t1, MobileAppAccount).api_key.get_secret_value()):
        assert secret not in dumped
    assert primary(t1, SmsGatewayAccount).api_key.get_secret_value() not in dumped
    [ravi] = await recorded(client, provider="gworkspace", path="/users/ravi@")
    assert ravi["path"].endswith(f"/users/ravi@{school_domain(t1)}")
    assert len(await recorded(client, path="/api/v1/students/S-1/")) == 1


async def test_unknown_paths_are_recorded_404s(client: httpx.AsyncClient) -> None:
    for path in ("/google/token", "/gworkspace/x", "/fcm/v1/x", "/mobileapp/x", "/smsgateway/x"):
        assert (await client.get(path)).status_code == 404
    entries = await recorded(client)
    assert [e["provider"] for e in entries] == [
        "google",
        "gworkspace",
        "fcm",
        "mobileapp",
        "smsgateway",
    ]
    assert {e["response_status"] for e in entries} == {404}
