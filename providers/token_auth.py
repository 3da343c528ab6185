"""A bearer token bought at a token endpoint, cached, and sent on API calls: `CachedTokenAuth`.

Google's service accounts, Daraja (M-Pesa), Pesapal and PayPal all work this way;
they differ only in how the token is asked for, how the answer is read and (for
Daraja) how the API says a token is stale. This module holds what they share:

- the token is cached until a minute before it expires, one per flow object;
- one token request at a time (a thread lock for sync clients, a lock per event
  loop for async ones): callers waiting on it reuse the token it brings;
- an API answer that refuses the token drops it, fetches a fresh one and resends
  the request once; a second refusal is returned as it is (no loop);
- the token request carries the API call's timeout, which httpx does not do.

Token endpoint failures mean the same for every provider: a transient answer
(5xx, 408/425/429, a 2xx without a token) is `TokenUnavailableError`, an
`httpx.TransportError` the executor retries like a network error; a refusal of
the credentials is `AuthError`, a permanent Rejected.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass

import httpx

from providers.base import RETRYABLE_STATUSES, AuthError, json_or_empty, parse_retry_after

REFRESH_MARGIN = 60.0  # a token this close to expiry is fetched again
OAUTH2_EXPIRES_IN = 3600  # RFC 6749 makes expires_in optional; an hour is the common grant
TOKEN = "token"  # noqa: S105 - the name of a token endpoint's base URL in a provider's declaration

Clock = Callable[[], float]


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: float

    def fresh(self, now: float) -> bool:
        return self.expires_at - now > REFRESH_MARGIN


class TokenUnavailableError(httpx.TransportError):
    """The token endpoint could not issue a token just now (5xx, 429, garbled 2xx): retryable.

    An `httpx.TransportError`, so callers that retry network errors retry this too.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.status_code = status_code
        self.retry_after = retry_after


# --- reading token endpoint answers: pieces the providers' parsers share -----------


def transient(status: int) -> bool:
    """A token endpoint status that is a passing problem, not a verdict on the credentials."""
    return status in RETRYABLE_STATUSES or status >= 500


def unavailable(response: httpx.Response, message: str) -> TokenUnavailableError:
    """A transient token answer, with the endpoint's Retry-After when it gave one."""
    return TokenUnavailableError(
        message,
        request=response.request,
        status_code=response.status_code,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def failure(response: httpx.Response, detail: str) -> TokenUnavailableError | AuthError:
    """What a non-2xx token answer means: retry when transient, else the credentials are wrong."""
    message = f"token endpoint answered {response.status_code}: {detail}"
    return unavailable(response, message) if transient(response.status_code) else AuthError(message)


def access_token_in(
    response: httpx.Response, body: dict[str, object], expires_at: float
) -> AccessToken:
    """A 2xx answer's `access_token`; a 2xx without one is the endpoint having a bad moment."""
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenUnavailableError(
            f"token endpoint answered {response.status_code} without an access_token",
            request=response.request,
            status_code=response.status_code,
        )
    return AccessToken(token, expires_at)


def oauth2_token(response: httpx.Response, now: float) -> AccessToken:
    """An RFC 6749 token answer (its body already read), or raise what it means.

    `{"access_token", "expires_in"}` on success, `{"error", "error_description"}` otherwise:
    Google's and PayPal's endpoints both answer this way.
    """
    body = json_or_empty(response)
    status = response.status_code
    if 200 <= status < 300:
        expires_in = body.get("expires_in", OAUTH2_EXPIRES_IN)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else OAUTH2_EXPIRES_IN
        return access_token_in(response, body, now + lifetime)
    error = str(body.get("error") or response.reason_phrase or "error")
    description = body.get("error_description")
    raise failure(response, f"{error}: {description}" if description else error)


# --- the auth flow ---------------------------------------------------------------


class CachedTokenAuth(httpx.Auth, ABC):
    """The shared flow; a provider says how to ask for a token and how to read the answer."""

    requires_request_body = True  # a refused token means sending the request a second time
    requires_response_body = True  # token answers, and some refusals, are told apart by body

    def __init__(self, token_url: str, clock: Clock = time.time) -> None:
        self.token_url = token_url
        self.clock = clock
        self._token: AccessToken | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self._async_lock_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    # -- what each provider says --

    @abstractmethod
    def new_token_request(self) -> httpx.Request:
        """The request that buys a token (credentials on it, no timeout: the flow adds that)."""

    @abstractmethod
    def read_token(self, response: httpx.Response, now: float) -> AccessToken:
        """The token in the endpoint's answer (its body read), or raise what the answer means:
        AuthError for refused credentials, TokenUnavailableError for a passing problem."""

    def authorized(self, request: httpx.Request, token: AccessToken) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token.value}"
        return request

    def stale(self, response: httpx.Response) -> bool:
        """Whether the API refused the token (so a fresh one is worth one more try)."""
        return response.status_code == 401

    # -- pieces both flows share --

    def token_request(self, api_request: httpx.Request | None = None) -> httpx.Request:
        request = self.new_token_request()
        # httpx applies timeouts to the request given to send(), not to the ones an
        # auth flow yields: without this a stuck token endpoint would hang the call.
        if api_request is not None and "timeout" in api_request.extensions:
            request.extensions["timeout"] = api_request.extensions["timeout"]
        return request

    def cached_token(self) -> AccessToken | None:
        """The cached token, if it is good for more than another minute."""
        token = self._token
        return token if token is not None and token.fresh(self.clock()) else None

    def accept(self, response: httpx.Response) -> AccessToken:
        self._token = self.read_token(response, self.clock())
        return self._token

    def forget(self, token: AccessToken) -> None:
        # Only the token the API refused: another flow may have fetched a newer one meanwhile.
        if self._token is token:
            self._token = None

    def _loop_lock(self) -> asyncio.Lock:
        """One lock per event loop: an asyncio.Lock must not be shared across loops."""
        loop = asyncio.get_running_loop()
        known = self._async_lock_loop() if self._async_lock_loop is not None else None
        if self._async_lock is None or known is not loop:
            self._async_lock, self._async_lock_loop = asyncio.Lock(), weakref.ref(loop)
        return self._async_lock

    # -- the flows: fetch (or reuse) a token, send, and on a refusal refresh and resend once --

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        for attempt in (1, 2):
            with self._thread_lock:  # one token request at a time; the others reuse it
                token = self.cached_token()
                if token is None:
                    token_response = yield self.token_request(request)
                    token_response.read()
                    token = self.accept(token_response)
            response = yield self.authorized(request, token)
            if not self.stale(response) or attempt == 2:
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
                    token_response = yield self.token_request(request)
                    await token_response.aread()
                    token = self.accept(token_response)
            response = yield self.authorized(request, token)
            if not self.stale(response) or attempt == 2:
                return
            self.forget(token)
