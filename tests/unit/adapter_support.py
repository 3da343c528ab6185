"""Helpers for the sync-target adapter tests: a fake Google (token endpoint + API), JWT checks."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import httpx
from connector_support import Step
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.google_auth import JWT_BEARER_GRANT

TOKEN_URL = "http://sim/google/oauth2/token"
API = "http://sim/api"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def public_key_of(private_key_pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key()


def verify_jwt(assertion: str, private_key_pem: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of an RS256 JWT whose signature verifies (raises InvalidSignature)."""
    header_b64, claims_b64, signature_b64 = assertion.split(".")
    public_key_of(private_key_pem).verify(
        b64url_decode(signature_b64),
        f"{header_b64}.{claims_b64}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return json.loads(b64url_decode(header_b64)), json.loads(b64url_decode(claims_b64))


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def google_error(
    code: int, status: str, message: str, reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Google's JSON error shape (Admin SDK, FCM and every other googleapis.com API)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status, **extra}
    if reason is not None:
        error["errors"] = [{"message": message, "domain": "global", "reason": reason}]
    return {"error": error}


def token_error(status: int, error: str, description: str) -> httpx.Response:
    return httpx.Response(status, json={"error": error, "error_description": description})


class FakeGoogle:
    """One MockTransport playing Google's token endpoint and an API behind it.

    The token endpoint checks the grant, remembers each assertion and, by default,
    issues a new token each time; the API accepts only the latest token (401 otherwise).
    Either side can be scripted instead: a list of steps, the last one repeating.
    """

    def __init__(
        self,
        *,
        token_steps: Sequence[Step] | None = None,
        api_steps: Sequence[Step] | None = None,
        expires_in: int = 3599,
    ) -> None:
        self.expires_in = expires_in
        self.token_steps: list[Step] = list(token_steps or [self.issue_token])
        self.api_steps: list[Step] = list(api_steps or [self.api_ok])
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.issued: list[str] = []

    @property
    def assertions(self) -> list[str]:
        return [form_of(r)["assertion"] for r in self.token_requests]

    def issue_token(self, request: httpx.Request) -> httpx.Response:
        form = form_of(request)
        assert form["grant_type"] == JWT_BEARER_GRANT
        token = f"ya29.token-{len(self.token_requests)}"
        self.issued.append(token)
        return httpx.Response(
            200,
            json={"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"},
        )

    def api_ok(self, request: httpx.Request) -> httpx.Response:
        if not self.issued or request.headers.get("authorization") != f"Bearer {self.issued[-1]}":
            return httpx.Response(
                401, json=google_error(401, "UNAUTHENTICATED", "Invalid Credentials", "authError")
            )
        return httpx.Response(200, json={"ok": True})

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        # A snapshot: an auth flow resends the same Request object with new headers.
        request = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.content
        )
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            return self._play(self.token_steps, len(self.token_requests), request)
        self.api_requests.append(request)
        return self._play(self.api_steps, len(self.api_requests), request)

    @staticmethod
    def _play(steps: list[Step], count: int, request: httpx.Request) -> httpx.Response:
        step = steps[min(count, len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return httpx.Response(step.status_code, headers=step.headers, content=step.content)
        return step(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def with_bearer(check: Callable[[httpx.Request], httpx.Response], fake: FakeGoogle) -> Step:
    """An API step that first insists on the latest token, then answers with `check`."""

    def step(request: httpx.Request) -> httpx.Response:
        refused = fake.api_ok(request)
        return refused if refused.status_code == 401 else check(request)

    return step
