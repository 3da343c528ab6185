"""What the catalog service returns: descriptions of rows, never a secret value."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)


class _Info(BaseModel):
    model_config = ConfigDict(frozen=True)


class TenantInfo(_Info):
    id: str
    name: str
    enabled: bool
    version: int
    accounts: int
    created_at: datetime
    updated_at: datetime


class AccountInfo(_Info):
    tenant_id: str
    label: str
    provider: str
    priority: int
    enabled: bool
    settings: dict[str, str]
    # Names of the secret fields that hold a value: the values never leave the catalog.
    secrets_set: list[str]
    key_id: str | None
    updated_at: datetime


class ApiKeyInfo(_Info):
    id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class RotationReport(_Info):
    primary_key_id: str  # the key every account is wrapped under now
    accounts_rewrapped: int
    tenants: list[str] = Field(default_factory=list)  # republished, each with a new version


class ImportReport(_Info):
    tenants_created: int = 0
    tenants_updated: int = 0
    tenants_unchanged: int = 0
    accounts_created: int = 0
    accounts_updated: int = 0
    accounts_unchanged: int = 0
