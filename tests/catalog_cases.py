"""The catalog service's behaviour, run against SQLite (tests/unit/test_catalog_service.py)
and PostgreSQL (tests/integration/test_catalog_postgres.py): each module gives a `catalog`
fixture, an empty catalog whose settings keep their key file under the test's tmp_path."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import create_engine, make_url, text

from catalog.db import VERSION_TABLE, normalise_url
from catalog.errors import CatalogValidationError, ConflictError, NotFoundError
from catalog.service import CatalogService
from catalog.tables import Base
from core.crypto import DecryptError, KeyringError, add_master_key

TWILIO = {"account_sid": "AC0001", "auth_token": "tw-token-1", "from_number": "+15005550006"}
RAZORPAY = {"key_id": "rzp_test_1", "key_secret": "rzp-secret-1", "webhook_secret": "whsec-1"}

TENANT_FILE = """
[tenants.oakridge]
name = "Oakridge School"

[tenants.oakridge.accounts.twilio-primary]
provider = "twilio"
account_sid = "AC0001"
auth_token = "tw-token-1"
from_number = "+15005550006"

[tenants.oakridge.accounts.razorpay-primary]
provider = "razorpay"
key_id = "rzp_test_1"
key_secret = "rzp-secret-1"
webhook_secret = "whsec-1"

