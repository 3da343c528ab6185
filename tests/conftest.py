"""Fixtures every test shares: one real Kafka broker per session, one running hub.

The broker is started by the same code as `hub kafka up` (Maven-resolved jars,
KRaft), on free ports, with its data in a temporary directory; the hub stack
is started by the same code as `hub run`. Tests that stop the broker
(marker `broker_restart`) run after every other test.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from catalog.tenant_file import demo_tenant_config, read_tenant_file
from core.kafka import admin_config
from core.ports import free_port
from core.settings import Settings
from core.topic_admin import apply_catalog
from hub import erp
from hub.local_kafka import BrokerConfig, LocalBroker
from hub.local_postgres import LocalPostgres, PostgresConfig
from hub.stack import HubStack, with_simulators
from hub.tenants_seed import seed_catalog
from providers import topics as topic_catalog
from simulators.client import SimulatorClient

# Helpers live next to their tests (tests/unit/*_support.py) and are imported by plain
# name; integration tests share some, and a dependency's own top-level `tests` package
# (apimatic-core ships one) must never shadow them.
sys.path.insert(0, str(Path(__file__).parent / "unit"))

TENANT = "greenwood"
# Seed 004's school with two gateways (tests/integration/test_gateways_flow.py).
DUAL_TENANT = "sunrise"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Stable sort: everything else first, in file order, then the broker restarts.
    items.sort(key=lambda item: item.get_closest_marker("broker_restart") is not None)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    cfg = BrokerConfig(
        home=tmp_path_factory.mktemp("kafka-home"),
        port=free_port(),
        controller_port=free_port(),
        heap="512m",
        cache_home=Settings().home,
        # The SASL_SSL listener beside PLAINTEXT (tests/integration/test_kafka_security.py):
        # a throwaway CA and one SCRAM user, milliseconds at start.
        sasl_port=free_port(),
    )
    instance = LocalBroker(cfg)
    try:
        instance.up(timeout=120)
        yield instance
    finally:
        # Whatever failed (even the start itself), no broker outlives the run.
        instance.down(kill=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    # Not under pytest's tmp dir: the server runs as the postgres user when the
    # suite runs as root, and /tmp/pytest-of-root is closed to it.
    root = Path(tempfile.mkdtemp(prefix="hub-test-pg-"))
    root.chmod(0o755)
    instance = LocalPostgres(PostgresConfig(root=root, port=free_port()))
    try:
        instance.up()
        erp.install(erp.engine_for(instance.cfg.dsn))
        yield instance
    finally:
        instance.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tenants_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tenants") / "tenants.toml"
    path.write_text(
        demo_tenant_config(TENANT, "Greenwood High School")
        + "\n"
        + demo_tenant_config("riverside", "Riverside Public School")
        + "\n"
        # Seed 004's dual gateway: Cashfree first, Razorpay behind it.
        + demo_tenant_config(
            DUAL_TENANT, "Sunrise Academy", ("cashfree-primary", "razorpay-primary")
        )
    )
    return path


@pytest.fixture(scope="session")
def hub_settings(
    broker: LocalBroker,
    postgres: LocalPostgres,
    tenants_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    home = tmp_path_factory.mktemp("hub-home")
    # Tests read the secrets back from this file (tests/support.py); the hub
    # itself only ever sees them through the catalog.
    shutil.copy(tenants_file, home / "tenants.toml")
    settings = Settings(
        home=home,
        kafka_bootstrap_servers=broker.cfg.bootstrap,
        ingress_port=free_port(),
        simulator_port=free_port(),
        # The seed's 1-2-4-8 s schedule, scaled down so retry tests take milliseconds.
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        ingress_produce_timeout_ms=3000,
        # Every simulator and test posts from 127.0.0.1, bulk flows in bursts: the rate
        # limits stay on (their code runs) but far above anything a test sends.
        ingress_address_rate=100_000.0,
        ingress_address_burst=100_000,
        ingress_tenant_rate=100_000.0,
        ingress_tenant_burst=100_000,
        # A crashed connector's in-doubt calls are looked up after a whole HTTP
        # timeout (connect + read): keep it seconds, not the production 20 s.
        http_connect_timeout=2.0,
        http_read_timeout=5.0,
        # The simulator's activity feed is consistent at once (SendGrid's is not).
        lookup_settle_seconds={"sendgrid": 0.5},
        # Retry tiers of 1 s and 2 s instead of 1 min, 10 min, 1 h.
        retry_tiers={"default": [1.0, 2.0]},
        dlq_alert_threshold=3,
        dlq_alert_window_seconds=60.0,
        dlq_monitor_interval_seconds=1.0,
        postgres_dsn=postgres.cfg.dsn,
        cdc_connect_port=free_port(),
        # A payment whose webhook has not come is asked about after seconds, not 15 min
        # (long enough that the chaos flows' webhooks, delayed by kills, come first).
        payment_status_poll_seconds=30.0,
        # An open breaker probes again after seconds (production: 60 s); a message
        # accepted without a final receipt fails over after 2 min (production: 10 min).
        breaker_open_seconds=3.0,
        breaker_probe_lease_seconds=3.0,
        receipt_deadline_seconds=120.0,
    )
    settings = with_simulators(settings)
    apply_catalog(
        AdminClient(admin_config(settings)),
        topic_catalog(settings),
        settings.topic_partitions,
        settings.topic_replication_factor,
    )
    seed_catalog(settings, read_tenant_file(tenants_file))
    return settings


@pytest.fixture(scope="session")
def stack(hub_settings: Settings) -> Iterator[HubStack]:
    hub = HubStack(hub_settings, hub_settings.home / "logs")
    hub.start(timeout=180)  # stops what it started if it fails
    stop = threading.Event()

    def supervise() -> None:
        # As `hub run` does: a component that dies (e.g. while the broker is
        # down) is restarted, like a process manager would in production.
        while not stop.wait(1.0):
            hub.restart_crashed()

    thread = threading.Thread(target=supervise, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        stop.set()
        thread.join(5)
        hub.stop()


@pytest.fixture
def sim(hub_settings: Settings, stack: HubStack) -> Iterator[SimulatorClient]:
    with SimulatorClient(hub_settings.simulator_url) as client:
        yield client
