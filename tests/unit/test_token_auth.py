"""CachedTokenAuth on its own: a made-up provider over httpx.MockTransport.

The provider tests (Google, Daraja, Pesapal, PayPal) cover each one's token request
and answers; these pin the shared machinery they all stand on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from providers.base import AuthError
from providers.token_auth import (
    REFRESH_MARGIN,
    AccessToken,
    CachedTokenAuth,
    TokenUnavailableError,
    oauth2_token,
)

TOKEN_URL = "http://fake/oauth/token"
API_URL = "http://fake/api/thing"
START = 1_700_000_000.0
Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeAuth(CachedTokenAuth):
    """A provider whose API says "stale token" with 419, so the hook is seen to be used."""

    def new_token_request(self) -> httpx.Request:
        return httpx.Request("POST", self.token_url, headers={"X-Key": "k1"})

    def read_token(self, response: httpx.Response, now: float) -> AccessToken:
        return oauth2_token(response, now)

    def stale(self, response: httpx.Response) -> bool:
        return response.status_code == 419


class FakeProvider:
    """Issues tok1, tok2, ... (each good for an hour); the API takes only the newest."""

    def __init__(self) -> None:
        self.issued = 0
        self.token_calls = 0
        self.api_calls: list[str | None] = []
        self.token_answer: httpx.Response | None = None  # instead of a token, when set
        self.api_refuses_all = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url == TOKEN_URL:
            self.token_calls += 1
            if self.token_answer is not None:
                return self.token_answer
            self.issued += 1
            return httpx.Response(
                200, json={"access_token": f"tok{self.issued}", "expires_in": 3600}
            )
        bearer = request.headers.get("authorization")
        self.api_calls.append(bearer)
        if self.api_refuses_all or bearer != f"Bearer tok{self.issued}":
            return httpx.Response(419, json={"error": "stale token"})
        return httpx.Response(200, json={"ok": True})


def client(provider: Handler, auth: httpx.Auth) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(provider), auth=auth)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_token_is_fetched_once_and_reused_across_requests() -> None:
    provider = FakeProvider()
    with client(provider, FakeAuth(TOKEN_URL, Clock())) as http:
        assert [http.get(API_URL).status_code for _ in range(3)] == [200, 200, 200]
    assert provider.token_calls == 1
    assert provider.api_calls == ["Bearer tok1"] * 3


def test_a_token_near_its_expiry_is_fetched_again() -> None:
    provider, clock = FakeProvider(), Clock()
    with client(provider, FakeAuth(TOKEN_URL, clock)) as http:
        http.get(API_URL)
        clock.now += 3600 - REFRESH_MARGIN - 1  # still good for a little over a minute
        http.get(API_URL)
        clock.now += 2  # now within the margin
        assert http.get(API_URL).status_code == 200
    assert provider.token_calls == 2
    assert provider.api_calls == ["Bearer tok1", "Bearer tok1", "Bearer tok2"]


def test_a_stale_token_answer_is_retried_once_with_a_fresh_token() -> None:
    provider = FakeProvider()
    auth = FakeAuth(TOKEN_URL, Clock())
    with client(provider, auth) as http:
        http.get(API_URL)
        provider.issued += 1  # the provider revoked tok1 behind the hub's back
        response = http.post(API_URL, content=b"body")
    assert response.status_code == 200
    assert provider.api_calls == ["Bearer tok1", "Bearer tok1", "Bearer tok3"]
    assert auth.cached_token() == AccessToken("tok3", START + 3600)


def test_a_second_stale_answer_is_returned_as_it_is() -> None:
    provider = FakeProvider()
    provider.api_refuses_all = True
    with client(provider, FakeAuth(TOKEN_URL, Clock())) as http:
        response = http.get(API_URL)
    assert response.status_code == 419
    assert provider.token_calls == 2  # one refresh, no loop
    assert provider.api_calls == ["Bearer tok1", "Bearer tok2"]


def test_a_401_is_not_stale_when_the_provider_says_otherwise() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url == TOKEN_URL:
            return httpx.Response(200, json={"access_token": "t"})
        return httpx.Response(401)

    with client(handler, FakeAuth(TOKEN_URL, Clock())) as http:
        assert http.get(API_URL).status_code == 401


def test_a_refused_token_request_is_an_auth_error_and_the_api_is_not_called() -> None:
    provider = FakeProvider()
    provider.token_answer = httpx.Response(400, json={"error": "invalid_client"})
    with client(provider, FakeAuth(TOKEN_URL, Clock())) as http, pytest.raises(AuthError) as caught:
        http.get(API_URL)
    assert "400: invalid_client" in str(caught.value)
    assert provider.api_calls == []


def test_a_token_endpoint_outage_is_retryable_with_its_retry_after() -> None:
    provider = FakeProvider()
    provider.token_answer = httpx.Response(503, headers={"Retry-After": "7"})
    with (
        client(provider, FakeAuth(TOKEN_URL, Clock())) as http,
        pytest.raises(TokenUnavailableError) as caught,
    ):
        http.get(API_URL)
    assert isinstance(caught.value, httpx.TransportError)
    assert (caught.value.status_code, caught.value.retry_after) == (503, 7.0)


def test_the_token_request_carries_the_api_calls_timeout() -> None:
    auth = FakeAuth(TOKEN_URL, Clock())
    api = httpx.Request("GET", API_URL, extensions={"timeout": {"connect": 1.0}})
    assert auth.token_request(api).extensions["timeout"] == {"connect": 1.0}
    assert "timeout" not in auth.token_request().extensions


@pytest.mark.anyio
async def test_concurrent_async_calls_share_one_token_request() -> None:
    provider = FakeProvider()
    auth = FakeAuth(TOKEN_URL, Clock())
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider), auth=auth) as http:
        answers = await asyncio.gather(*(http.get(API_URL) for _ in range(5)))
        provider.issued += 1  # revoked: the next call refreshes and resends once
        answers.append(await http.get(API_URL))
    assert [a.status_code for a in answers] == [200] * 6
    assert provider.token_calls == 2
    assert provider.api_calls[-2:] == ["Bearer tok1", "Bearer tok3"]
