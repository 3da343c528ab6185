"""The admin API's request and response bodies.

Responses are the API's own models, not the catalog's: what leaves the process
is decided here, field by field, so a field added to the catalog (a sealed
blob, a key hash) never reaches a caller by accident. Request bodies forbid
unknown fields: a typo ("enable") is a 422, not a silent no-op.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.audit import AuditFilter
from core.tenants import ID_PATTERN
from schemas.events import ProviderCallAudit

Role = Literal["admin", "operator", "viewer"]
ProbeStatus = Literal["ok", "auth_failed", "unreachable", "unsupported"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- errors ------------------------------------------------------------------


class ErrorOut(_Out):
    error: str


class FieldError(_Out):
    field: str
    message: str


class ValidationErrorOut(_Out):
    error: Literal["validation failed"] = "validation failed"
    fields: list[FieldError]


class HealthOut(_Out):
    status: Literal["ok"] = "ok"


# --- tenants -----------------------------------------------------------------


class TenantCreate(_Body):
    id: str = Field(pattern=ID_PATTERN, description="Lowercase letters, digits, '-' and '_'.")
    name: str = Field(default="", max_length=200)
    enabled: bool = True


class TenantPatch(_Body):
    name: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None


class TenantOut(_Out):
    id: str
    name: str
    enabled: bool
    version: int = Field(description="+1 on every change of the tenant, its accounts or routing.")
    accounts: int = Field(description="How many provider accounts the tenant has.")
    created_at: datetime
    updated_at: datetime


class TenantList(_Out):
    tenants: list[TenantOut]


# --- accounts ----------------------------------------------------------------

_FIELDS_HELP = (
    "The provider's account fields, public and secret together. Secret fields are "
    "write-only: responses name them in secrets_set, never show their values."
)


class AccountCreate(_Body):
    label: str = Field(pattern=ID_PATTERN)
    provider: str = Field(min_length=1, max_length=64)
    priority: int = Field(default=0, description="Lower first: the primary account has the lowest.")
    enabled: bool = True
    fields: dict[str, str] = Field(default_factory=dict, description=_FIELDS_HELP)


class AccountPatch(_Body):
    priority: int | None = None
    enabled: bool | None = None
    fields: dict[str, str] | None = Field(
        default=None,
        description="Merged into the existing fields: a secret not given is kept.",
    )


class AccountOut(_Out):
    tenant_id: str
    label: str
    provider: str
    priority: int
    enabled: bool
    settings: dict[str, str] = Field(description="The account's public (non-secret) fields.")
    secrets_set: list[str] = Field(description="Names of the secret fields that have a value.")
    key_id: str | None = Field(description="The master key wrapping the account's secrets.")
    updated_at: datetime


class AccountList(_Out):
    accounts: list[AccountOut]


class ProbeOut(_Out):
    status: ProbeStatus
    detail: str
    http_status: int | None = None


# --- routing -----------------------------------------------------------------


class RoutingBody(_Body):
    routing: dict[str, list[str]] = Field(
        description="Channel or category ('sms', 'email', 'payment') -> account labels, "
        "most preferred first."
    )


class RoutingOut(_Out):
    tenant_id: str
    routing: dict[str, list[str]]


# --- API keys ----------------------------------------------------------------


class ApiKeyCreate(_Body):
    name: str = Field(min_length=1, max_length=100)
    role: Role


class ApiKeyOut(_Out):
    id: str
    name: str
    role: Role
    prefix: str = Field(description="The token's first characters, to recognise it by.")
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(description="The key itself: shown this once, stored only as a hash.")


class ApiKeyList(_Out):
    api_keys: list[ApiKeyOut]


# --- audit -------------------------------------------------------------------


class AuditQuery(_Body):
    tenant: str | None = None
    provider: str | None = None
    status: str | None = Field(
        default=None,
        description="An HTTP status (503), a class (5xx), none (no answer), or an outcome "
        "(delivered, retry, rejected, error, accepted, refused).",
    )
    since: datetime | None = Field(default=None, description="ISO 8601: records at or after it.")
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many, the newest.")

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str | None) -> str | None:
        AuditFilter(status=value)  # raises ValueError naming what is accepted
        return value


class AuditPage(_Out):
    records: list[ProviderCallAudit] = Field(
        description="The newest matching records of hub.audit.v1, oldest of them first; "
        "URLs, headers and bodies masked at the source."
    )
    count: int
