"""Tenants into the catalog and out to every component: what `hub run`, the test
suite, the fault suite and the benchmarks do before the components start."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import Producer

from catalog.service import CatalogService
from catalog.tenant_file import demo_tenant_config, parse_tenants, read_tenant_file
from core.kafka import producer_config
from core.settings import Settings
from core.tenants import Tenant
from schemas.codec import make_codec

DEMO_TENANTS = (
    ("greenwood", "Greenwood High School"),
    ("riverside", "Riverside Public School"),
    ("sunrise", "Sunrise Academy"),
)
# Seed 004's dual gateway: Sunrise collects through Cashfree, with Razorpay behind it.
DUAL_GATEWAY_TENANT = "sunrise"
DUAL_GATEWAY_ROUTING = ("cashfree-primary", "razorpay-primary")


def publish_catalog(service: CatalogService, settings: Settings) -> int:
    """Publish every change waiting in the catalog's outbox; the number of tenants published."""
    # librdkafka's own warnings (a coordinator still loading on a fresh broker) retry
    # by themselves; a real failure surfaces as publish_pending's PublishError.
    producer = Producer(producer_config(settings, "catalog-relay", log_level=3))
    try:
        return service.publish_pending(producer, make_codec(settings.schema_registry_url))
    finally:
        producer.flush(10)


def seed_catalog(settings: Settings, tenants: Sequence[Tenant]) -> CatalogService:
    service = CatalogService.open(settings)
    service.import_tenants(list(tenants))
    publish_catalog(service, settings)
    return service


def demo_tenants(names: Sequence[tuple[str, str]] = DEMO_TENANTS) -> list[Tenant]:
    """Demo tenants with fresh random secrets (they only ever meet the simulators)."""
    raw = "\n".join(
        demo_tenant_config(tenant_id, name, payment_routing(tenant_id)) for tenant_id, name in names
    )
    return list(parse_tenants(tomllib.loads(raw)))


def payment_routing(tenant_id: str) -> tuple[str, ...]:
    return DUAL_GATEWAY_ROUTING if tenant_id == DUAL_GATEWAY_TENANT else ("razorpay-primary",)


def seed_file(settings: Settings, path: Path) -> CatalogService:
    return seed_catalog(settings, read_tenant_file(path))
