"""`hub dlq list / show` print no credential, even of a dead letter written unmasked.

The CLI runs with no tenant loaded, so it cannot mask a tenant's secret by its value: what
it can and must mask is a value under a key that names a secret and a quoted credential
("Basic <base64>"). The dead letter here is one an older hub wrote without masking its
error and stack, its original record a webhook whose headers and body carry credentials.
"""

from __future__ import annotations

import base64
import json
import secrets

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from secrets_support import leaks
from typer.testing import CliRunner

import providers
from core.dead_letters import Failure, SourceRecord, build_dead_letter
from core.kafka import admin_config, event_headers, producer_config
from core.masking import MASKER
from core.settings import Settings
from core.topic_admin import apply_catalog
from core.topics import DLQ_STATE, RAW_WEBHOOKS, dlq_topic
from hub.cli import app
from hub.local_kafka import LocalBroker
from schemas.codec import SingleObjectCodec
from schemas.events import EventHeader, RawWebhook, encode_event, utcnow

pytestmark = pytest.mark.kafka

STAGE = "normalizer"


@pytest.fixture(scope="module")
def settings(broker: LocalBroker) -> Settings:
    settings = Settings(kafka_bootstrap_servers=broker.cfg.bootstrap)
    wanted = [s for s in providers.topics(settings) if s.name in (dlq_topic(STAGE), DLQ_STATE)]
    assert len(wanted) == 2
    apply_catalog(AdminClient(admin_config(settings)), wanted, settings.topic_partitions)
    return settings


def test_list_and_show_mask_credentials_of_an_unmasked_letter(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = f"dlq-secrets-{secrets.token_hex(3)}"
    password = f"canary-pw-{secrets.token_hex(8)}"
    api_key = f"canary-key-{secrets.token_hex(8)}"
    assert MASKER.mask_text(password) == password  # never registered: the CLI knows no tenant
    basic = base64.b64encode(f"user:{password}".encode()).decode()
    needles = {basic: "Basic credential", password: "password", api_key: "API key"}
    webhook = RawWebhook(
        header=EventHeader.new(RawWebhook.EVENT_TYPE, tenant, source="webhook-ingress"),
        provider="razorpay",
        provider_event_id="evt-1",
        content_type="application/json",
        http_headers={"authorization": f"Basic {basic}", "x-api-key": api_key},
        body=orjson.dumps({"password": password, "note": f"sent with Basic {basic}"}),
        received_at=utcnow(),
    )
    codec = SingleObjectCodec()
    source = SourceRecord(
        RAW_WEBHOOKS,
        0,
        3,
        None,
        webhook.key().encode(),
        encode_event(codec, webhook),
        [("hub.tenant", tenant.encode()), ("hub.retry.error", f"401 Basic {basic}".encode())],
    )
    letter = build_dead_letter(
        source, Failure(ValueError("bad"), retryable=False), stage=STAGE, worker="old-hub"
    ).model_copy(  # as an older hub wrote it: nothing masked
        update={
            "error_message": f"provider said: Authorization: Basic {basic}",
            "stack": f"Traceback ...\nValueError: Basic {basic}",
        }
    )
    producer = Producer(producer_config(settings, "dlq-secrets-test"))
    producer.produce(
        dlq_topic(STAGE),
        key=source.key,
        value=encode_event(codec, letter),
        headers=event_headers(letter),
    )
    assert producer.flush(30) == 0
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    runner = CliRunner()

    listed = runner.invoke(app, ["dlq", "list", "--stage", STAGE, "--tenant", tenant, "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    table = runner.invoke(app, ["dlq", "list", "--stage", STAGE, "--tenant", tenant])
    shown = runner.invoke(app, ["dlq", "show", row["id"]])
    assert (table.exit_code, shown.exit_code) == (0, 0), table.output + shown.output
    assert "evt-1" in shown.output  # the payload is there, masked
    outputs = [("list --json", listed.output), ("list", table.output), ("show", shown.output)]
    assert leaks(outputs, needles) == []