[tenants.oakridge.routing]
sms = ["twilio-primary"]
"""


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new PostgreSQL database on the server (its URL), dropped afterwards."""
    name = f"catalog_test_{secrets.token_hex(4)}"
    server = create_engine(normalise_url(server_dsn), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalise_url(server_dsn)).set(database=name).render_as_string(False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def outbox(catalog: CatalogService) -> list[str]:
    with catalog.engine.connect() as conn:
        return [
            r[0] for r in conn.execute(text("SELECT tenant_id FROM catalog_outbox ORDER BY id"))
        ]


def raw_account(catalog: CatalogService, tenant: str, label: str) -> dict[str, object]:
    with catalog.engine.connect() as conn:
        row = conn.execute(
            text("SELECT * FROM accounts WHERE tenant_id = :t AND label = :l"),
            {"t": tenant, "l": label},
        ).one()
        return dict(row._mapping)


def with_twilio(catalog: CatalogService, tenant: str = "greenwood") -> None:
    catalog.create_tenant(tenant, "Greenwood High School")
    catalog.add_account(tenant, "twilio-primary", "twilio", dict(TWILIO))


class CatalogCases:
    def test_migrations_create_exactly_the_models_tables(self, catalog: CatalogService) -> None:
        with catalog.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
        with catalog.engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM relay_lock")).all() == [(1,)]

    def test_tenants_are_created_listed_and_refused_twice(self, catalog: CatalogService) -> None:
        created = catalog.create_tenant("greenwood", "Greenwood High School")
        assert (created.id, created.name, created.enabled, created.version) == (
            "greenwood",
            "Greenwood High School",
            True,
            1,
        )
        catalog.create_tenant("riverside", enabled=False)
        assert [(t.id, t.enabled, t.accounts) for t in catalog.list_tenants()] == [
            ("greenwood", True, 0),
            ("riverside", False, 0),
        ]
        with pytest.raises(ConflictError):
            catalog.create_tenant("greenwood")
        with pytest.raises(CatalogValidationError) as bad:
            catalog.create_tenant("Green Wood")
        assert bad.value.field == "id"
        with pytest.raises(NotFoundError):
            catalog.get_tenant("nowhere")

    def test_every_change_is_one_version_and_one_outbox_row(self, catalog: CatalogService) -> None:
        with_twilio(catalog)  # versions 1, 2
        catalog.update_tenant("greenwood", name="Greenwood")  # 3
        catalog.update_tenant("greenwood", name="Greenwood")  # no change: no version
        catalog.update_account("greenwood", "twilio-primary", priority=5)  # 4
        catalog.set_routing("greenwood", {"sms": ["twilio-primary"]})  # 5
        catalog.set_routing("greenwood", {"sms": ["twilio-primary"]})  # no change
        catalog.remove_account("greenwood", "twilio-primary")  # 6
        assert catalog.get_tenant("greenwood").version == 6
        assert outbox(catalog) == ["greenwood"] * 6

    def test_a_failed_change_leaves_no_trace(self, catalog: CatalogService) -> None:
        with_twilio(catalog)
        with pytest.raises(ConflictError):
            catalog.add_account("greenwood", "twilio-primary", "twilio", dict(TWILIO))
        assert catalog.get_tenant("greenwood").version == 2
        assert outbox(catalog) == ["greenwood", "greenwood"]

    def test_secret_fields_are_sealed_and_only_named(self, catalog: CatalogService) -> None:
        catalog.create_tenant("greenwood")
        info = catalog.add_account("greenwood", "twilio-primary", "twilio", dict(TWILIO))
        assert info.settings == {"account_sid": "AC0001", "from_number": "+15005550006"}
        assert info.secrets_set == ["auth_token"]
        assert info.key_id == catalog.keyring.primary.key_id
        assert "tw-token-1" not in info.model_dump_json()
        row = raw_account(catalog, "greenwood", "twilio-primary")
        stored = b"".join(bytes(row[c]) for c in ("wrapped_key", "ciphertext"))  # type: ignore[call-overload]
        assert b"tw-token-1" not in stored and "tw-token-1" not in str(row["settings"])

    def test_load_tenant_opens_the_secrets_into_typed_accounts(
        self, catalog: CatalogService
    ) -> None:
        with_twilio(catalog)
        catalog.add_account("greenwood", "rzp", "razorpay", dict(RAZORPAY), priority=1)
        catalog.set_routing("greenwood", {"payment": ["rzp"], "sms": ["twilio-primary"]})
        tenant = catalog.load_tenant("greenwood")
        assert (tenant.id, tenant.name) == ("greenwood", "Greenwood High School")
        twilio = tenant.by_label("twilio-primary")
        assert twilio is not None and twilio.provider == "twilio"
        assert twilio.config.auth_token == SecretStr("tw-token-1")  # type: ignore[attr-defined]
        assert sorted(tenant.secret_values()) == ["rzp-secret-1", "tw-token-1", "whsec-1"]
        assert dict(tenant.routing) == {"payment": ("rzp",), "sms": ("twilio-primary",)}

    def test_invalid_accounts_are_refused_by_field(self, catalog: CatalogService) -> None:
        catalog.create_tenant("greenwood")
        cases = [
            ("twilio-primary", "nosuch", TWILIO, "provider"),
            ("twilio-primary", "twilio", {**TWILIO, "account_sid": "XX1"}, "account_sid"),
            ("twilio-primary", "twilio", {**TWILIO, "auth_token": ""}, "auth_token"),
            ("twilio-primary", "twilio", {**TWILIO, "colour": "red"}, "colour"),
            ("Twilio Primary", "twilio", TWILIO, "label"),
        ]
        for label, provider, fields, field in cases:
            with pytest.raises(CatalogValidationError) as refused:
                catalog.add_account("greenwood", label, provider, dict(fields))
            assert refused.value.field == field
        with pytest.raises(NotFoundError):
            catalog.add_account("nowhere", "twilio-primary", "twilio", dict(TWILIO))
        assert catalog.list_accounts("greenwood") == []

    def test_updates_merge_fields_and_keep_secrets_not_given(self, catalog: CatalogService) -> None:
        with_twilio(catalog)
        before = raw_account(catalog, "greenwood", "twilio-primary")
        info = catalog.update_account(
            "greenwood", "twilio-primary", fields={"from_number": "+15005550007"}
        )
        assert info.settings == {"account_sid": "AC0001", "from_number": "+15005550007"}
        assert info.secrets_set == ["auth_token"]
        account = catalog.load_tenant("greenwood").by_label("twilio-primary")
        assert account is not None
        assert account.config.auth_token.get_secret_value() == "tw-token-1"  # type: ignore[attr-defined]
        catalog.update_account("greenwood", "twilio-primary", fields={"auth_token": "tw-token-2"})
        after = raw_account(catalog, "greenwood", "twilio-primary")
        assert after["ciphertext"] != before["ciphertext"]
        assert catalog.load_tenant("greenwood").secret_values() == ["tw-token-2"]
        with pytest.raises(CatalogValidationError) as refused:
            catalog.update_account("greenwood", "twilio-primary", fields={"account_sid": "bad"})
        assert refused.value.field == "account_sid"
        assert (
            catalog.get_account("greenwood", "twilio-primary").settings["account_sid"] == "AC0001"
        )
        disabled = catalog.update_account("greenwood", "twilio-primary", enabled=False)
        assert (disabled.enabled, disabled.priority) == (False, 0)

    def test_routing_names_existing_labels_and_loses_removed_ones(
        self, catalog: CatalogService
    ) -> None:
        with_twilio(catalog)
        catalog.add_account("greenwood", "twilio-backup", "twilio", dict(TWILIO), priority=10)
        with pytest.raises(CatalogValidationError) as refused:
            catalog.set_routing("greenwood", {"sms": ["twilio-primary", "msg91"]})
        assert refused.value.field == "routing.sms"
        with pytest.raises(CatalogValidationError):
            catalog.set_routing("greenwood", {"sms": ["twilio-primary", "twilio-primary"]})
        routing = {"sms": ["twilio-backup", "twilio-primary"], "voice": ["twilio-primary"]}
        assert catalog.set_routing("greenwood", routing) == routing
        catalog.remove_account("greenwood", "twilio-primary")
        assert catalog.get_routing("greenwood") == {"sms": ["twilio-backup"]}
        assert [a.label for a in catalog.list_accounts("greenwood")] == ["twilio-backup"]
        with pytest.raises(NotFoundError):
            catalog.get_account("greenwood", "twilio-primary")

    def test_a_deleted_tenant_is_gone_and_its_versions_go_on_if_recreated(
        self, catalog: CatalogService
    ) -> None:
        with_twilio(catalog)
        catalog.delete_tenant("greenwood")  # version 3
        assert catalog.list_tenants() == []
        with pytest.raises(NotFoundError):
            catalog.list_accounts("greenwood")
        with pytest.raises(NotFoundError):
            catalog.delete_tenant("greenwood")
        again = catalog.create_tenant("greenwood", "Greenwood again")
        assert (again.version, again.accounts) == (4, 0)
        assert outbox(catalog) == ["greenwood"] * 4

    def test_secrets_moved_to_another_account_do_not_open(self, catalog: CatalogService) -> None:
        with_twilio(catalog)
        catalog.add_account("greenwood", "twilio-backup", "twilio", {**TWILIO, "auth_token": "b"})
        with catalog.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE accounts SET key_id = s.key_id, wrapped_key = s.wrapped_key, "
                    "ciphertext = s.ciphertext FROM (SELECT key_id, wrapped_key, ciphertext "
                    "FROM accounts WHERE label = 'twilio-primary') AS s "
                    "WHERE accounts.label = 'twilio-backup'"
                )
            )
        with pytest.raises(DecryptError):
            catalog.load_tenant("greenwood")

    def test_api_keys_authenticate_until_revoked(self, catalog: CatalogService) -> None:
        assert not catalog.has_admin_key()
        info, token = catalog.create_api_key("ci pipeline", "operator")
        match = re.fullmatch(r"hubk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", token)
        assert match is not None and match.group(1) == info.id
        with catalog.engine.connect() as conn:
            stored = conn.execute(text("SELECT key_hash FROM api_keys")).scalar_one()
        assert stored == hashlib.sha256(match.group(2).encode()).hexdigest()
        assert token not in str(catalog.list_api_keys())
        found = catalog.authenticate(token)
        assert found is not None and (found.name, found.role) == ("ci pipeline", "operator")
        assert found.last_used_at is not None
        assert not catalog.has_admin_key()
        for wrong in [token[:-1] + ("A" if token[-1] != "A" else "B"), "hubk_x", "", "bearer"]:
            assert catalog.authenticate(wrong) is None
        catalog.create_api_key("ops", "admin")
        assert catalog.has_admin_key()
        catalog.revoke_api_key(info.id)
        assert catalog.authenticate(token) is None
        assert [k.revoked for k in catalog.list_api_keys()] == [True, False]
        with pytest.raises(CatalogValidationError):
            catalog.create_api_key("x", "root")  # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            catalog.revoke_api_key("0000000000000000")

    def test_rotation_rewraps_every_account_and_republishes(self, catalog: CatalogService) -> None:
        with_twilio(catalog)
        catalog.create_tenant("riverside")
        catalog.add_account("riverside", "rzp", "razorpay", dict(RAZORPAY))
        catalog.create_tenant("empty")
        old = catalog.keyring.primary.key_id
        before = raw_account(catalog, "greenwood", "twilio-primary")
        report = catalog.rotate_master_key()
        assert report.primary_key_id != old and report.accounts_rewrapped == 2
        assert report.tenants == ["greenwood", "riverside"]
        assert catalog.master_key_usage() == {old: 0, report.primary_key_id: 2}
        after = raw_account(catalog, "greenwood", "twilio-primary")
        assert after["ciphertext"] == before["ciphertext"]
        assert after["wrapped_key"] != before["wrapped_key"]
        assert [catalog.get_tenant(t).version for t in ("greenwood", "riverside", "empty")] == [
            3,
            3,
            1,
        ]
        catalog.retire_master_key(old)
        assert catalog.keyring.key_ids == [report.primary_key_id]
        assert catalog.load_tenant("greenwood").secret_values() == ["tw-token-1"]

    def test_a_key_still_in_use_cannot_be_retired(self, catalog: CatalogService) -> None:
        with_twilio(catalog)
        old = catalog.keyring.primary.key_id
        # Another process (`hub keys rotate`) adds a key: this service re-reads the file.
        new = add_master_key(catalog.settings.master_key_path)
        assert catalog.keyring.primary == new
        with pytest.raises(ConflictError, match="1 account"):
            catalog.retire_master_key(old)
        with pytest.raises(KeyringError, match="primary"):
            catalog.retire_master_key(new.key_id)
        assert catalog.rewrap_all().accounts_rewrapped == 1
        catalog.retire_master_key(old)
        assert catalog.master_key_usage() == {new.key_id: 1}

    def test_importing_a_file_twice_changes_nothing_the_second_time(
        self, catalog: CatalogService, tmp_path: Path
    ) -> None:
        path = tmp_path / "tenants.toml"
        path.write_text(TENANT_FILE)
        first = catalog.import_file(path)
        assert (first.tenants_created, first.accounts_created, first.accounts_unchanged) == (
            1,
            2,
            0,
        )
        assert catalog.get_tenant("oakridge").version == 1
        assert catalog.get_routing("oakridge") == {"sms": ["twilio-primary"]}
        assert catalog.get_account("oakridge", "razorpay-primary").secrets_set == [
            "key_secret",
            "webhook_secret",
        ]
        second = catalog.import_file(path)
        assert (second.tenants_unchanged, second.accounts_unchanged, second.accounts_updated) == (
            1,
            2,
            0,
        )
        assert catalog.get_tenant("oakridge").version == 1
        path.write_text(TENANT_FILE.replace('webhook_secret = "whsec-1"', 'webhook_secret = "w2"'))
        third = catalog.import_file(path)
        assert (third.tenants_updated, third.accounts_updated, third.accounts_unchanged) == (
            1,
            1,
            1,
        )
        assert catalog.get_tenant("oakridge").version == 2
        assert sorted(catalog.load_tenant("oakridge").secret_values()) == [
            "rzp-secret-1",
            "tw-token-1",
            "w2",
        ]
        assert outbox(catalog) == ["oakridge", "oakridge"]
