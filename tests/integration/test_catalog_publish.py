"""The catalog's outbox relay against the session's real broker: one snapshot per changed
tenant, a tombstone per deleted one, and never an older snapshot after a newer one."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_cases import RAZORPAY, TWILIO, fresh_database
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import update
from typer.testing import CliRunner

import providers
from catalog.service import CatalogService
from catalog.snapshot import VERSION_HEADER, entry_to_tenant
from catalog.tables import RelayLockRow
from core.kafka import admin_config, high_watermarks, producer_config, read_to_end
from core.settings import Settings
from core.topic_admin import apply_catalog
from core.topics import CATALOG_TENANTS
from hub.cli import app
from hub.local_kafka import LocalBroker
from hub.local_postgres import LocalPostgres
from schemas.codec import SingleObjectCodec
from schemas.events import TenantCatalogEntry, decode_as

pytestmark = pytest.mark.kafka

CODEC = SingleObjectCodec()


@pytest.fixture(scope="module")
def postgres_url(postgres: LocalPostgres) -> Iterator[str]:
    with fresh_database(postgres.cfg.dsn) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, broker: LocalBroker, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    s = Settings(home=tmp_path, kafka_bootstrap_servers=broker.cfg.bootstrap, catalog_url=url)
    specs = [t for t in providers.topics(s) if t.name == CATALOG_TENANTS]
    apply_catalog(AdminClient(admin_config(s)), specs, s.topic_partitions, 1)
    return s


@pytest.fixture
def catalog(settings: Settings) -> Iterator[CatalogService]:
    service = CatalogService.open(settings)
    yield service
    service.close()


def producer(settings: Settings) -> Producer:
    return Producer(producer_config(settings, "catalog-relay-test"))


def offsets(settings: Settings) -> dict[int, int]:
    return {p: high for p, (_low, high) in high_watermarks(settings, CATALOG_TENANTS).items()}


def records(settings: Settings, start: dict[int, int], keys: set[str]) -> list[Message]:
    found = read_to_end(settings, CATALOG_TENANTS, start=start, timeout=30)
    return [m for m in found if key_of(m) in keys]


def key_of(msg: Message) -> str:
    key = msg.key()
    return key.decode() if isinstance(key, bytes) else str(key)


def version_of(msg: Message) -> int:
    value = dict(msg.headers() or [])[VERSION_HEADER]
    assert isinstance(value, bytes)
    return int(value)


def test_one_snapshot_per_changed_tenant_and_a_tombstone_per_deleted_one(
    settings: Settings, catalog: CatalogService
) -> None:
    suffix = secrets.token_hex(3)
    changed, untouched, deleted = (f"{n}-{suffix}" for n in ("changed", "untouched", "deleted"))
    for tenant in (changed, untouched, deleted):
        catalog.create_tenant(tenant, f"School {tenant}")
        catalog.add_account(tenant, "twilio-primary", "twilio", dict(TWILIO))
    assert catalog.publish_pending(producer(settings), CODEC) == 3

    start = offsets(settings)
    catalog.add_account(changed, "rzp", "razorpay", dict(RAZORPAY), priority=1)
    catalog.set_routing(changed, {"payment": ["rzp"], "sms": ["twilio-primary"]})
    catalog.update_tenant(changed, name="Renamed School")
    catalog.delete_tenant(deleted)
    assert catalog.publish_pending(producer(settings), CODEC) == 2

    got = {key_of(m): m for m in records(settings, start, {changed, untouched, deleted})}
    assert sorted(got) == sorted([changed, deleted])
    assert got[deleted].value() is None
    assert version_of(got[deleted]) == 3
    entry = decode_as(CODEC, got[changed].value(), TenantCatalogEntry)
    assert (entry.tenant_id, entry.name, entry.version) == (changed, "Renamed School", 5)
    assert version_of(got[changed]) == 5
    assert [(a.label, a.provider, a.priority) for a in entry.accounts] == [
        ("twilio-primary", "twilio", 0),
        ("rzp", "razorpay", 1),
    ]
    assert entry.accounts[0].settings == {"account_sid": "AC0001", "from_number": "+15005550006"}
    assert entry.accounts[0].sealed is not None
    assert b"tw-token-1" not in (got[changed].value() or b"")
    assert entry.routing == {"payment": ["rzp"], "sms": ["twilio-primary"]}
    opened = entry_to_tenant(entry, catalog.keyring)
    assert sorted(opened.secret_values()) == ["rzp-secret-1", "tw-token-1", "whsec-1"]
    assert catalog.publish_pending(producer(settings), CODEC) == 0


def test_a_relay_waits_while_another_holds_the_lock(
    settings: Settings, catalog: CatalogService
) -> None:
    tenant = f"locked-{secrets.token_hex(3)}"
    catalog.create_tenant(tenant)
    start = offsets(settings)
    held, release = threading.Event(), threading.Event()
    published: list[int] = []

    def other_relay() -> None:
        with catalog.write() as session:
            session.execute(update(RelayLockRow).values(held_at=None))
            held.set()
            release.wait(20)

    holder = threading.Thread(target=other_relay)
    holder.start()
    assert held.wait(10)
    waiting = threading.Thread(
        target=lambda: published.append(catalog.publish_pending(producer(settings), CODEC))
    )
    waiting.start()
    waiting.join(1.5)
    assert waiting.is_alive() and records(settings, start, {tenant}) == []
    release.set()
    holder.join(10)
    waiting.join(30)
    assert published == [1]
    assert [version_of(m) for m in records(settings, start, {tenant})] == [1]


def test_racing_relays_never_publish_an_older_state_last(
    settings: Settings, catalog: CatalogService
) -> None:
    tenant = f"race-{secrets.token_hex(3)}"
    catalog.create_tenant(tenant)
    start = offsets(settings)
    relays = [CatalogService.open(settings) for _ in range(2)]
    done = threading.Event()
    errors: list[BaseException] = []

    def relay(service: CatalogService) -> None:
        p = producer(settings)
        try:
            while not done.is_set():
                service.publish_pending(p, CODEC)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=relay, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    for i in range(40):
        catalog.update_tenant(tenant, name=f"name {i}")
    done.set()
    for t in threads:
        t.join(30)
    catalog.publish_pending(producer(settings), CODEC)
    assert errors == []

    versions = [version_of(m) for m in records(settings, start, {tenant})]
    assert versions[-1] == 41
    assert versions == sorted(versions)  # in the partition's order: never a step back
    last = decode_as(CODEC, records(settings, start, {tenant})[-1].value(), TenantCatalogEntry)
    assert (last.version, last.name) == (41, "name 39")
    for service in relays:
        service.close()


def test_the_cli_publishes_its_change_when_kafka_is_there(
    broker: LocalBroker, tmp_path: Path
) -> None:
    env = {"HUB_HOME": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": broker.cfg.bootstrap}
    s = Settings(home=tmp_path, kafka_bootstrap_servers=broker.cfg.bootstrap)
    specs = [t for t in providers.topics(s) if t.name == CATALOG_TENANTS]
    apply_catalog(AdminClient(admin_config(s)), specs, s.topic_partitions, 1)
    tenant = f"cli-{secrets.token_hex(3)}"
    start = offsets(s)
    result = CliRunner().invoke(app, ["tenants", "create", tenant, "--name", "CLI School"], env=env)
    assert result.exit_code == 0, result.output
    assert f"published 1 tenant snapshot(s) to {CATALOG_TENANTS}" in result.output
    [msg] = records(s, start, {tenant})
    entry = decode_as(CODEC, msg.value(), TenantCatalogEntry)
    assert (entry.tenant_id, entry.name, entry.version) == (tenant, "CLI School", 1)
