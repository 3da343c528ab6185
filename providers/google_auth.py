"""Google service-account OAuth 2.0 (the JWT-bearer grant) as an `httpx.Auth` flow.

The hub signs a short-lived JWT with the service account's RSA key (RS256),
exchanges it at the token endpoint for an access token, caches the token until
a minute before it expires, and sends API calls with `Authorization: Bearer`.
For Google Workspace the JWT names an admin in `sub` (domain-wide delegation);
FCM needs no `sub`.

Token endpoint failures, decided here so the executor needs no Google knowledge:

- a 4xx (but 408/425/429) means the credentials are wrong (`invalid_grant`,
  `unauthorized_client`, a bad key): `AuthError`, which the executor turns into
  a permanent Rejected. An unusable private key is the same kind of failure.
- a 5xx, 408/425/429, or a 2xx without an access token is Google having a bad
  moment: `TokenUnavailableError`, an `httpx.TransportError`, so the executor
  retries it exactly like a network error (RetryLater). The API itself is never
  called without a token, and its 5xx/429 keep their own meaning.
- a network error on the way to the token endpoint is a network error.

An API answer of 401 drops the cached token, fetches a fresh one and resends
the request once; a second 401 is returned as it is (no loop).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, SecretStr

from providers.base import RETRYABLE_STATUSES, AuthError, json_or_empty, parse_retry_after

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # the longest Google accepts
REFRESH_MARGIN = 60.0  # a token this close to expiry is fetched again
DEFAULT_EXPIRES_IN = 3600

Clock = Callable[[], float]


# Google's OAuth 2.0 token endpoint, where service-account JWTs become access tokens.
TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
TOKEN = "token"  # noqa: S105 - the name of that base URL in a provider's declaration


class GoogleServiceAccount(BaseModel):
    """A Google Cloud service account: the hub signs a JWT with its key to get an access token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_email: str
    private_key: SecretStr  # PEM, RSA
    private_key_id: str = ""


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


