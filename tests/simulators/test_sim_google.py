"""Google's OAuth 2.0 token endpoint: the service-account JWT-bearer grant."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sim_support import (
    DIRECTORY_SCOPE,
    FCM_SCOPE,
    JWT_BEARER,
    account_jwt,
    b64url,
    directory_token,
    fcm_token,
    google_claims,
    school_domain,
    sign_jwt,
    token_response,
)
from tenant_accounts import primary

from catalog.tenant_file import new_rsa_key_pem
from core.tenants import Tenant
from providers.fcm import FcmAccount
from providers.gworkspace import GoogleWorkspaceAccount

pytestmark = pytest.mark.anyio

BAD_TIMES = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)


# --- the token endpoint ------------------------------------------------------------


async def test_workspace_token_with_impersonated_admin(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    account = primary(t1, GoogleWorkspaceAccount)
    claims = google_claims(account, DIRECTORY_SCOPE, sub=account.admin_email)
    response = await token_response(client, account_jwt(account, claims))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert re.fullmatch(r"ya29\.[\w-]{40,}", body["access_token"])
    assert body["expires_in"] == 3599
    assert body["token_type"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
    [token] = (await client.get("/_sim/google/tokens")).json()["tokens"]
    assert body["access_token"].startswith(token["token_prefix"])
    assert (token["tenant"], token["service"], token["subject"]) == (
        "t1",
        "gworkspace",
        primary(t1, GoogleWorkspaceAccount).admin_email,
    )
    assert token["scopes"] == [DIRECTORY_SCOPE]
    assert time.time() + 3500 < token["expires_at"] <= time.time() + 3600
    assert token["expired"] is False


async def test_fcm_token_without_subject_and_tokens_differ(
    client: httpx.AsyncClient, t2: Tenant
) -> None:
    first, second = await fcm_token(client, t2), await fcm_token(client, t2)
    assert first != second
    tokens = (await client.get("/_sim/google/tokens")).json()["tokens"]
    assert [(t["tenant"], t["service"], t["subject"]) for t in tokens] == [("t2", "fcm", None)] * 2


def _ws(t: Tenant) -> GoogleWorkspaceAccount:
    return primary(t, GoogleWorkspaceAccount)


def _claims(t: Tenant, **claims: Any) -> str:
    """A JWT with `claims` changed, properly signed with the tenant's Workspace key."""
    return account_jwt(_ws(t), google_claims(_ws(t), DIRECTORY_SCOPE, **claims))


def _signed(
    t: Tenant, pem: str | None = None, *, kid: str | None = None, alg: str = "RS256"
) -> str:
    """Good claims, signed with `pem` (default: the right key) under another header."""
    claims = google_claims(_ws(t), DIRECTORY_SCOPE)
    pem = pem or _ws(t).private_key.get_secret_value()
    return sign_jwt(claims, pem, kid=kid or _ws(t).private_key_id, alg=alg)


def _tampered(t: Tenant) -> str:
    """A genuine JWT whose claims were swapped afterwards (a different `sub`)."""
    head, _, signature = _claims(t).split(".")
    evil = google_claims(_ws(t), DIRECTORY_SCOPE, sub="someone@evil.example")
    return f"{head}.{b64url(json.dumps(evil).encode())}.{signature}"


def now() -> int:
    # At call time, not import time: the suite runs for minutes, and a token "600 s in
    # the future" at collection is in the past by the time the test runs.
    return int(time.time())


BAD_SIGNATURE = ("invalid_grant", "Invalid JWT Signature.")
TIMES = ("invalid_grant", BAD_TIMES)
Maker = Callable[[Tenant, Tenant], str]
TOKEN_ERRORS = [
    pytest.param(
        lambda t, o: _claims(t, iss="nobody@x.iam.gserviceaccount.com"),
        401, ("invalid_client", "The OAuth client was not found."), id="unknown-iss",
    ),
    pytest.param(
        lambda t, o: _signed(t, _ws(o).private_key.get_secret_value()), 400, BAD_SIGNATURE,
        id="other-tenants-key",
    ),
    pytest.param(lambda t, o: _signed(t, new_rsa_key_pem()), 400, BAD_SIGNATURE, id="fresh-key"),
    pytest.param(lambda t, o: _tampered(t), 400, BAD_SIGNATURE, id="tampered-claims"),
    pytest.param(lambda t, o: _signed(t, alg="HS256"), 400, BAD_SIGNATURE, id="alg-hs256"),
    pytest.param(lambda t, o: _signed(t, kid="0" * 40), 400, BAD_SIGNATURE, id="wrong-kid"),
    pytest.param(
        lambda t, o: _claims(t, aud="https://example.com/token"),
        400, ("invalid_grant", "Invalid JWT: Failed audience check."), id="wrong-aud",
    ),
    pytest.param(
        lambda t, o: _claims(t, iat=now() - 4000, exp=now() - 400), 400, TIMES, id="expired"
    ),
    pytest.param(
        lambda t, o: _claims(t, exp=int(time.time()) + 3601), 400, TIMES, id="too-long-lived"
    ),
    pytest.param(
        lambda t, o: _claims(t, iat=now() + 600, exp=now() + 1200), 400, TIMES, id="future"
    ),
    pytest.param(lambda t, o: _claims(t, exp="soon"), 400, TIMES, id="exp-not-a-number"),
    pytest.param(
        lambda t, o: _claims(t, scope=None),
        400, ("invalid_scope", "Invalid OAuth scope or ID token audience provided."),
        id="no-scope",
    ),
    pytest.param(
        lambda t, o: _claims(t, sub=f"teacher@{school_domain(t)}"),
        400, ("invalid_grant", "Invalid email or User ID"), id="sub-not-the-admin",
    ),
    pytest.param(
        lambda t, o: "not-a-jwt", 400, ("invalid_grant", "Invalid JWT: cannot be parsed."),
        id="garbage",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("make", "status", "error"), TOKEN_ERRORS)
async def test_token_errors_in_googles_shape(
    client: httpx.AsyncClient,
    t1: Tenant,
    t2: Tenant,
    make: Maker,
    status: int,
    error: tuple[str, str],
) -> None:
    response = await token_response(client, make(t1, t2))
    assert response.status_code == status
    assert response.json() == {"error": error[0], "error_description": error[1]}
    assert (await client.get("/_sim/google/tokens")).json()["tokens"] == []


async def test_wrong_grant_type_missing_assertion_and_sub_on_fcm(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    fcm = primary(t1, FcmAccount)
    good = account_jwt(fcm, google_claims(fcm, FCM_SCOPE))
    response = await token_response(client, good, grant_type="client_credentials")
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")
    response = await client.post("/google/oauth2/token", data={"grant_type": JWT_BEARER})
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Missing required parameter: assertion",
    }
    with_sub = account_jwt(fcm, google_claims(fcm, FCM_SCOPE, sub="a@b.example"))
    response = await token_response(client, with_sub)
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized_client")


async def test_token_request_recorded_with_tenant_and_no_signature(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    await directory_token(client, t1)
    await token_response(client, "not-a-jwt")
    found = (await client.get("/_sim/requests", params={"provider": "google"})).json()
    good, bad = found["requests"]
    assert (good["tenant"], good["response_status"], bad["tenant"]) == ("t1", 200, None)
    _head, payload, signature = good["body"]["assertion"].split(".")
    assert signature == "***"
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == primary(t1, GoogleWorkspaceAccount).client_email
    assert good["body"]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
