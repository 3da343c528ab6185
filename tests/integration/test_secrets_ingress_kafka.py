"""The ingress's accepted path on the real broker: a signed delivery whose body quotes the
tenant's secrets is persisted (200), and no log line, answer or audit record holds one.
(Every other path, and every provider, is tests/unit/test_secrets_ingress.py's.)"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient
from secrets_ingress_support import UNSIGNABLE, WEBHOOK_PROVIDERS, run_deliveries
from secrets_support import CANARY_TENANT, canary_directory, leaks, needles

import providers
from core.kafka import admin_config
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topic_admin import apply_catalog
from core.topics import RAW_WEBHOOKS
from hub.local_kafka import LocalBroker

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def settings(broker: LocalBroker) -> Settings:
    settings = Settings(kafka_bootstrap_servers=broker.cfg.bootstrap)
    wanted = [s for s in providers.topics(settings) if s.name == RAW_WEBHOOKS]
    apply_catalog(AdminClient(admin_config(settings)), wanted, settings.topic_partitions)
    return settings


@pytest.fixture(scope="module")
def tenants() -> TenantDirectory:
    return canary_directory()


@pytest.mark.parametrize("provider", [p for p in WEBHOOK_PROVIDERS if p not in UNSIGNABLE])
def test_an_accepted_delivery_leaks_no_secret(
    provider: str, settings: Settings, tenants: TenantDirectory
) -> None:
    tenant = tenants.get(CANARY_TENANT)
    assert tenant is not None
    statuses, texts = run_deliveries(settings, tenants, provider)
    assert statuses[0] == 200, statuses  # persisted: the accepted path ran
    assert leaks(texts, needles(tenant)) == []
