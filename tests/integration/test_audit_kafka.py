"""The audit trail on the real broker: the Kafka sink's records read back with filters,
and the webhook ingress recording every delivery it answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
import warnings
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

import providers
from core.audit import Exchange, KafkaAuditSink, outbound_record, read_audit
from core.kafka import admin_config, read_to_end
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from core.topic_admin import apply_catalog
from core.topics import AUDIT, RAW_WEBHOOKS
from hub.cli import app
from hub.local_kafka import LocalBroker
from schemas.codec import SingleObjectCodec
from schemas.events import (
    AuditDirection,
    AuditOutcome,
    EventHeader,
    ProviderCallAudit,
    decode_event,
)
from webhook_ingress.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; httpx (the project's) still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.kafka

WEBHOOK_SECRET = "whsec-greenwood-0123456789"
KEY_SECRET = "rzp-key-secret-9876543210"
CARD = "4111111111111111"


@pytest.fixture(scope="module")
def settings(broker: LocalBroker) -> Settings:
    settings = Settings(
        kafka_bootstrap_servers=broker.cfg.bootstrap, ingress_produce_timeout_ms=5000
    )
    wanted = [s for s in providers.topics(settings) if s.name in (AUDIT, RAW_WEBHOOKS)]
    assert len(wanted) == 2
    apply_catalog(AdminClient(admin_config(settings)), wanted, settings.topic_partitions)
    return settings


def entry(
    tenant: str, provider: str, status: int | None, outcome: AuditOutcome
) -> ProviderCallAudit:
    cause = EventHeader.new(
        "connector.command", tenant, source="test", correlation_id=f"c-{status}"
    )
    exchange = Exchange(
        method="POST",
        url=f"https://{provider}.example/v1/send",
        request_headers={"content-type": "application/json"},
        request_body=b'{"to": "+919876543210"}',
        status=status,
        response_headers={},
        response_body=None if status is None else b"{}",
        duration_ms=10.0,
        at=datetime.now(UTC),
    )
    return outbound_record(
        cause,
        exchange,
        provider=provider,
        operation="sms.send",
        outcome=outcome,
        attempt=1,
        source="test",
        body_limit=4096,
    )


def test_the_kafka_sink_writes_what_read_audit_reads_back_filtered(settings: Settings) -> None:
    a, b = f"audit-a-{uuid.uuid4().hex[:8]}", f"audit-b-{uuid.uuid4().hex[:8]}"
    first = [
        entry(a, "twilio", 201, AuditOutcome.DELIVERED),
        entry(a, "twilio", 503, AuditOutcome.RETRY),
        entry(b, "twilio", 201, AuditOutcome.DELIVERED),
    ]
    sink = KafkaAuditSink(settings, client_id="test-audit")
    for e in first:
        sink.record(e)
    sink.close()
    time.sleep(0.05)
    since = datetime.now(UTC)
    time.sleep(0.05)
    later = [
        entry(a, "sendgrid", 202, AuditOutcome.DELIVERED),
        entry(a, "twilio", None, AuditOutcome.ERROR),
    ]
    sink = KafkaAuditSink(settings, client_id="test-audit")
    for e in later:
        sink.record(e)
    sink.close()

    assert read_audit(settings, tenant=a) == [first[0], first[1], *later]
    assert read_audit(settings, tenant=b) == [first[2]]
    assert read_audit(settings, tenant=a, provider="twilio") == [first[0], first[1], later[1]]
    assert read_audit(settings, tenant=a, status=503) == [first[1]]
    assert read_audit(settings, tenant=a, status="2xx") == [first[0], later[0]]
    assert read_audit(settings, tenant=a, status="error") == [later[1]]
    assert read_audit(settings, tenant=a, since=since) == later
    assert read_audit(settings, tenant=a, limit=2) == later  # the newest two, oldest first


def _directory(tenant: str) -> TenantDirectory:
    account = providers.get("razorpay").account_model(
        key_id="rzp_test_1", key_secret=KEY_SECRET, webhook_secret=WEBHOOK_SECRET
    )
    razorpay = ProviderAccount(label="razorpay-main", provider="razorpay", config=account)
    return TenantDirectory({tenant: Tenant(id=tenant, accounts=(razorpay,))})


def test_every_webhook_answered_is_an_inbound_entry_without_its_signature(
    settings: Settings,
) -> None:
    tenant = f"audit-in-{uuid.uuid4().hex[:8]}"
    body = orjson.dumps(
        {
            "event": "payment.captured",
            "payload": {"payment": {"entity": {"id": "pay_1", "card": {"number": CARD}}}},
        }
    )
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    url = f"/webhooks/razorpay/{tenant}"
    headers = {"Content-Type": "application/json", "X-Razorpay-Event-Id": "evt_audit_1"}
    with TestClient(create_app(settings, _directory(tenant))) as client:
        accepted = client.post(
            url, content=body, headers={**headers, "X-Razorpay-Signature": signature}
        )
        refused = client.post(url, content=body, headers={**headers, "X-Razorpay-Signature": "0"})
    assert (accepted.status_code, refused.status_code) == (200, 401)

    deadline = time.monotonic() + 30
    entries: list[ProviderCallAudit] = []
    while len(entries) < 2 and time.monotonic() < deadline:
        entries = read_audit(settings, tenant=tenant)
    ok, bad = entries
    codec = SingleObjectCodec()
    assert [
        (e.direction, e.provider, e.operation, e.method, e.http_status, e.outcome, e.error)
        for e in entries
    ] == [
        (
            AuditDirection.INBOUND,
            "razorpay",
            "payment.captured",
            "POST",
            200,
            AuditOutcome.ACCEPTED,
            None,
        ),
        (
            AuditDirection.INBOUND,
            "razorpay",
            "webhook",
            "POST",
            401,
            AuditOutcome.REFUSED,
            "signature does not match the body",
        ),
    ]
    # Keyed by the signed body (no created_at here: its hash), never the unsigned header.
    assert ok.provider_event_id == hashlib.sha256(body).hexdigest()
    assert (ok.account, bad.account) == ("razorpay-main", None)  # whose secret verified it
    [raw] = [
        w
        for w in (decode_event(codec, m.value()) for m in read_to_end(settings, RAW_WEBHOOKS))
        if w.header.tenant == tenant
    ]
    assert ok.header.correlation_id == raw.header.correlation_id  # one flow, found together
    assert bad.header.correlation_id != raw.header.correlation_id
    assert orjson.loads(ok.response_body or "")["status"] == "accepted"
    assert ok.url == f"http://testserver/webhooks/razorpay/{tenant}"
    assert ok.request_headers["x-razorpay-signature"] == "***"
    assert ok.request_body == (
        '{"event":"payment.captured","payload":{"payment":{"entity":'
        '{"id":"pay_1","card":{"number":"************1111"}}}}}'
    )
    for e in entries:
        stored = e.model_dump_json()
        assert signature not in stored
        assert WEBHOOK_SECRET not in stored
        assert CARD not in stored


def test_hub_audit_lists_and_shows_what_was_recorded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = f"audit-cli-{uuid.uuid4().hex[:8]}"
    cause = EventHeader.new("connector.command", tenant, source="test", correlation_id="corr-cli")
    token = "cli-twilio-token-0123456789"
    recorded = [
        outbound_record(
            cause,
            Exchange(
                method="POST",
                url="https://api.twilio.com/Messages.json",
                request_headers={"Authorization": f"Bearer {token}"},
                request_body=f"To=%2B919876543210&Body={token}".encode(),
                status=status,
                response_headers={"content-type": "application/json"},
                response_body=b'{"sid": "SM1"}',
                duration_ms=20.0,
                at=datetime.now(UTC),
            ),
            provider="twilio",
            operation="sms.send",
            outcome=outcome,
            attempt=attempt,
            source="connector-twilio",
            body_limit=4096,
            secrets=[token],
        )
        for attempt, status, outcome in [
            (1, 503, AuditOutcome.RETRY),
            (2, 201, AuditOutcome.DELIVERED),
        ]
    ]
    sink = KafkaAuditSink(settings, client_id="test-audit-cli")
    for e in recorded:
        sink.record(e)
    sink.close()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    runner = CliRunner()

    listed = runner.invoke(app, ["audit", "list", "--tenant", tenant, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["attempt"], r["http_status"], r["outcome"]) for r in rows] == [
        (1, 503, "retry"),
        (2, 201, "delivered"),
    ]
    assert {r["correlation_id"] for r in rows} == {"corr-cli"}

    table = runner.invoke(app, ["audit", "list", "--tenant", tenant, "--status", "5xx"])
    assert table.exit_code == 0, table.output
    assert "1 entry" in table.output

    shown = runner.invoke(app, ["audit", "show", "corr-cli", "--since", "1h"])
    assert shown.exit_code == 0, shown.output
    assert "authorization: ***" in shown.output
    assert "To=%2B919876543210&Body=***" in shown.output
    assert token not in listed.output + table.output + shown.output

    wrong = runner.invoke(app, ["audit", "list", "--status", "teapot"])
    assert wrong.exit_code == 1
    assert "teapot" in wrong.output
