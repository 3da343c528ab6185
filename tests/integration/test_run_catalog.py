"""`hub run`'s catalog step on a fresh HUB_HOME: the demo tenants seeded, a first admin key
printed once (and only its hash kept), everything published for the components."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

import providers
from catalog.service import CatalogService
from core.kafka import admin_config, read_to_end
from core.settings import Settings
from core.topic_admin import apply_catalog
from core.topics import CATALOG_TENANTS
from hub.cli import run_cmd
from hub.local_kafka import LocalBroker
from hub.tenants_seed import demo_tenants

pytestmark = pytest.mark.kafka


def test_prepare_catalog_seeds_once_and_prints_the_first_admin_key_once(
    broker: LocalBroker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The session's running hub follows the same catalog topic: demo tenants of their own
    # names here, so the hub's greenwood and riverside are never overwritten.
    suffix = secrets.token_hex(3)
    names = ((f"greenwood-{suffix}", "Greenwood"), (f"riverside-{suffix}", "Riverside"))
    monkeypatch.setattr(run_cmd, "DEMO_TENANTS", names)
    monkeypatch.setattr(run_cmd, "demo_tenants", lambda: demo_tenants(names))
    s = Settings(home=tmp_path, kafka_bootstrap_servers=broker.cfg.bootstrap)
    specs = [t for t in providers.topics(s) if t.name == CATALOG_TENANTS]
    apply_catalog(AdminClient(admin_config(s)), specs, s.topic_partitions, 1)

    run_cmd.prepare_catalog(s)
    first = capsys.readouterr()
    assert f"demo tenants greenwood-{suffix}, riverside-{suffix} seeded" in first.out
    assert "catalog published (2 tenant snapshot(s))" in first.out
    [token] = [w for w in (first.out + first.err).split() if w.startswith("hubk_")]

    service = CatalogService.open(s)
    try:
        assert [t.id for t in service.list_tenants()] == [n for n, _ in names]
        assert service.authenticate(token) is not None
        assert token not in (tmp_path / "catalog.db").read_bytes().decode("latin-1")
        sealed = service.load_tenant(names[0][0]).secret_values()
    finally:
        service.close()
    published = [m.value() or b"" for m in read_to_end(s, CATALOG_TENANTS, timeout=30)]
    assert published, "the snapshots are on the topic"
    for secret in sealed:  # sealed on the topic, never in the clear
        assert all(secret.encode() not in value for value in published)

    run_cmd.prepare_catalog(s)  # the second `hub run`
    second = capsys.readouterr()
    assert "seeded" not in second.out
    assert "hubk_" not in second.out + second.err
