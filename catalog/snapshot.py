"""A tenant's catalog entry: built from its rows, and turned back into a core.tenants.Tenant.

The entry is what hub.catalog.tenants.v1 carries (secrets still sealed); a
component holding the master keys opens it into a Tenant in memory only.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.fields import open_secrets, validate
from catalog.store import CatalogStore, sealed_of
from catalog.tables import RoutingRow, TenantRow
from core.crypto import Keyring, Sealed
from core.tenants import ProviderAccount, Tenant
from schemas.events import CatalogAccount, EventHeader, SealedSecrets, TenantCatalogEntry

SOURCE = "catalog"
# Kafka header on every catalog record, tombstones included, so that a reader can
# drop a late record older than what it holds (a tombstone has no value to read it from).
VERSION_HEADER = "hub.catalog_version"


def routing_of(session: Session, tenant_id: str) -> dict[str, list[str]]:
    rows = session.scalars(
        select(RoutingRow).where(RoutingRow.tenant_id == tenant_id).order_by(RoutingRow.channel)
    )
    return {r.channel: list(r.labels) for r in rows}


def build_entry(session: Session, tenant: TenantRow) -> TenantCatalogEntry:
    accounts = []
    for row in CatalogStore.accounts_of(session, tenant.id):
        sealed = sealed_of(row)
        accounts.append(
            CatalogAccount(
                label=row.label,
                provider=row.provider,
                priority=row.priority,
                enabled=row.enabled,
                settings=dict(row.settings),
                sealed=SealedSecrets(
                    key_id=sealed.key_id,
                    wrapped_key=sealed.wrapped_key,
                    ciphertext=sealed.ciphertext,
                )
                if sealed
                else None,
            )
        )
    return TenantCatalogEntry(
        header=EventHeader.new(TenantCatalogEntry.EVENT_TYPE, tenant.id, source=SOURCE),
        tenant_id=tenant.id,
        name=tenant.name,
        enabled=tenant.enabled,
        version=tenant.version,
        accounts=accounts,
        routing=routing_of(session, tenant.id),
    )


def account_fields(keyring: Keyring, tenant_id: str, account: CatalogAccount) -> dict[str, str]:
    """Every field of the account, secrets opened (in memory only)."""
    sealed = account.sealed
    opened = open_secrets(
        keyring,
        tenant_id,
        account.label,
        Sealed(sealed.key_id, sealed.wrapped_key, sealed.ciphertext) if sealed else None,
    )
    return {**account.settings, **opened}


def open_account(keyring: Keyring, tenant_id: str, account: CatalogAccount) -> ProviderAccount:
    """Raises core.crypto.KeyringError (a key it lacks, a tampered blob) or
    catalog.errors.CatalogValidationError (fields its provider model refuses)."""
    return validate(
        account.provider,
        account.label,
        account_fields(keyring, tenant_id, account),
        priority=account.priority,
        enabled=account.enabled,
    )


def entry_to_tenant(entry: TenantCatalogEntry, keyring: Keyring) -> Tenant:
    return Tenant(
        id=entry.tenant_id,
        name=entry.name,
        enabled=entry.enabled,
        accounts=tuple(open_account(keyring, entry.tenant_id, a) for a in entry.accounts),
        routing={channel: tuple(labels) for channel, labels in entry.routing.items()},
    )
