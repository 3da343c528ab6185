"""The audit trail: one record per HTTP exchange with a provider, either way."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from schemas.events._base import Event


class AuditDirection(StrEnum):
    OUTBOUND = "outbound"  # the hub called the provider
    INBOUND = "inbound"  # the provider called the hub (a webhook)


class AuditOutcome(StrEnum):
    # Outbound: what the hub made of the provider's answer.
    DELIVERED = "delivered"  # a 2xx
    RETRY = "retry"  # a retryable failure (5xx, 429, 408)
    REJECTED = "rejected"  # a permanent failure (other 4xx, refused credentials)
    ERROR = "error"  # no HTTP answer (a transport error), or the hub failed (ingress 503)
    # Inbound: what the hub answered the provider.
    ACCEPTED = "accepted"
    REFUSED = "refused"


class ProviderCallAudit(Event):
    """Bodies, headers and the URL are masked before the record is built (core.audit)."""

    SCHEMA = "com.integrationhub.ProviderCallAudit"
    EVENT_TYPE = "hub.audit.provider_call"

    provider: str
    account: str | None = None
    operation: str
    direction: AuditDirection
    method: str
    url: str
    http_status: int | None = None
    duration_ms: float
    attempt: int = 1
    outcome: AuditOutcome
    error: str | None = None
    idempotency_key: str | None = None
    provider_event_id: str | None = None
    request_headers: dict[str, str] = Field(default_factory=dict)
    request_body: str = ""
    response_headers: dict[str, str] = Field(default_factory=dict)
    response_body: str | None = None
    at: datetime

    def key(self) -> str:
        return self.header.tenant
