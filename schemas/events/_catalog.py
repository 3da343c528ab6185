"""The tenant catalog as components receive it: one snapshot per tenant change."""

from __future__ import annotations

from pydantic import Field

from schemas.events._base import Event, _Model


class SealedSecrets(_Model):
    """An account's secret fields as one envelope-encrypted JSON object (core.crypto)."""

    key_id: str
    wrapped_key: bytes
    ciphertext: bytes


class CatalogAccount(_Model):
    label: str
    provider: str
    priority: int = 0
    enabled: bool = True
    settings: dict[str, str] = Field(default_factory=dict)  # the non-secret fields
    sealed: SealedSecrets | None = None  # None: the account has no secret set


class TenantCatalogEntry(Event):
    SCHEMA = "com.integrationhub.TenantCatalogEntry"
    EVENT_TYPE = "catalog.tenant.updated"

    tenant_id: str
    name: str = ""
    enabled: bool = True
    version: int
    accounts: list[CatalogAccount] = Field(default_factory=list)
    routing: dict[str, list[str]] = Field(default_factory=dict)

    def key(self) -> str:
        return self.tenant_id