# --- pure helpers: no HTTP -------------------------------------------------------


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_claims(
    *,
    issuer: str,
    scopes: Sequence[str],
    audience: str,
    now: float,
    subject: str | None = None,
    lifetime: int = ASSERTION_LIFETIME,
) -> dict[str, Any]:
    issued_at = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "scope": " ".join(scopes),
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + lifetime,
    }
    if subject:
        claims["sub"] = subject
    return claims


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """The service account's RSA key; an unusable key is a credentials problem (AuthError)."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise AuthError(f"service account private key is not a usable PEM key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthError(f"service account private key is {type(key).__name__}, not RSA")
    return key


def jwt_assertion(claims: dict[str, Any], private_key: rsa.RSAPrivateKey, key_id: str) -> str:
    """A compact RS256 JWT: header.claims.signature, each base64url without padding."""
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if key_id:  # Google finds the key by `kid`; without it, it tries the account's keys
        header["kid"] = key_id
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: float

    def fresh(self, now: float) -> bool:
        return self.expires_at - now > REFRESH_MARGIN


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
        expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else DEFAULT_EXPIRES_IN
        return AccessToken(token, now + lifetime)
    error = str(body.get("error") or response.reason_phrase or "error")
    description = body.get("error_description")
    detail = f"{error}: {description}" if description else error
    if status in RETRYABLE_STATUSES or status >= 500:
        raise TokenUnavailableError(
            f"token endpoint answered {status}: {detail}",
            request=response.request,
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    raise AuthError(f"token endpoint answered {status}: {detail}")


# --- the auth flow ---------------------------------------------------------------


class GoogleServiceAccountAuth(httpx.Auth):
    requires_request_body = True  # a 401 means sending the request a second time
    requires_response_body = True  # the token endpoint's answer is read in the flow

    def __init__(
        self,
        *,
        client_email: str,
        private_key: str,
        private_key_id: str,
        scopes: Sequence[str],
        token_url: str,
        subject: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.client_email = client_email
        self.private_key_id = private_key_id
        self.scopes = tuple(scopes)
        self.token_url = token_url
        self.subject = subject
        self.clock = clock
        self._private_key_pem = private_key
        self._private_key: rsa.RSAPrivateKey | None = None
        self._token: AccessToken | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self._async_lock_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    @classmethod
    def for_account(
        cls,
        account: GoogleServiceAccount,
        *,
        scopes: Sequence[str],
        token_url: str,
        subject: str | None = None,
        clock: Clock = time.time,
    ) -> GoogleServiceAccountAuth:
        return cls(
            client_email=account.client_email,
            private_key=account.private_key.get_secret_value(),
            private_key_id=account.private_key_id,
            scopes=scopes,
            token_url=token_url,
            subject=subject,
            clock=clock,
        )

    # -- pieces both flows share --

    def claims(self) -> dict[str, Any]:
        return jwt_claims(
            issuer=self.client_email,
            scopes=self.scopes,
            audience=self.token_url,
            now=self.clock(),
            subject=self.subject,
        )

    def assertion(self) -> str:
        if self._private_key is None:
            self._private_key = load_private_key(self._private_key_pem)
        return jwt_assertion(self.claims(), self._private_key, self.private_key_id)

    def token_request(self, api_request: httpx.Request | None = None) -> httpx.Request:
        token_request = httpx.Request(
            "POST",
            self.token_url,
            data={"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()},
            headers={"Accept": "application/json"},
        )
        # httpx applies timeouts to the request given to send(), not to the ones an
        # auth flow yields: without this a stuck token endpoint would hang the call.
        if api_request is not None and "timeout" in api_request.extensions:
            token_request.extensions["timeout"] = api_request.extensions["timeout"]
        return token_request

    def cached_token(self) -> AccessToken | None:
        """The cached token, if it is good for more than another minute."""
        token = self._token
        return token if token is not None and token.fresh(self.clock()) else None

    def accept(self, response: httpx.Response) -> AccessToken:
        self._token = token_from_response(response, self.clock())
        return self._token

    def forget(self, token: AccessToken) -> None:
        # Only the token the API refused: another flow may have fetched a newer one meanwhile.
        if self._token is token:
            self._token = None

    @staticmethod
    def authorized(request: httpx.Request, token: AccessToken) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token.value}"
        return request

    def _loop_lock(self) -> asyncio.Lock:
        """One lock per event loop: an asyncio.Lock must not be shared across loops."""
        loop = asyncio.get_running_loop()
        if (
            self._async_lock is None
            or self._async_lock_loop is None
            or (self._async_lock_loop() is not loop)
        ):
            self._async_lock = asyncio.Lock()
            self._async_lock_loop = weakref.ref(loop)
        return self._async_lock

    # -- the flows: fetch (or reuse) a token, send, and on a 401 refresh and resend once --

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
            if response.status_code != 401 or attempt == 2:
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
            if response.status_code != 401 or attempt == 2:
                return
            self.forget(token)


class ServiceAccountAuths:
    """An adapter's auth flows, one per (tenant, token URL), so tokens outlive a single call.

    A tenant whose account changed (a rotated key) gets a new flow and a new token.
    """

    def __init__(self, scopes: Sequence[str], clock: Clock = time.time) -> None:
        self.scopes = tuple(scopes)
        self.clock = clock
        self._auths: dict[
            tuple[str, str, str, str], tuple[GoogleServiceAccount, GoogleServiceAccountAuth]
        ] = {}

    def get(
        self,
        tenant_id: str,
        account: GoogleServiceAccount,
        token_url: str,
        subject: str | None = None,
    ) -> GoogleServiceAccountAuth:
        key = (tenant_id, account.client_email, token_url, subject or "")
        cached = self._auths.get(key)
        if cached is not None and cached[0] == account and cached[1].subject == subject:
            return cached[1]
        auth = GoogleServiceAccountAuth.for_account(
            account, scopes=self.scopes, token_url=token_url, subject=subject, clock=self.clock
        )
        self._auths[key] = (account, auth)
        return auth
