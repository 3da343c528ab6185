"""A component's view of the catalog follows hub.catalog.tenants.v1 on the real broker:
a new account, a rotated secret, a rotated master key and a deleted tenant take effect
within seconds, without a restart; a late older snapshot changes nothing."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

import providers
from catalog.service import CatalogService
from catalog.snapshot import VERSION_HEADER
from catalog.view import CatalogView
from core.kafka import admin_config, producer_config, read_to_end
from core.masking import mask_text
from core.settings import Settings
from core.tenants import MissingCredentialsError
from core.topic_admin import apply_catalog
from core.topics import CATALOG_TENANTS
from hub.local_kafka import LocalBroker
from providers.twilio import TwilioAccount
from schemas.codec import SingleObjectCodec

pytestmark = pytest.mark.kafka

CODEC = SingleObjectCodec()
TWILIO = {"account_sid": "AC0001", "from_number": "+15005550006"}


@pytest.fixture
def settings(broker: LocalBroker, tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path, kafka_bootstrap_servers=broker.cfg.bootstrap)
    specs = [t for t in providers.topics(s) if t.name == CATALOG_TENANTS]
    apply_catalog(AdminClient(admin_config(s)), specs, s.topic_partitions, 1)
    return s


@pytest.fixture
def catalog(settings: Settings) -> Iterator[CatalogService]:
    service = CatalogService.open(settings)
    yield service
    service.close()


def publish(catalog: CatalogService, settings: Settings) -> None:
    producer = Producer(producer_config(settings, "catalog-view-test"))
    assert catalog.publish_pending(producer, CODEC) >= 1


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the view did not follow within the timeout"
        time.sleep(0.05)


def token(view: CatalogView, tenant: str, label: str | None = None) -> str | None:
    """The account's auth token as the view has it now; None while it has no such account
    (a poll's answer, never an exception: the view follows the topic in its own thread)."""
    known = view.get(tenant)
    try:
        account = known.account("twilio", TwilioAccount, label) if known else None
    except MissingCredentialsError:
        return None
    return account.auth_token.get_secret_value() if account else None


def test_the_view_follows_accounts_secrets_master_keys_and_deletions(
    settings: Settings, catalog: CatalogService
) -> None:
    tenant = f"view-{secrets.token_hex(3)}"
    first, second, backup = (f"tw-{secrets.token_hex(8)}" for _ in range(3))
    catalog.create_tenant(tenant, "View School")
    catalog.add_account(tenant, "twilio-primary", "twilio", {**TWILIO, "auth_token": first})
    publish(catalog, settings)

    view = CatalogView.start(settings, timeout=30)
    try:
        assert token(view, tenant) == first
        assert mask_text(f"token={first}") == "token=***"

        catalog.add_account(
            tenant, "twilio-backup", "twilio", {**TWILIO, "auth_token": backup}, priority=10
        )
        publish(catalog, settings)
        eventually(lambda: token(view, tenant, "twilio-backup") == backup)
        assert token(view, tenant) == first  # the primary is still the primary

        catalog.update_account(tenant, "twilio-primary", fields={"auth_token": second})
        publish(catalog, settings)
        eventually(lambda: token(view, tenant) == second)

        # A new master key: the view, started before it existed, re-reads the key file.
        report = catalog.rotate_master_key()
        assert report.accounts_rewrapped >= 2
        publish(catalog, settings)
        eventually(lambda: view._versions.get(tenant) == catalog.get_tenant(tenant).version)
        assert token(view, tenant) == second
        assert report.primary_key_id in view.keyring.key_ids

        catalog.delete_tenant(tenant)
        publish(catalog, settings)
        eventually(lambda: view.get(tenant) is None)
    finally:
        view.close()


def test_a_late_older_snapshot_does_not_bring_a_deleted_tenant_back(
    settings: Settings, catalog: CatalogService
) -> None:
    tenant = f"late-{secrets.token_hex(3)}"
    catalog.create_tenant(tenant, "Late School")
    catalog.add_account(tenant, "twilio-primary", "twilio", {**TWILIO, "auth_token": "tw-late-1"})
    publish(catalog, settings)
    snapshot = [
        m for m in read_to_end(settings, CATALOG_TENANTS, timeout=30) if m.key() == tenant.encode()
    ][-1]
    catalog.delete_tenant(tenant)
    publish(catalog, settings)
    # A relay that crashed before deleting its outbox rows republishes the old snapshot.
    producer = Producer(producer_config(settings, "catalog-view-test"))
    producer.produce(
        CATALOG_TENANTS, snapshot.value(), key=tenant, headers=list(snapshot.headers() or [])
    )
    producer.flush(10)

    view = CatalogView.start(settings, timeout=30)
    try:
        assert view.get(tenant) is None
        versions = dict(snapshot.headers() or [])
        assert int(versions[VERSION_HEADER]) < view._versions[tenant]
    finally:
        view.close()
