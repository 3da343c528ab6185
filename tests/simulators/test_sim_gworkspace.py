"""Workspace Admin SDK Directory API simulator, with tokens from the simulated Google endpoint."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sim_support import (
    DIRECTORY_SCOPE,
    FCM_SCOPE,
    bearer,
    directory_token,
    fcm_token,
    google_token,
    school_domain,
)
from tenant_accounts import primary

from core.tenants import Tenant
from providers.gworkspace import GoogleWorkspaceAccount

pytestmark = pytest.mark.anyio

UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential."
)


def users_path(email: str) -> str:
    return f"/gworkspace/admin/directory/v1/users/{email}"


def directory_error(code: int, message: str, reason: str, status: str) -> dict[str, Any]:
    errors = [{"message": message, "domain": "global", "reason": reason}]
    return {"error": {"code": code, "message": message, "errors": errors, "status": status}}


# --- the Directory API -------------------------------------------------------------


async def test_patch_phones_returns_the_user_and_merges_state(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    headers = bearer(await directory_token(client, t1))
    email = f"asha.rao@{school_domain(t1)}"
    phones = [{"value": "+919999999999", "type": "mobile", "primary": True}]
    first = await client.patch(users_path(email), json={"phones": phones}, headers=headers)
    assert first.status_code == 200, first.text
    user = first.json()
    assert user["kind"] == "admin#directory#user"
    assert re.fullmatch(r"\d{21}", user["id"])
    assert (user["primaryEmail"], user["phones"]) == (email, phones)
    assert user["name"]["fullName"] == "Asha Rao"
    assert re.fullmatch(r'"[\w-]+"', user["etag"])
    second = await client.patch(
        users_path(email), json={"name": {"familyName": "Iyer"}}, headers=headers
    )
    merged = second.json()
    assert merged["phones"] == phones
    assert merged["name"] == {"givenName": "Asha", "familyName": "Iyer", "fullName": "Asha Iyer"}
    assert merged["id"] == user["id"]
    assert merged["etag"] != user["etag"]
    by_id = await client.get(users_path(user["id"]), headers=headers)
    assert by_id.json() == merged
    [stored] = (await client.get("/_sim/gworkspace/users")).json()["users"]
    assert stored == {"tenant": "t1", **merged}


async def test_patch_replaces_the_phone_list(client: httpx.AsyncClient, t1: Tenant) -> None:
    headers = bearer(await directory_token(client, t1))
    path = users_path(f"ravi@{school_domain(t1)}")
    old = [{"value": "+911111111111", "type": "home"}]
    assert (await client.patch(path, json={"phones": old}, headers=headers)).status_code == 200
    new = [{"value": "+912222222222", "type": "mobile"}]
    assert (await client.patch(path, json={"phones": new}, headers=headers)).json()["phones"] == new
    assert (await client.patch(path, json={"phones": []}, headers=headers)).json()["phones"] == []


async def test_missing_unknown_and_expired_tokens_are_401(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    path = users_path(f"asha@{school_domain(t1)}")
    body = {"phones": [{"value": "+919999999999", "type": "mobile"}]}
    expected = directory_error(401, UNAUTHENTICATED, "authError", "UNAUTHENTICATED")
    missing = await client.patch(path, json=body)
    assert (missing.status_code, missing.json()) == (401, expected)
    assert missing.headers["www-authenticate"] == 'Bearer realm="https://accounts.google.com/"'
    unknown = await client.patch(path, json=body, headers=bearer("ya29.made-up"))
    assert (unknown.status_code, unknown.json()) == (401, expected)
    token = await directory_token(client, t1)
    assert (await client.patch(path, json=body, headers=bearer(token))).status_code == 200
    assert (await client.post("/_sim/google/expire-tokens")).json() == {"expired": 1}
    expired = await client.patch(path, json=body, headers=bearer(token))
    assert (expired.status_code, expired.json()) == (401, expected)
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    fresh = await directory_token(client, t1)
    assert (await client.patch(path, json=body, headers=bearer(fresh))).status_code == 200


async def test_wrong_scope_or_no_impersonation_is_403(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    path = users_path(f"asha@{school_domain(t1)}")
    wrong_scope = await directory_token(client, t1, scope=FCM_SCOPE)
    response = await client.patch(path, json={}, headers=bearer(wrong_scope))
    assert response.status_code == 403
    assert response.json() == directory_error(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        "PERMISSION_DENIED",
    )
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    workspace = primary(t1, GoogleWorkspaceAccount)
    not_admin = await google_token(client, workspace, DIRECTORY_SCOPE)  # no `sub`
    fcm_account = await fcm_token(client, t1, scope=DIRECTORY_SCOPE)
    for token in (not_admin, fcm_account):
        response = await client.patch(path, json={}, headers=bearer(token))
        assert response.status_code == 403
        assert response.json()["error"]["message"] == "Not Authorized to access this resource/api"


async def test_users_outside_the_domain_are_404(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    headers = bearer(await directory_token(client, t1))
    for key in (f"asha@{school_domain(t2)}", "asha@gmail.com", "123456789012345678901"):
        response = await client.patch(users_path(key), json={}, headers=headers)
        assert response.status_code == 404
        assert response.json() == directory_error(
            404, "Resource Not Found: userKey", "notFound", "NOT_FOUND"
        )
    assert (await client.get("/_sim/gworkspace/users")).json()["users"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "Invalid JSON payload received. Unexpected token."),
        (
            b'["phones"]',
            'Invalid JSON payload received. Unknown name "": Root element must be a message.',
        ),
        (b'{"phones": "+919999999999"}', "Invalid Input: phones (must be a list of phone objects)"),
        (
            b'{"phones": [{"type": "mobile"}]}',
            "Invalid Input: phones[0].value (a phone needs a string value)",
        ),
        (
            b'{"phones": [{"value": "1", "type": "cell"}]}',
            "Invalid Input: phones[0].type (unknown phone type 'cell')",
        ),
        (
            b'{"phone": []}',
            'Invalid JSON payload received. Unknown name "phone": Cannot find field.',
        ),
    ],
)
async def test_invalid_bodies_are_400(
    client: httpx.AsyncClient, t1: Tenant, content: bytes, message: str
) -> None:
    headers = {**bearer(await directory_token(client, t1)), "Content-Type": "application/json"}
    path = users_path(f"asha@{school_domain(t1)}")
    response = await client.patch(path, content=content, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"], error["message"]) == (400, "INVALID_ARGUMENT", message)
    assert error["errors"][0]["message"] == message
    assert (await client.get("/_sim/gworkspace/users")).json()["users"] == []
