"""What a provider adapter is: build the request, classify the response.

An adapter knows one provider's HTTP API and nothing about Kafka, retries or
idempotency ledgers. It turns a command into an `httpx.Request` and a response
into one of three outcomes:

- `Delivered`: the provider accepted it (with its reference: order id, sid).
- `RetryLater`: try again (5xx, 429, 408), after `retry_after` if the provider said so.
- `Rejected`: it will never work as sent (4xx): retrying only repeats the failure.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol, TypeVar

import httpx

from core.settings import Settings
from core.tenants import MissingCredentialsError as MissingCredentialsError  # noqa: PLC0414 - re-exported for adapters
from core.tenants import Tenant
from schemas.events import CommandPayload, ConnectorCommand

Category = Literal[
    "payment",
    "sms",
    "email",
    "whatsapp",
    "push",
    "chat",
    "storage",
    "directory",
    "lms",
    "video",
    "webhook",
    "profile",  # a school's own systems (seed 003): its app backend, its contact books
    "contacts",
]
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Delivered:
    provider_ref: str | None
    http_status: int
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryLater:
    reason: str
    http_status: int | None = None
    error_code: str | None = None
    retry_after: float | None = None
    # The request may have reached the provider (a read timeout, a dropped
    # connection after sending): before sending again, ask it if it can tell.
    in_doubt: bool = False


@dataclass(frozen=True)
class Rejected:
    reason: str
    http_status: int | None = None
    error_code: str | None = None


Outcome = Delivered | RetryLater | Rejected


class AuthError(Exception):
    """Credentials were refused while obtaining a token (an auth flow's own request)."""


P_contra = TypeVar("P_contra", bound=CommandPayload, contravariant=True)


class ProviderAdapter(Protocol[P_contra]):
    name: str
    category: Category

    @property
    def payload_type(self) -> type[CommandPayload] | tuple[type[CommandPayload], ...]:
        """What it can do: one payload type, or several (payment gateways)."""
        ...

    def build_request(
        self, command: ConnectorCommand, payload: P_contra, tenant: Tenant, base_url: str
    ) -> httpx.Request: ...

    def classify(self, response: httpx.Response) -> Outcome: ...

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        """An httpx auth flow for providers whose credentials are fetched (OAuth 2.0), or
        None when build_request already put the credentials on the request. `label`
        names the tenant's account (None: the provider's primary)."""
        ...


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True, float("²") fails
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_failure(response: httpx.Response, reason: str, error_code: str | None) -> Outcome:
    """The non-2xx half of every adapter's classify: retry 5xx/429/408, reject other 4xx."""
    status = response.status_code
    if status in RETRYABLE_STATUSES or status >= 500:
        return RetryLater(
            reason, status, error_code, parse_retry_after(response.headers.get("retry-after"))
        )
    return Rejected(reason, status, error_code)


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def json_or_empty(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
