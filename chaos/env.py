"""A throwaway hub for fault scenarios: its own broker (or three), PostgreSQL, every component.

Everything runs the way `hub run` runs it (HubStack, the same processes and
settings), on free ports, with its data in a temporary directory, and is torn
down whatever happens. Faults come from outside, as they do in production: a
SIGKILL to a component's process group, a broker stopped and started, a
provider simulator told to fail, stall or hold its answer.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from catalog.tenant_file import demo_tenant_config, read_tenant_file
from core.kafka import admin_config
from core.ports import free_port
from core.settings import Settings
from core.topic_admin import apply_catalog
from hub import erp
from hub.local_cluster import ClusterConfig, LocalCluster
from hub.local_kafka import BrokerConfig, LocalBroker
from hub.local_postgres import LocalPostgres, PostgresConfig
from hub.stack import HubStack, with_simulators
from hub.supervisor import Event, RestartPolicy
from hub.tenants_seed import payment_routing, seed_catalog
from providers import topics as topic_catalog
from simulators.client import SimulatorClient

TENANTS = (
    ("greenwood", "Greenwood High School"),
    ("riverside", "Riverside Public School"),
    ("sunrise", "Sunrise Academy"),  # seed 004: Cashfree first, Razorpay behind it
)

# A fault injector kills on purpose, over and over: restart at once, never give up.
CHAOS_RESTARTS = RestartPolicy(
    initial_delay=0.2, factor=1.5, max_delay=2.0, stable_after=20.0, max_rapid_crashes=10_000
)


def chaos_settings(home: Path, bootstrap: str, **overrides: Any) -> Settings:
    """The hub's defaults, with waits scaled to minutes instead of hours."""
    base: dict[str, Any] = {
        "home": home,
        "kafka_bootstrap_servers": bootstrap,
        "ingress_port": free_port(),
        "simulator_port": free_port(),
        "cdc_connect_port": free_port(),
        # The seed's 1-2-4-8 s, scaled down; tiers long enough together to outlast a
        # two-minute provider outage (5+10+20+40+80 s).
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 1.0,
        "retry_tiers": {"default": [5.0, 10.0, 20.0, 40.0, 80.0]},
        "http_connect_timeout": 2.0,
        "http_read_timeout": 5.0,
        # The simulator's activity feed is consistent at once (SendGrid's is not).
        "lookup_settle_seconds": {"sendgrid": 0.5},
        "ingress_produce_timeout_ms": 3000,
        # Every fault's resends come from 127.0.0.1 at once: the ingress's rate limits
        # are tested on their own (tests/integration/test_ingress_limits_kafka.py).
        "ingress_address_rate": 0.0,
        "ingress_tenant_rate": 0.0,
        "log_level": "INFO",
    }
    return with_simulators(Settings(**{**base, **overrides}))


@dataclass
class Environment:
    settings: Settings
    stack: HubStack
    sim: SimulatorClient
    broker: LocalBroker | None = None
    cluster: LocalCluster | None = None
    postgres: LocalPostgres | None = None
    events: list[Event] = field(default_factory=list)

    def kill(self, component: str) -> None:
        self.stack.supervisor.kill(component)

    def restarts(self, component: str) -> int:
        return self.stack.supervisor.services[component].restarts

    def wait_running(self, component: str, timeout: float = 60.0) -> None:
        service = self.stack.supervisor.services[component]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.alive() and service.ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{component} did not come back within {timeout:.0f}s")


def _supervise(stack: HubStack, stop: threading.Event) -> None:
    while not stop.wait(0.2):
        stack.restart_crashed()


LOGS = Path(__file__).parent / "results" / "logs"


def _keep_logs(workdir: Path, name: str) -> None:
    """Every component's and broker's log, kept after the hub is gone (for a failure)."""
    target = LOGS / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    for log in [*workdir.glob("logs/*.log"), *workdir.glob("kafka/**/server.log")]:
        shutil.copy(
            log,
            target / log.name
            if log.parent.name == "logs"
            else target / (f"{log.parent.name}-{log.name}"),
        )


@contextmanager
def environment(
    name: str = "hub",
    *,
    nodes: int = 1,
    cdc: bool = False,
    overrides: dict[str, Any] | None = None,
) -> Iterator[Environment]:
    workdir = Path(tempfile.mkdtemp(prefix="hub-chaos-"))
    workdir.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, True)
        cleanup.callback(_keep_logs, workdir, name)
        broker, cluster, bootstrap = _start_kafka(workdir, nodes, cleanup)
        # The fault suite reads secrets back from this file (to sign webhooks);
        # the hub itself gets tenants from the catalog only.
        (workdir / "home").mkdir()
        tenants_file = workdir / "home" / "tenants.toml"
        tenants_file.write_text(
            "\n".join(demo_tenant_config(t, n, payment_routing(t)) for t, n in TENANTS)
        )
        extra = dict(overrides or {})
        if nodes > 1:
            extra["topic_replication_factor"] = 3
        postgres = _start_postgres(workdir, cleanup) if cdc else None
        if postgres is not None:
            extra["postgres_dsn"] = postgres.cfg.dsn
        settings = chaos_settings(workdir / "home", bootstrap, **extra)
        apply_catalog(
            AdminClient(admin_config(settings)),
            topic_catalog(settings),
            settings.topic_partitions,
            settings.topic_replication_factor,
        )
        seed_catalog(settings, read_tenant_file(tenants_file))
        events: list[Event] = []
        stack = HubStack(
            settings, workdir / "logs", cdc=cdc, policy=CHAOS_RESTARTS, on_event=events.append
        )
        sim = SimulatorClient(settings.simulator_url)
        env = Environment(settings, stack, sim, broker, cluster, postgres, events)
        env.stack.start(timeout=180)
        cleanup.callback(env.stack.stop)
        stop = threading.Event()
        thread = threading.Thread(target=_supervise, args=(env.stack, stop), daemon=True)
        thread.start()
        cleanup.callback(thread.join, 5)
        cleanup.callback(stop.set)
        cleanup.callback(env.sim.close)
        yield env


def _start_kafka(
    workdir: Path, nodes: int, cleanup: ExitStack
) -> tuple[LocalBroker | None, LocalCluster | None, str]:
    cache = Settings().home
    if nodes == 1:
        broker = LocalBroker(
            BrokerConfig(
                home=workdir / "kafka",
                port=free_port(),
                controller_port=free_port(),
                heap="768m",
                cache_home=cache,
            )
        )
        cleanup.callback(broker.down)
        broker.up(timeout=120)
        return broker, None, broker.cfg.bootstrap
    cluster = LocalCluster(ClusterConfig(home=workdir / "kafka", nodes=nodes, cache_home=cache))
    cleanup.callback(cluster.down)
    cluster.up(timeout=180)
    return None, cluster, cluster.bootstrap


def _start_postgres(workdir: Path, cleanup: ExitStack) -> LocalPostgres:
    postgres = LocalPostgres(PostgresConfig(root=workdir / "pg", port=free_port()))
    cleanup.callback(postgres.destroy)
    postgres.up()
    erp.install(erp.engine_for(postgres.cfg.dsn))
    return postgres
