"""The token request an auth flow makes carries the API call's timeouts (httpx does not)."""

from __future__ import annotations

import httpx
import pytest

from catalog.tenant_file import new_rsa_key_pem
from providers.google_auth import GoogleServiceAccount, GoogleServiceAccountAuth

TOKEN_URL = "http://sim/google/oauth2/token"


@pytest.mark.anyio
async def test_a_token_request_gets_the_timeout_of_the_call_it_serves() -> None:
    seen: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.path] = request.extensions.get("timeout")
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json={})

    account = GoogleServiceAccount(client_email="a@b.iam", private_key=new_rsa_key_pem())
    auth = GoogleServiceAccountAuth.for_account(
        account, scopes=["s"], token_url=TOKEN_URL, subject=None
    )
    timeout = httpx.Timeout(connect=1.5, read=2.5, write=2.5, pool=2.5)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        request = httpx.Request(
            "GET", "http://sim/api/x", extensions={"timeout": timeout.as_dict()}
        )
        response = await http.send(request, auth=auth)
    assert response.status_code == 200
    assert seen["/google/oauth2/token"] == {"connect": 1.5, "read": 2.5, "write": 2.5, "pool": 2.5}
