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

import time

import httpx

from providers.base import basic_auth, json_or_empty
from providers.token_auth import AccessToken, CachedTokenAuth, Clock, access_token_in, failure

INVALID_TOKEN = "404.001.03"  # noqa: S105 - Daraja's "Invalid Access Token" error code
DEFAULT_EXPIRES_IN = 3599


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
    if 200 <= response.status_code < 300:
        return access_token_in(response, body, now + _lifetime(body.get("expires_in")))
    message = str(body.get("errorMessage") or response.reason_phrase or "error")
    code = body.get("errorCode")
    raise failure(response, f"{message} ({code})" if code else message)


class DarajaAuth(CachedTokenAuth):
    """The shared token flow with Daraja's token request and its 404 for a stale token."""

    def __init__(
        self, consumer_key: str, consumer_secret: str, token_url: str, clock: Clock = time.time
    ) -> None:
        super().__init__(token_url, clock)
        self.consumer_key = consumer_key
        self._consumer_secret = consumer_secret

    def new_token_request(self) -> httpx.Request:
        return httpx.Request(
            "GET",
            self.token_url,
            params={"grant_type": "client_credentials"},
            headers=basic_auth(self.consumer_key, self._consumer_secret),
        )

    def read_token(self, response: httpx.Response, now: float) -> AccessToken:
        return token_from_response(response, now)

    def stale(self, response: httpx.Response) -> bool:
        return refused_token(response)


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
