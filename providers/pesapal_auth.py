"""Pesapal API 3.0's token: `POST /api/Auth/RequestToken` as an `httpx.Auth` flow.

The consumer key and secret buy a Bearer token that lives five minutes. The flow
caches it per account, fetches a new one a minute before it expires, and on a
401 from the API drops it, fetches a fresh one and resends once (all of that is
`CachedTokenAuth`'s, providers/token_auth.py).

Pesapal answers many failures with HTTP 200 and an `error` object (and a `status`
text of "400"/"500"), so the body decides, as in google_auth:

- credentials refused (an `error` naming invalid credentials, or a 4xx): `AuthError`,
  which the executor makes a permanent Rejected and the probe `auth_failed`;
- a 5xx, 408/425/429, or an answer without a token for no stated reason:
  `TokenUnavailableError`, retried like a network error.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any

import httpx

from providers.base import AuthError, json_or_empty
from providers.token_auth import (
    AccessToken,
    CachedTokenAuth,
    Clock,
    TokenUnavailableError,
    transient,
    unavailable,
)

TOKEN_PATH = "/api/Auth/RequestToken"  # noqa: S105 - a path, not a secret
TOKEN_LIFETIME = 300.0  # Pesapal's documented five minutes, when expiryDate is unreadable


def pesapal_error(body: dict[str, Any]) -> dict[str, Any] | None:
    """Pesapal's `error` object when it holds one (it is null on success)."""
    error = body.get("error")
    if isinstance(error, dict) and any(error.get(k) for k in ("code", "message", "error_type")):
        return error
    return None


def _refuses_credentials(status: int, body_status: str, error: dict[str, Any] | None) -> bool:
    text = " ".join(str(error.get(k) or "") for k in ("error_type", "code")) if error else ""
    if "authentication" in text or "invalid_consumer" in text or "credentials" in text:
        return True
    return 400 <= status < 500 or body_status.startswith("4")


def _lifetime(body: dict[str, Any], now: float) -> float:
    """Seconds the token is good for: its expiryDate, never more than Pesapal's five minutes."""
    expiry = body.get("expiryDate")
    try:
        when = datetime.fromisoformat(expiry).timestamp() if isinstance(expiry, str) else None
    except ValueError:
        when = None
    return TOKEN_LIFETIME if when is None else max(0.0, min(TOKEN_LIFETIME, when - now))


def token_from_response(response: httpx.Response, now: float) -> AccessToken:
    body = json_or_empty(response)
    status, body_status = response.status_code, str(body.get("status") or "")
    token, error = body.get("token"), pesapal_error(body)
    if 200 <= status < 300 and isinstance(token, str) and token and error is None:
        return AccessToken(token, now + _lifetime(body, now))
    detail = str(
        (error or {}).get("message") or (error or {}).get("code") or response.reason_phrase
    )
    said = f"token endpoint answered {status} (status {body_status or '?'}): {detail}"
    if transient(status):
        raise unavailable(response, said)
    if _refuses_credentials(status, body_status, error):
        raise AuthError(said)
    raise TokenUnavailableError(said, request=response.request, status_code=status)


class PesapalTokenAuth(CachedTokenAuth):
    """The shared token flow with Pesapal's token request (credentials in a JSON body)."""

    def __init__(
        self, consumer_key: str, consumer_secret: str, token_url: str, clock: Clock = time.time
    ) -> None:
        super().__init__(token_url, clock)
        self.consumer_key = consumer_key
        self._consumer_secret = consumer_secret

    def __repr__(self) -> str:  # never the secret
        return f"PesapalTokenAuth(consumer_key={self.consumer_key!r}, token_url={self.token_url!r})"

    def new_token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.token_url,
            json={"consumer_key": self.consumer_key, "consumer_secret": self._consumer_secret},
            headers={"Accept": "application/json"},
        )

    def read_token(self, response: httpx.Response, now: float) -> AccessToken:
        return token_from_response(response, now)


class PesapalAuths:
    """One token flow per (tenant, consumer key, token URL): tokens outlive a single call.
    A changed account (a rotated secret) gets a new flow and a new token."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._auths: dict[tuple[str, str, str], tuple[str, PesapalTokenAuth]] = {}

    def get(
        self, tenant_id: str, consumer_key: str, consumer_secret: str, token_url: str
    ) -> PesapalTokenAuth:
        key = (tenant_id, consumer_key, token_url)
        # A digest, not the secret: this cache is no second copy of a credential.
        fingerprint = hashlib.sha256(consumer_secret.encode()).hexdigest()
        cached = self._auths.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        auth = PesapalTokenAuth(consumer_key, consumer_secret, token_url, self.clock)
        self._auths[key] = (fingerprint, auth)
        return auth
