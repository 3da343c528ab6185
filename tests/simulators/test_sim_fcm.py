"""Firebase Cloud Messaging HTTP v1 simulator, with tokens from the simulated Google endpoint."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sim_support import DIRECTORY_SCOPE, FCM_SCOPE, bearer, directory_token, fcm_token
from tenant_accounts import primary

from core.tenants import Tenant
from providers.fcm import FcmAccount

pytestmark = pytest.mark.anyio

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential."
)


def send_path(t: Tenant) -> str:
    return f"/fcm/v1/projects/{primary(t, FcmAccount).project_id}/messages:send"


def push(**message: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "topic": "class-7b",
        "notification": {"title": "Fee due", "body": "Term 2 fees are due on Friday"},
        "data": {"invoice": "INV-7", "amount": "12500"},
    }
    base.update(message)
    return {"message": {k: v for k, v in base.items() if v is not None}}


@pytest.mark.parametrize(
    "target",
    [{"topic": "class-7b"}, {"token": "fcm-device-token-1"}, {"condition": "'a' in topics"}],
)
async def test_send_to_each_kind_of_target(
    client: httpx.AsyncClient, t1: Tenant, target: dict[str, str]
) -> None:
    headers = bearer(await fcm_token(client, t1))
    body = push(**{"topic": None, **target})
    response = await client.post(send_path(t1), json=body, headers=headers)
    assert response.status_code == 200, response.text
    [name] = response.json().values()
    assert re.fullmatch(rf"projects/{primary(t1, FcmAccount).project_id}/messages/\d{{19}}", name)
    [recorded] = (await client.get("/_sim/requests", params={"provider": "fcm"})).json()["requests"]
    assert (recorded["body"], recorded["tenant"], recorded["response_status"]) == (body, "t1", 200)
    assert recorded["headers"]["authorization"] == "***"


async def test_validate_only_and_cloud_platform_scope(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    token = await fcm_token(client, t1, scope="https://www.googleapis.com/auth/cloud-platform")
    response = await client.post(
        send_path(t1), json={**push(), "validate_only": True}, headers=bearer(token)
    )
    project = primary(t1, FcmAccount).project_id
    assert response.json() == {"name": f"projects/{project}/messages/fake_message_id"}


async def test_missing_unknown_and_expired_tokens_are_401(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    expected = {"error": {"code": 401, "message": UNAUTHENTICATED, "status": "UNAUTHENTICATED"}}
    for headers in ({}, bearer("ya29.nope")):
        response = await client.post(send_path(t1), json=push(), headers=headers)
        assert (response.status_code, response.json()) == (401, expected)
    token = await fcm_token(client, t1)
    assert (await client.post(send_path(t1), json=push(), headers=bearer(token))).status_code == 200
    assert (await client.post("/_sim/google/expire-tokens")).json() == {"expired": 1}
    expired = await client.post(send_path(t1), json=push(), headers=bearer(token))
    assert (expired.status_code, expired.json()) == (401, expected)
    fresh = await fcm_token(client, t1)
    assert (await client.post(send_path(t1), json=push(), headers=bearer(fresh))).status_code == 200


async def test_wrong_scope_is_403(client: httpx.AsyncClient, t1: Tenant) -> None:
    token = await fcm_token(client, t1, scope=DIRECTORY_SCOPE)
    response = await client.post(send_path(t1), json=push(), headers=bearer(token))
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "status": "PERMISSION_DENIED",
        }
    }
    assert f'scope="{FCM_SCOPE}"' in response.headers["www-authenticate"]


async def test_other_project_or_workspace_token_is_sender_id_mismatch(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    expected = {
        "error": {
            "code": 403,
            "message": "SenderId mismatch",
            "status": "PERMISSION_DENIED",
            "details": [{"@type": FCM_ERROR, "errorCode": "SENDER_ID_MISMATCH"}],
        }
    }
    t1_token = await fcm_token(client, t1)
    workspace = await directory_token(client, t1, scope=FCM_SCOPE)
    for path, token in ((send_path(t2), t1_token), (send_path(t1), workspace)):
        response = await client.post(path, json=push(), headers=bearer(token))
        assert (response.status_code, response.json()) == (403, expected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": {"notification": {"title": "x"}}}, "Recipient of the message is not set."),
        (
            push(token="device-1"),
            "Invalid value at 'message' (oneof), oneof field 'target' is already set. "
            "Cannot set 'topic'",
        ),
        (
            push(data={"amount": 12500}),
            "Invalid value at 'message.data[0].value' (TYPE_STRING), 12500",
        ),
        (push(data={"from": "school"}), "Invalid data payload key: from"),
        (
            push(notification={"title": 7}),
            "Invalid value at 'message.notification.title' (TYPE_STRING), 7",
        ),
        (push(topic="class 7b!"), "Invalid topic name: class 7b!"),
        (
            push(priority="high"),
            "Invalid JSON payload received. Unknown name \"priority\" at 'message': "
            "Cannot find field.",
        ),
        ({"msg": {}}, 'Invalid JSON payload received. Unknown name "msg": Cannot find field.'),
        ({}, "Request contains an invalid argument: 'message' is required."),
    ],
)
async def test_invalid_messages_are_400_with_fcm_details(
    client: httpx.AsyncClient, t1: Tenant, body: dict[str, Any], message: str
) -> None:
    response = await client.post(
        send_path(t1), json=body, headers=bearer(await fcm_token(client, t1))
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": 400,
            "message": message,
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}],
        }
    }


async def test_invalid_json_is_400(client: httpx.AsyncClient, t1: Tenant) -> None:
    headers = {**bearer(await fcm_token(client, t1)), "Content-Type": "application/json"}
    response = await client.post(send_path(t1), content=b'{"message": ', headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["errorCode"] == "INVALID_ARGUMENT"
