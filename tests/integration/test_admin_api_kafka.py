"""The admin API against the session's real broker: `hub admin serve` with its outbox
relay, and GET /v1/audit through the real core.audit.read_audit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from admin_support import TestClient, audit_record
from confluent_kafka.admin import AdminClient

import providers
from admin_api import create_app
from catalog.service import CatalogService
from core.audit import KafkaAuditSink
from core.kafka import admin_config, read_to_end
from core.ports import free_port
from core.settings import Settings
from core.topic_admin import apply_catalog
from core.topics import AUDIT, CATALOG_TENANTS, catalog_for
from hub.local_kafka import LocalBroker
from schemas.events import AuditOutcome

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(broker: LocalBroker, tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path, kafka_bootstrap_servers=broker.cfg.bootstrap)
    specs = [t for t in catalog_for(s, providers.names()) if t.name in (AUDIT, CATALOG_TENANTS)]
    apply_catalog(AdminClient(admin_config(s)), specs, s.topic_partitions)
    return s


def test_the_audit_route_reads_the_real_audit_topic(settings: Settings) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    sink = KafkaAuditSink(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    for status, outcome in [(201, AuditOutcome.DELIVERED), (503, AuditOutcome.RETRY)]:
        sink.record(audit_record(tenant, "twilio", status, outcome, now))
    sink.close()
    service = CatalogService.open(settings)
    _info, viewer = service.create_api_key("auditor", "viewer")
    # No audit_reader: the app reads through core.audit.read_audit.
    with TestClient(create_app(settings, service)) as client:
        response = client.get(
            f"/v1/audit?tenant={tenant}&status=5xx", headers={"X-API-Key": viewer}
        )
    assert response.status_code == 200, response.text
    records = response.json()["records"]
    assert [(r["header"]["tenant"], r["http_status"], r["outcome"]) for r in records] == [
        (tenant, 503, "retry")
    ]


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, str]]:
    """`hub admin serve` as an operator starts it: (its URL, the first admin key it printed)."""
    port = free_port()
    env = {
        **os.environ,
        "HUB_HOME": str(settings.home),
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "HUB_ADMIN_PORT": str(port),
        "HUB_CATALOG_RELAY_INTERVAL_SECONDS": "0.2",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "admin", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        token = lines[1].strip()
        assert lines[0].startswith("First admin API key") and token.startswith("hubk_"), lines
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        yield url, token
    finally:
        process.terminate()
        process.wait(20)


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("hub admin serve did not come up in 30 s")


def test_hub_admin_serve_publishes_what_the_api_changes(
    settings: Settings, served: tuple[str, str]
) -> None:
    url, token = served
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{url}/v1/tenants",
        json={"id": tenant, "name": "Relay School"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 20
    keys: list[bytes | None] = []
    while time.monotonic() < deadline and tenant.encode() not in keys:
        keys = [m.key() for m in read_to_end(settings, CATALOG_TENANTS)]
        time.sleep(0.2)
    assert tenant.encode() in keys
