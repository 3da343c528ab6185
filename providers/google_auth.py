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

Caching, locking and the one resend after a 401 are `CachedTokenAuth`'s
(providers/token_auth.py); this module signs the JWT and asks for the token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, SecretStr

from providers.base import AuthError
from providers.token_auth import TOKEN as TOKEN  # noqa: PLC0414 - re-exported for adapters
from providers.token_auth import AccessToken as AccessToken  # noqa: PLC0414 - re-exported
from providers.token_auth import CachedTokenAuth, oauth2_token
from providers.token_auth import Clock as Clock  # noqa: PLC0414 - re-exported for adapters
from providers.token_auth import (
    TokenUnavailableError as TokenUnavailableError,  # noqa: PLC0414 - re-exported
)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # the longest Google accepts

# Google's OAuth 2.0 token endpoint, where service-account JWTs become access tokens.
TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret


class GoogleServiceAccount(BaseModel):
    """A Google Cloud service account: the hub signs a JWT with its key to get an access token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_email: str
    private_key: SecretStr  # PEM, RSA
    private_key_id: str = ""


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


# Google's token endpoint answers as RFC 6749 says (error, error_description).
token_from_response = oauth2_token


# --- the auth flow ---------------------------------------------------------------


class GoogleServiceAccountAuth(CachedTokenAuth):
    """The shared token flow, buying tokens with a JWT signed by the service account's key."""

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
        super().__init__(token_url, clock)
        self.client_email = client_email
        self.private_key_id = private_key_id
        self.scopes = tuple(scopes)
        self.subject = subject
        self._private_key_pem = private_key
        self._private_key: rsa.RSAPrivateKey | None = None

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

    # -- the JWT that buys the token --

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

    def new_token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.token_url,
            data={"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()},
            headers={"Accept": "application/json"},
        )

    def read_token(self, response: httpx.Response, now: float) -> AccessToken:
        return oauth2_token(response, now)


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
