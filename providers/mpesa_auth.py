"""Daraja OAuth as an `httpx.Auth` flow: client credentials in, a bearer token out.

`GET /oauth/v1/generate?grant_type=client_credentials` with HTTP Basic
consumer_key:consumer_secret answers `{"access_token": "...", "expires_in": "3599"}`
(a string). The token is cached until a minute before it expires, per account.

Token endpoint failures, decided here so the executor needs no Daraja knowledge:

- a 4xx (but 408/425/429): the credentials are wrong (Daraja answers 400 with
  `400.008.01 Invalid Authentication passed`): `AuthError`, a permanent Rejected.
- a 5xx, 408/425/429, or a 2xx without a token: `TokenUnavailableError`, retried
  like a network error.

Daraja refuses a stale or unknown token with HTTP 404 `404.001.03 Invalid Access
Token` (not 401): that answer drops the cached token and the request is sent once
more with a fresh one; a second refusal is returned as it is.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from providers.base import (
    RETRYABLE_STATUSES,
    AuthError,
    basic_auth,
    json_or_empty,
    parse_retry_after,
)
from providers.google_auth import AccessToken, TokenUnavailableError

INVALID_TOKEN = "404.001.03"  # noqa: S105 - Daraja's "Invalid Access Token" error code
DEFAULT_EXPIRES_IN = 3599
Clock = Callable[[], float]


def refused_token(response: httpx.Response) -> bool:
    """Daraja's answer to a token it does not know (or a plain 401, to be safe)."""
    if response.status_code == 401:
        return True
    return response.status_code == 404 and json_or_empty(response).get("errorCode") == INVALID_TOKEN


def _lifetime(value: object) -> float:
    if isinstance(value, bool):
        return DEFAULT_EXPIRES_IN
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value.strip())
    return DEFAULT_EXPIRES_IN


def token_from_response(response: httpx.Response, now: float) -> AccessToken:
    """Read the token endpoint's answer (its body already read), or raise what it means."""
    body = json_or_empty(response)
    status = response.status_code
    if 200 <= status < 300:
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenUnavailableError(
                f"token endpoint answered {status} without an access_token",
                request=response.request,
                status_code=status,
            )
        return AccessToken(token, now + _lifetime(body.get("expires_in")))
    message = str(body.get("errorMessage") or response.reason_phrase or "error")
    code = body.get("errorCode")
    detail = f"{message} ({code})" if code else message
    if status in RETRYABLE_STATUSES or status >= 500:
        raise TokenUnavailableError(
            f"token endpoint answered {status}: {detail}",
            request=response.request,
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    raise AuthError(f"token endpoint answered {status}: {detail}")


class DarajaAuth(httpx.Auth):
    requires_request_body = True  # a refused token means sending the request again
    requires_response_body = True  # the refusal is told apart by its errorCode

    def __init__(
        self, consumer_key: str, consumer_secret: str, token_url: str, clock: Clock = time.time
    ) -> None:
        self.consumer_key = consumer_key
        self._consumer_secret = consumer_secret
        self.token_url = token_url
        self.clock = clock
        self._token: AccessToken | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self._async_lock_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def token_request(self, api_request: httpx.Request) -> httpx.Request:
        request = httpx.Request(
            "GET",
            self.token_url,
            params={"grant_type": "client_credentials"},
            headers=basic_auth(self.consumer_key, self._consumer_secret),
        )
        # httpx times only the request given to send(): the token call gets the same bound.
        if "timeout" in api_request.extensions:
            request.extensions["timeout"] = api_request.extensions["timeout"]
        return request

    def cached_token(self) -> AccessToken | None:
        token = self._token
        return token if token is not None and token.fresh(self.clock()) else None

    def accept(self, response: httpx.Response) -> AccessToken:
        self._token = token_from_response(response, self.clock())
        return self._token

    def forget(self, token: AccessToken) -> None:
        if self._token is token:  # another flow may have fetched a newer one meanwhile
            self._token = None

    @staticmethod
    def authorized(request: httpx.Request, token: AccessToken) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token.value}"
        return request

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        known = self._async_lock_loop() if self._async_lock_loop is not None else None
        if self._async_lock is None or known is not loop:  # an asyncio.Lock is per loop
            self._async_lock, self._async_lock_loop = asyncio.Lock(), weakref.ref(loop)
        return self._async_lock

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        for attempt in (1, 2):
            with self._thread_lock:
                token = self.cached_token()
                if token is None:
                    answer = yield self.token_request(request)
                    answer.read()
                    token = self.accept(answer)
            response = yield self.authorized(request, token)
            if not refused_token(response) or attempt == 2:
                return
            self.forget(token)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        for attempt in (1, 2):
            async with self._loop_lock():
                token = self.cached_token()
                if token is None:
                    answer = yield self.token_request(request)
                    await answer.aread()
                    token = self.accept(answer)
            response = yield self.authorized(request, token)
            if not refused_token(response) or attempt == 2:
                return
            self.forget(token)


class DarajaAuths:
    """One flow per (tenant, consumer key, token URL), so a token outlives one call;
    a changed account (a rotated secret) gets a new flow and a new token."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._auths: dict[tuple[str, str, str], tuple[str, DarajaAuth]] = {}

    def get(
        self, tenant_id: str, consumer_key: str, consumer_secret: str, token_url: str
    ) -> DarajaAuth:
        key = (tenant_id, consumer_key, token_url)
        cached = self._auths.get(key)
        if cached is not None and cached[0] == consumer_secret:
            return cached[1]
        auth = DarajaAuth(consumer_key, consumer_secret, token_url, self.clock)
        self._auths[key] = (consumer_secret, auth)
        return auth
