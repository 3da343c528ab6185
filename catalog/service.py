"""The tenant catalog's service layer: what the CLI and the admin API call.

Secrets are write-only here: they go in with an account's fields, are sealed
at once (core.crypto, AAD "tenant/label"), and no method returns one, except
`load_tenant`, for in-process use (test-connection). Every change bumps the
tenant's version and writes its outbox row in the same transaction
(CatalogStore.changed); `publish_pending` turns the outbox into snapshots on
hub.catalog.tenants.v1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from confluent_kafka import Producer
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog import relay
from catalog.api_keys import ApiKeys
from catalog.db import engine_for, migrate
from catalog.errors import CatalogValidationError, ConflictError
from catalog.fields import (
    SplitFields,
    check_id,
    fields_of,
    open_secrets,
    seal_secrets,
    split,
    validate,
)
from catalog.master_keys import MasterKeys
from catalog.models import AccountInfo, ImportReport, TenantInfo
from catalog.snapshot import build_entry, entry_to_tenant, routing_of
from catalog.store import put_sealed, sealed_of
from catalog.tables import AccountRow, RoutingRow, TenantRow, utcnow
from catalog.tenant_file import read_tenant_file
from core.crypto import Keyring
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant
from schemas.codec import Codec

Outcome = Literal["created", "updated", "unchanged"]


class CatalogService(ApiKeys, MasterKeys):
    # True when open() made the master key file: the caller tells the operator to back it up.
    created_key_file = False

    @classmethod
    def open(cls, settings: Settings) -> CatalogService:
        engine = engine_for(settings)
        migrate(engine)
        key_file = None if settings.master_keys is not None else settings.master_key_path
        had_keys = key_file is None or key_file.exists()
        keyring = Keyring.from_settings(settings, create=True)
        service = cls(engine, keyring, settings, key_file=key_file)
        service.created_key_file = not had_keys
        return service

    # --- tenants -------------------------------------------------------------

    def list_tenants(self) -> list[TenantInfo]:
        with self.read() as session:
            counts = dict(
                session.execute(
                    select(AccountRow.tenant_id, func.count()).group_by(AccountRow.tenant_id)
                ).all()
            )
            rows = session.scalars(
                select(TenantRow).where(TenantRow.deleted_at.is_(None)).order_by(TenantRow.id)
            )
            return [
                TenantInfo(
                    id=r.id,
                    name=r.name,
                    enabled=r.enabled,
                    version=r.version,
                    accounts=int(counts.get(r.id, 0)),
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                )
                for r in rows
            ]

    def get_tenant(self, tenant_id: str) -> TenantInfo:
        with self.read() as session:
            return self.tenant_info(session, self.tenant_row(session, tenant_id))

    def create_tenant(self, tenant_id: str, name: str = "", *, enabled: bool = True) -> TenantInfo:
        check_id("id", tenant_id)
        try:
            with self.write() as session:
                return self.tenant_info(session, self._create(session, tenant_id, name, enabled))
        except IntegrityError:  # created by someone else between our look and our insert
            raise ConflictError(f"tenant {tenant_id!r} exists") from None

    def _create(self, session: Session, tenant_id: str, name: str, enabled: bool) -> TenantRow:
        row = session.get(TenantRow, tenant_id, with_for_update=True)
        now = utcnow()
        if row is not None and row.deleted_at is None:
            raise ConflictError(f"tenant {tenant_id!r} exists")
        if row is None:
            row = TenantRow(id=tenant_id, version=0)
            session.add(row)
        # A deleted tenant's row is revived: its version sequence goes on.
        row.name, row.enabled, row.deleted_at, row.created_at = name, enabled, None, now
        self.changed(session, row, now)
        return row

    def update_tenant(
        self, tenant_id: str, *, name: str | None = None, enabled: bool | None = None
    ) -> TenantInfo:
        with self.write() as session:
            row = self.tenant_row(session, tenant_id, lock=True)
            if self._set_tenant(row, name, enabled):
                self.changed(session, row)
            return self.tenant_info(session, row)

    @staticmethod
    def _set_tenant(row: TenantRow, name: str | None, enabled: bool | None) -> bool:
        new_name = row.name if name is None else name
        new_enabled = row.enabled if enabled is None else enabled
        if (new_name, new_enabled) == (row.name, row.enabled):
            return False
        row.name, row.enabled = new_name, new_enabled
        return True

    def delete_tenant(self, tenant_id: str) -> None:
        """Its accounts and routing go; its row stays, marked deleted (see tables.TenantRow)."""
        with self.write() as session:
            row = self.tenant_row(session, tenant_id, lock=True)
            session.execute(delete(AccountRow).where(AccountRow.tenant_id == tenant_id))
            session.execute(delete(RoutingRow).where(RoutingRow.tenant_id == tenant_id))
            row.deleted_at = utcnow()
            self.changed(session, row, row.deleted_at)

    # --- accounts ------------------------------------------------------------

    def list_accounts(self, tenant_id: str) -> list[AccountInfo]:
        with self.read() as session:
            self.tenant_row(session, tenant_id)
            return [self.account_info(r) for r in self.accounts_of(session, tenant_id)]

    def get_account(self, tenant_id: str, label: str) -> AccountInfo:
        with self.read() as session:
            self.tenant_row(session, tenant_id)
            return self.account_info(self.account_row(session, tenant_id, label))

    def add_account(
        self,
        tenant_id: str,
        label: str,
        provider: str,
        fields: dict[str, str],
        *,
        priority: int = 0,
        enabled: bool = True,
    ) -> AccountInfo:
        check_id("label", label)
        parts = split(provider, fields)
        validate(provider, label, parts.merged, priority=priority, enabled=enabled)
        with self.write() as session:
            tenant = self.tenant_row(session, tenant_id, lock=True)
            if session.get(AccountRow, (tenant_id, label)) is not None:
                raise ConflictError(f"tenant {tenant_id!r} already has an account {label!r}")
            row = self._insert(
                session,
                parts,
                tenant_id=tenant_id,
                label=label,
                provider=provider,
                priority=priority,
                enabled=enabled,
            )
            self.changed(session, tenant)
            return self.account_info(row)

    def _insert(
        self,
        session: Session,
        parts: SplitFields,
        *,
        tenant_id: str,
        label: str,
        provider: str,
        priority: int,
        enabled: bool,
    ) -> AccountRow:
        now = utcnow()
        row = AccountRow(
            tenant_id=tenant_id,
            label=label,
            provider=provider,
            priority=priority,
            enabled=enabled,
            settings=parts.public,
            created_at=now,
            updated_at=now,
        )
        put_sealed(row, seal_secrets(self.keyring, tenant_id, label, parts.secret))
        session.add(row)
        session.flush()
        return row

    def _current(self, row: AccountRow) -> SplitFields:
        secret = open_secrets(self.keyring, row.tenant_id, row.label, sealed_of(row))
        return SplitFields(public=dict(row.settings), secret=secret)

    def _replace(
        self, row: AccountRow, parts: SplitFields | None, priority: int, enabled: bool
    ) -> bool:
        """Give the account these fields (None: keep them); False when nothing differs."""
        current = self._current(row)
        target = current if parts is None else parts
        if (target, priority, enabled) == (current, row.priority, row.enabled):
            return False
        validate(row.provider, row.label, target.merged, priority=priority, enabled=enabled)
        if target != current:
            row.settings = target.public
            put_sealed(row, seal_secrets(self.keyring, row.tenant_id, row.label, target.secret))
        row.priority, row.enabled, row.updated_at = priority, enabled, utcnow()
        return True

    def update_account(
        self,
        tenant_id: str,
        label: str,
        *,
        fields: dict[str, str] | None = None,
        priority: int | None = None,
        enabled: bool | None = None,
    ) -> AccountInfo:
        """`fields` merge into the account's (a secret not given is kept; "" unsets a field)."""
        with self.write() as session:
            tenant = self.tenant_row(session, tenant_id, lock=True)
            row = self.account_row(session, tenant_id, label)
            parts = None
            if fields is not None:
                parts = split(row.provider, {**self._current(row).merged, **fields})
            new_priority = row.priority if priority is None else priority
            new_enabled = row.enabled if enabled is None else enabled
            if self._replace(row, parts, new_priority, new_enabled):
                self.changed(session, tenant)
            return self.account_info(row)

    def remove_account(self, tenant_id: str, label: str) -> None:
        """The account goes, and with it its label from every routing list."""
        with self.write() as session:
            tenant = self.tenant_row(session, tenant_id, lock=True)
            session.delete(self.account_row(session, tenant_id, label))
            for route in session.scalars(
                select(RoutingRow).where(RoutingRow.tenant_id == tenant_id)
            ):
                if label in route.labels:
                    remaining = [x for x in route.labels if x != label]
                    if remaining:
                        route.labels = remaining
                    else:
                        session.delete(route)
            self.changed(session, tenant)

    def load_tenant(self, tenant_id: str) -> Tenant:
        """The tenant with its secrets opened: in memory only, never serialised or logged."""
        with self.read() as session:
            entry = build_entry(session, self.tenant_row(session, tenant_id))
        return entry_to_tenant(entry, self.keyring)

    # --- routing -------------------------------------------------------------

    def get_routing(self, tenant_id: str) -> dict[str, list[str]]:
        with self.read() as session:
            self.tenant_row(session, tenant_id)
            return routing_of(session, tenant_id)

    def set_routing(self, tenant_id: str, routing: dict[str, list[str]]) -> dict[str, list[str]]:
        """Replace the tenant's routing: channel -> account labels, most preferred first."""
        with self.write() as session:
            tenant = self.tenant_row(session, tenant_id, lock=True)
            if self._route(session, tenant_id, routing):
                self.changed(session, tenant)
            return routing_of(session, tenant_id)

    def _route(self, session: Session, tenant_id: str, routing: dict[str, list[str]]) -> bool:
        labels = {r.label for r in self.accounts_of(session, tenant_id)}
        wanted = {}
        for channel, chosen in routing.items():
            check_id("channel", channel)
            if len(set(chosen)) != len(chosen):
                raise CatalogValidationError(f"routing.{channel}", "a label is listed twice")
            unknown = [label for label in chosen if label not in labels]
            if unknown:
                raise CatalogValidationError(
                    f"routing.{channel}", f"no account {', '.join(map(repr, unknown))}"
                )
            if chosen:
                wanted[channel] = list(chosen)
        if wanted == routing_of(session, tenant_id):
            return False
        session.execute(delete(RoutingRow).where(RoutingRow.tenant_id == tenant_id))
        session.add_all(
            RoutingRow(tenant_id=tenant_id, channel=c, labels=v) for c, v in wanted.items()
        )
        session.flush()
        return True

    # --- files and publishing ------------------------------------------------

    def import_file(self, path: Path) -> ImportReport:
        """A tenant file (catalog.tenant_file) into the catalog: see import_tenants."""
        return self.import_tenants(read_tenant_file(path))

    def import_tenants(self, tenants: Sequence[Tenant]) -> ImportReport:
        """Create or update each tenant; idempotent (an unchanged tenant gets no new version).
        Accounts and routing channels not named are left as they are."""
        counts = dict.fromkeys(ImportReport.model_fields, 0)
        for tenant in tenants:
            outcome, accounts = self._import_tenant(tenant)
            counts[f"tenants_{outcome}"] += 1
            for account_outcome in accounts:
                counts[f"accounts_{account_outcome}"] += 1
        return ImportReport(**counts)

    def _import_tenant(self, tenant: Tenant) -> tuple[Outcome, list[Outcome]]:
        # One transaction per tenant: one new version however many accounts changed.
        with self.write() as session:
            row = session.get(TenantRow, tenant.id, with_for_update=True)
            outcome: Outcome = "unchanged"
            if row is None or row.deleted_at is not None:
                row, outcome = (
                    self._create(session, tenant.id, tenant.name, tenant.enabled),
                    "created",
                )
            elif self._set_tenant(row, tenant.name, tenant.enabled):
                outcome = "updated"
            accounts = [self._import_account(session, tenant.id, a) for a in tenant.accounts]
            routing = routing_of(session, tenant.id)
            routing.update({channel: list(labels) for channel, labels in tenant.routing.items()})
            routed = self._route(session, tenant.id, routing)
            if outcome == "unchanged" and (routed or set(accounts) - {"unchanged"}):
                outcome = "updated"
            if outcome == "updated":
                self.changed(session, row)
            return outcome, accounts

    def _import_account(
        self, session: Session, tenant_id: str, account: ProviderAccount
    ) -> Outcome:
        parts = split(account.provider, fields_of(account.config))
        row = session.get(AccountRow, (tenant_id, account.label))
        if row is not None and row.provider != account.provider:
            session.delete(row)  # the label now names an account with another provider
            session.flush()
            row = None
        if row is None:
            self._insert(
                session,
                parts,
                tenant_id=tenant_id,
                label=account.label,
                provider=account.provider,
                priority=account.priority,
                enabled=account.enabled,
            )
            return "created"
        changed = self._replace(row, parts, account.priority, account.enabled)
        return "updated" if changed else "unchanged"

    def publish_pending(self, producer: Producer, codec: Codec, *, timeout: float = 10.0) -> int:
        """Publish the snapshot of every tenant the outbox names (see catalog.relay)."""
        return relay.publish_pending(self, producer, codec, timeout=timeout)
