"""A record a stage cannot process is set aside with the reason; the stream keeps flowing."""

from __future__ import annotations

import secrets

import pytest
from confluent_kafka import Producer
from support import TENANT, open_invoice, unique_phone, watch_all

from core.kafka import producer_config
from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import (
    INVOICES,
    NOTIFICATION_REQUESTS,
    RAW_WEBHOOKS,
    commands_topic,
    dlq_topic,
)
from producers import EventProducer
from schemas.events import (
    Channel,
    ConnectorCommand,
    DeadLetter,
    EventHeader,
    NotificationRequest,
    SendSms,
)
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

GARBAGE = b"\xc3\x01" + b"\xff" * 8 + b"definitely not avro"


def produce_pills(settings: Settings, topic: str, key: bytes, partitions: int) -> None:
    producer = Producer(producer_config(settings, "poison-test"))
    for partition in range(partitions):
        producer.produce(
            topic,
            key=key,
            value=GARBAGE,
            partition=partition,
            headers=[("hub.tenant", TENANT.encode())],
        )
    assert producer.flush(10) == 0


def sms_request(to: str) -> NotificationRequest:
    return NotificationRequest(
        header=EventHeader.new(NotificationRequest.EVENT_TYPE, TENANT, source="test"),
        idempotency_key=f"poison-check:{secrets.token_hex(6)}",
        channel=Channel.SMS,
        to=to,
        text="after the poison pill",
    )


def follow_up(settings: Settings, sim: SimulatorClient, stage: str, topic: str) -> str:
    """Send a good record that must pass through `stage`; return the phone it ends at."""
    if stage in ("normalizer", "reconciler"):
        # A whole payment: the invoice ledger and the normalizer both take part.
        with watch_all(settings) as watch:
            opened = open_invoice(settings, watch)
        assert sim.pay_order(opened.order_id, "captured")["webhook_status"] == 200
        return opened.phone
    phone = unique_phone()
    with EventProducer(settings) as producer:
        if stage == "messenger":
            producer.publish(sms_request(phone))
        else:
            producer.publish(
                ConnectorCommand(
                    header=EventHeader.new("connector.sms.send", TENANT, source="test"),
                    idempotency_key=f"poison-check:{secrets.token_hex(6)}",
                    provider="twilio",
                    payload=SendSms(to=phone, text="after the poison pill"),
                ),
                topic,
            )
    return phone


@pytest.mark.parametrize(
    ("topic", "stage"),
    [
        (RAW_WEBHOOKS, "normalizer"),
        (INVOICES, "reconciler"),
        (NOTIFICATION_REQUESTS, "messenger"),
        (commands_topic("twilio"), "connector-twilio"),
    ],
)
def test_poison_pill_goes_to_the_stage_dead_letter_topic_and_the_stream_flows_on(
    hub_settings: Settings, sim: SimulatorClient, topic: str, stage: str
) -> None:
    key = f"{TENANT}:poison-{secrets.token_hex(4)}".encode()
    partitions = hub_settings.topic_partitions
    with TopicWatcher(hub_settings, [dlq_topic(stage)]) as watch:
        # One pill on every partition: whatever partition the follow-up lands
        # on, it is queued behind a pill.
        produce_pills(hub_settings, topic, key, partitions)
        letters = watch.wait_for(
            DeadLetter, lambda d: d.original_key == key, timeout=15, count=partitions
        )
    assert sorted(d.original_partition for d in letters) == list(range(partitions))
    letter = letters[0]
    assert letter.original_value == GARBAGE
    assert letter.original_topic == topic
    assert letter.stage == stage
    assert letter.header.tenant == TENANT
    assert letter.error_class in {"UnknownWriterSchemaError", "CorruptRecordError"}
    assert letter.retryable is False
    assert "fingerprint" in letter.error_message
    # The stream carried on: a good record through the same stage reached the provider.
    phone = follow_up(hub_settings, sim, stage, topic)
    assert sim.wait_for_requests("twilio", 1, timeout=15, To=phone)
