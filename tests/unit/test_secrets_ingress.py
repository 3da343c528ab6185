"""No secret of a loaded tenant in the webhook ingress's log lines or audit records.

Every provider with webhooks gets deliveries whose body quotes the tenant's secrets
(raw, in a Basic header's base64, URL-encoded in the query), signed right, signed wrong
(the "signature" a careless sender fills with the secret itself) and unsigned. The broker
is unreachable, so a delivery that passes its checks takes the "could not persist" path
(503), which logs the producer's error; the accepted path on a real broker is
tests/integration/test_secrets_ingress_kafka.py's.
"""

from __future__ import annotations

import pytest
from secrets_ingress_support import UNSIGNABLE, WEBHOOK_PROVIDERS, run_deliveries
from secrets_support import CANARY_TENANT, canary_directory, leaks, needles

from core.ports import free_port
from core.settings import Settings
from core.tenants import TenantDirectory


def unreachable_settings() -> Settings:
    return Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        ingress_produce_timeout_ms=300,
    )


@pytest.fixture(scope="module")
def tenants() -> TenantDirectory:
    return canary_directory()


@pytest.mark.parametrize("provider", WEBHOOK_PROVIDERS)
def test_no_secret_leaks_from_any_delivery(provider: str, tenants: TenantDirectory) -> None:
    tenant = tenants.get(CANARY_TENANT)
    assert tenant is not None
    statuses, texts = run_deliveries(unreachable_settings(), tenants, provider)
    # The signed one got past every check and failed to persist (the broker is away).
    assert (statuses[0] == 503) is (provider not in UNSIGNABLE), statuses
    assert leaks(texts, needles(tenant)) == []
