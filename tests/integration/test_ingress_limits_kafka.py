"""Rate limits on the real broker: a noisy tenant gets 429 while another one's payment lands.

Its own ingress (TestClient, lifespan on: a real producer) with a low tenant limit;
the stack's ingress keeps limits far above any test's load (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
import warnings

import pytest
from confluent_kafka.admin import AdminClient

import providers
from core.kafka import admin_config
from core.observe import TopicWatcher
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from core.topic_admin import apply_catalog
from core.topics import RAW_WEBHOOKS
from hub.local_kafka import LocalBroker
from schemas.events import RawWebhook
from webhook_ingress.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; httpx (the project's) still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.kafka

SECRET = "whsec-limits-0123456789"


@pytest.fixture(scope="module")
def settings(broker: LocalBroker) -> Settings:
    settings = Settings(
        kafka_bootstrap_servers=broker.cfg.bootstrap,
        ingress_tenant_rate=0.1,  # a token every 10 s: none comes back during the test
        ingress_tenant_burst=3,
        ingress_address_rate=0,  # both tenants post from 127.0.0.1 here: off
    )
    wanted = [s for s in providers.topics(settings) if s.name == RAW_WEBHOOKS]
    apply_catalog(AdminClient(admin_config(settings)), wanted, settings.topic_partitions)
    return settings


def directory(*tenants: str) -> TenantDirectory:
    account = providers.get("razorpay").account_model(
        key_id="rzp_test_1", key_secret="rzp-key-secret", webhook_secret=SECRET
    )
    razorpay = ProviderAccount(label="razorpay-main", provider="razorpay", config=account)
    return TenantDirectory({t: Tenant(id=t, accounts=(razorpay,)) for t in tenants})


def signed(payment: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "entity": "event",
            "event": "payment.captured",
            "contains": ["payment"],
            "payload": {"payment": {"entity": {"id": payment, "order_id": "order_L"}}},
            "created_at": 1767225600,
        }
    ).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Razorpay-Signature": signature}


def test_a_noisy_tenant_gets_429_while_another_tenants_webhook_is_accepted(
    settings: Settings,
) -> None:
    noisy, quiet = f"noisy-{uuid.uuid4().hex[:8]}", f"quiet-{uuid.uuid4().hex[:8]}"
    with (
        TopicWatcher(settings, [RAW_WEBHOOKS]) as watch,
        TestClient(create_app(settings, directory(noisy, quiet))) as client,
    ):
        answers = []
        for n in range(5):
            body, headers = signed(f"pay_noisy{n}")
            answers.append(
                client.post(f"/webhooks/razorpay/{noisy}", content=body, headers=headers)
            )
        body, headers = signed("pay_quiet")
        accepted = client.post(f"/webhooks/razorpay/{quiet}", content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
        watch.wait_for(RawWebhook, lambda r: r.header.tenant == quiet, timeout=10)
        watch.settle(0.5)
        on_topic = watch.find(RawWebhook, lambda r: r.header.tenant == noisy)
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert int(answers[3].headers["Retry-After"]) >= 1
    assert answers[3].json() == {"error": "too many requests; retry later"}
    # The refused ones were never produced: only the three within the burst are there.
    assert sorted(json.loads(r.body)["payload"]["payment"]["entity"]["id"] for r in on_topic) == [
        "pay_noisy0",
        "pay_noisy1",
        "pay_noisy2",
    ]
