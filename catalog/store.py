"""The service's base: transactions, row lookups, and the change bookkeeping.

Every change to a tenant goes through `changed()` inside the transaction that
makes it: the tenant's version goes up by one and a catalog_outbox row names
the tenant, so the change and the promise to publish it commit together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from catalog.db import READ_ONLY
from catalog.errors import NotFoundError
from catalog.fields import open_secrets
from catalog.models import AccountInfo, TenantInfo
from catalog.tables import AccountRow, OutboxRow, TenantRow, utcnow
from core.crypto import Keyring, Sealed
from core.settings import Settings


class CatalogStore:
    def __init__(
        self, engine: Engine, keyring: Keyring, settings: Settings, *, key_file: Path | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self._reader = engine.execution_options(**{READ_ONLY: True})
        # A long-running process (the admin API) must seal under the key another
        # process (`hub keys rotate`) just made primary: the file is re-read when it changes.
        self._key_file = key_file
        self._keyring = keyring
        self._key_stamp = self._stamp()

    def _stamp(self) -> int | None:
        try:
            return self._key_file.stat().st_mtime_ns if self._key_file else None
        except FileNotFoundError:
            return None

    @property
    def keyring(self) -> Keyring:
        stamp = self._stamp()
        if stamp is not None and stamp != self._key_stamp and self._key_file is not None:
            self._keyring, self._key_stamp = Keyring.from_file(self._key_file), stamp
        return self._keyring

    @keyring.setter
    def keyring(self, keyring: Keyring) -> None:
        self._keyring, self._key_stamp = keyring, self._stamp()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self._reader, expire_on_commit=False) as session, session.begin():
            yield session

    @staticmethod
    def tenant_row(session: Session, tenant_id: str, *, lock: bool = False) -> TenantRow:
        """A live tenant; `lock`: row-locked (PostgreSQL) so concurrent changes to it queue."""
        query = select(TenantRow).where(TenantRow.id == tenant_id)
        row = session.scalars(query.with_for_update() if lock else query).one_or_none()
        if row is None or row.deleted_at is not None:
            raise NotFoundError("tenant", tenant_id)
        return row

    @staticmethod
    def account_row(session: Session, tenant_id: str, label: str) -> AccountRow:
        row = session.get(AccountRow, (tenant_id, label))
        if row is None:
            raise NotFoundError("account", f"{tenant_id}/{label}")
        return row

    @staticmethod
    def accounts_of(session: Session, tenant_id: str) -> list[AccountRow]:
        query = select(AccountRow).where(AccountRow.tenant_id == tenant_id)
        return list(session.scalars(query.order_by(AccountRow.priority, AccountRow.label)))

    @staticmethod
    def changed(session: Session, tenant: TenantRow, now: datetime | None = None) -> None:
        tenant.version += 1
        tenant.updated_at = now or utcnow()
        session.add(OutboxRow(tenant_id=tenant.id, created_at=tenant.updated_at))
        session.flush()

    def tenant_info(self, session: Session, row: TenantRow) -> TenantInfo:
        return TenantInfo(
            id=row.id,
            name=row.name,
            enabled=row.enabled,
            version=row.version,
            accounts=len(self.accounts_of(session, row.id)),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def secret_names(self, row: AccountRow) -> list[str]:
        """The names of the secret fields the account holds, from the sealed blob's keys."""
        sealed = sealed_of(row)
        if sealed is None:
            return []
        return sorted(open_secrets(self.keyring, row.tenant_id, row.label, sealed))

    def account_info(self, row: AccountRow) -> AccountInfo:
        return AccountInfo(
            tenant_id=row.tenant_id,
            label=row.label,
            provider=row.provider,
            priority=row.priority,
            enabled=row.enabled,
            settings=dict(row.settings),
            secrets_set=self.secret_names(row),
            key_id=row.key_id,
            updated_at=row.updated_at,
        )


def sealed_of(row: AccountRow) -> Sealed | None:
    if row.key_id is None or row.wrapped_key is None or row.ciphertext is None:
        return None
    return Sealed(row.key_id, row.wrapped_key, row.ciphertext)


def put_sealed(row: AccountRow, sealed: Sealed | None) -> None:
    row.key_id = sealed.key_id if sealed else None
    row.wrapped_key = sealed.wrapped_key if sealed else None
    row.ciphertext = sealed.ciphertext if sealed else None
