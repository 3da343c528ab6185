"""Asking a provider whether an in-doubt attempt happened: for providers without idempotency keys.

A worker that crashed after the provider acted but before the hub recorded the result
cannot tell, on redelivery, whether to send. An adapter with this capability builds
a query for traces of the command since the attempt started and reads the answer:

- `Found`: the provider has a trace: the attempt happened, do not send again.
- `NotFound`: no trace: safe to send (once `lookup_settle_seconds` have passed).
- `NextPage`: the answer spans pages: send `request` and read its answer the same way.
- `RetryLater`: the query itself failed; ask again later. Also returned, with
  `lookup_refused(...)` true, when the provider refused the query for good
  (401/403/404 ...): whether to send blind, park or alert is the executor's call,
  never the adapter's.

Like `build_request` and `classify`, both methods are pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeGuard

import httpx

from core.tenants import Tenant
from providers.base import RETRYABLE_STATUSES, RetryLater, classify_failure
from schemas.events import ConnectorCommand


@dataclass(frozen=True)
class Found:
    """The provider has a trace of this command: it happened."""

    provider_ref: str | None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotFound:
    """The provider has no trace of this command: safe to send."""


@dataclass(frozen=True)
class NextPage:
    """Read on: the answer spans pages."""

    request: httpx.Request


LookupOutcome = Found | NotFound | NextPage | RetryLater


class SupportsLookup(Protocol):
    # How long after an attempt started the provider's answer is conclusive: a NotFound
    # earlier than that may only mean the provider has not indexed the attempt yet.
    lookup_settle_seconds: float

    def lookup_request(
        self,
        command: ConnectorCommand,
        payload: Any,
        tenant: Tenant,
        base_url: str,
        since: datetime,
    ) -> httpx.Request:
        """The first query for traces of `command` since `since` (when the attempt began)."""
        ...

    def read_lookup(
        self,
        command: ConnectorCommand,
        payload: Any,
        tenant: Tenant,
        response: httpx.Response,
        since: datetime,
    ) -> LookupOutcome:
        """What one answer (first page or a NextPage's) says."""
        ...


def supports_lookup(adapter: object) -> TypeGuard[SupportsLookup]:
    """True when `adapter` can be asked whether an attempt happened."""
    settle = getattr(adapter, "lookup_settle_seconds", None)
    return (
        isinstance(settle, int | float)
        and not isinstance(settle, bool)
        and callable(getattr(adapter, "lookup_request", None))
        and callable(getattr(adapter, "read_lookup", None))
    )


def query_failed(response: httpx.Response, reason: str, error_code: str | None) -> RetryLater:
    """A failed query as RetryLater: transient ones with their Retry-After, permanent ones
    (what `classify_failure` would reject) marked in the reason; see `lookup_refused`."""
    outcome = classify_failure(response, reason, error_code)
    if isinstance(outcome, RetryLater):
        return outcome
    return RetryLater(f"lookup refused by the provider: {reason}", response.status_code, error_code)


def lookup_refused(outcome: RetryLater) -> bool:
    """True when the provider refused the query itself (a 4xx that retrying will not fix,
    e.g. bad credentials or a missing add-on) rather than failing for now."""
    status = outcome.http_status
    return status is not None and 400 <= status < 500 and status not in RETRYABLE_STATUSES


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
