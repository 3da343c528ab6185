"""Master key rotation: a new primary key, every account's data key re-wrapped under it.

Only the 32-byte data keys are re-encrypted; the secrets' ciphertexts stay as
they are. Each tenant whose accounts were re-wrapped is republished (new
version), so every component holds snapshots it can open with the new key
and the old one can be retired.
"""

from __future__ import annotations

from sqlalchemy import func, select

from catalog.errors import ConflictError
from catalog.models import RotationReport
from catalog.store import CatalogStore, put_sealed, sealed_of
from catalog.tables import AccountRow, TenantRow, utcnow
from core.crypto import Keyring, KeyringError, add_master_key, remove_master_key


class MasterKeys(CatalogStore):
    def _require_key_file(self, action: str) -> None:
        if self.settings.master_keys is not None:
            raise KeyringError(
                f"the master keys come from HUB_MASTER_KEYS, which the hub cannot {action}: "
                "edit the variable yourself (the last id:base64url entry encrypts; "
                "`hub keys generate` prints a new one), restart the hub's components with it, "
                "then run `hub keys rewrap`"
            )

    def rotate_master_key(self) -> RotationReport:
        """Add a primary key to the key file, then re-wrap every account under it."""
        self._require_key_file("change")
        path = self.settings.master_key_path
        add_master_key(path)
        self.keyring = Keyring.from_file(path)
        return self.rewrap_all()

    def rewrap_all(self) -> RotationReport:
        """Re-wrap every account not yet under the primary key (after HUB_MASTER_KEYS changed)."""
        keyring = self.keyring
        primary = keyring.primary.key_id
        stale = AccountRow.key_id.is_not(None) & (AccountRow.key_id != primary)
        rewrapped, now = 0, utcnow()
        with self.write() as session:
            # Tenants first, in id order, as every other change locks a tenant before
            # its accounts: no two transactions wait on each other in a cycle.
            tenants = list(
                session.scalars(
                    select(TenantRow)
                    .where(TenantRow.id.in_(select(AccountRow.tenant_id).where(stale)))
                    .order_by(TenantRow.id)
                    .with_for_update()
                )
            )
            for row in session.scalars(select(AccountRow).where(stale)):
                sealed = sealed_of(row)
                assert sealed is not None  # key_id is set, so are the other two (put_sealed)
                put_sealed(row, keyring.rewrap(sealed))
                row.updated_at = now
                rewrapped += 1
            for tenant in tenants:
                self.changed(session, tenant, now)
        return RotationReport(
            primary_key_id=primary,
            accounts_rewrapped=rewrapped,
            tenants=[t.id for t in tenants],
        )

    def master_key_usage(self) -> dict[str, int]:
        """Every key of the keyring (and any key an account names) -> accounts wrapped by it."""
        usage = dict.fromkeys(self.keyring.key_ids, 0)
        with self.read() as session:
            query = (
                select(AccountRow.key_id, func.count())
                .where(AccountRow.key_id.is_not(None))
                .group_by(AccountRow.key_id)
            )
            for key_id, count in session.execute(query):
                usage[str(key_id)] = int(count)
        return usage

    def retire_master_key(self, key_id: str) -> None:
        """Remove a key from the key file; refused while any account is wrapped by it."""
        self._require_key_file("change")
        if key_id == self.keyring.primary.key_id:
            raise KeyringError(f"{key_id!r} is the primary master key: rotate first")
        in_use = self.master_key_usage().get(key_id, 0)
        if in_use:
            raise ConflictError(
                f"{in_use} account(s) are still wrapped by master key {key_id!r}: "
                "run `hub keys rewrap` first"
            )
        path = self.settings.master_key_path
        remove_master_key(path, key_id)
        self.keyring = Keyring.from_file(path)
