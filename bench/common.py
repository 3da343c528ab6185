"""What the benchmarks share: a throwaway broker, settings, percentiles, a load generator."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from confluent_kafka.admin import AdminClient

from catalog.tenant_file import demo_tenant_config, read_tenant_file
from core.kafka import admin_config
from core.ports import free_port
from core.settings import Settings
from core.topic_admin import apply_catalog
from hub.local_kafka import BrokerConfig, LocalBroker
from hub.stack import with_simulators
from hub.tenants_seed import seed_catalog
from providers import topics as topic_catalog


@contextmanager
def bench_environment(workdir: Path) -> Iterator[Settings]:
    """A fresh broker on free ports, topics applied, demo tenants; torn down after."""
    broker = LocalBroker(
        BrokerConfig(
            home=workdir / "kafka",
            port=free_port(),
            controller_port=free_port(),
            heap="1g",
            cache_home=Settings().home,
        )
    )
    broker.up(timeout=120)
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    tenants = workdir / "home" / "tenants.toml"  # bench signs webhooks with these secrets
    tenants.write_text(demo_tenant_config())
    settings = with_simulators(
        Settings(
            home=workdir / "home",
            kafka_bootstrap_servers=broker.cfg.bootstrap,
            ingress_port=free_port(),
            simulator_port=free_port(),
            log_level="WARNING",
            # The load comes from one address to one tenant: limits far above it (still on).
            ingress_address_rate=1e9,
            ingress_address_burst=10**9,
            ingress_tenant_rate=1e9,
            ingress_tenant_burst=10**9,
        )
    )
    apply_catalog(
        AdminClient(admin_config(settings)),
        topic_catalog(settings),
        settings.topic_partitions,
        settings.topic_replication_factor,
    )
    seed_catalog(settings, read_tenant_file(tenants))
    try:
        yield settings
    finally:
        broker.down()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms, "
        f"mean {statistics.fmean(values):.1f} ms (n={len(values)})"
    )


async def _load(
    url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> tuple[float, int]:
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    failures = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while not queue.empty():
            body, headers = queue.get_nowait()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                failures += response.status != 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started, failures


def post_load(
    url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> tuple[float, int]:
    """Send every request with `concurrency` connections; (seconds, non-200 answers)."""
    return asyncio.run(_load(url, requests, concurrency))
