"""Retries that never block a partition: tiers, dead letters, and replay after recovery."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from confluent_kafka import Producer
from support import TENANT, hub_cli, sms_to, unique_phone

from connectors import tiers
from core.kafka import event_headers, producer_config
from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import (
    DLQ_AUDIT,
    commands_topic,
    dlq_topic,
    results_topic,
    retry_topic,
)
from producers import EventProducer
from schemas.codec import SingleObjectCodec
from schemas.events import (
    ConnectorCommand,
    ConnectorResult,
    DeadLetter,
    DlqActionPhase,
    DlqAudit,
    EventHeader,
    ResultStatus,
    SendSms,
    decode_as,
    encode_event,
)
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

STAGE = "connector-twilio"


# Commands straight to the connector (the messenger would fail over to the backup), on
# an account no other test uses: its breaker sees only these tests' failures.
SCHOOL = "riverside"
ACCOUNT = "twilio-backup"


def notify(settings: Settings, to: str) -> ConnectorCommand:
    command = ConnectorCommand(
        header=EventHeader.new("connector.sms.send", SCHOOL, source="attendance-test"),
        idempotency_key=f"attendance:{secrets.token_hex(6)}:sms",
        provider="twilio",
        account=ACCOUNT,
        payload=SendSms(to=to, text="Dear Parent, Rohan was absent today."),
    )
    with EventProducer(settings) as producer:
        producer.publish(command, commands_topic("twilio"))
    return command


def test_provider_down_goes_through_the_tiers_to_a_dead_letter_and_replays_once_after_recovery(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    phone = unique_phone()
    sim.add_fault("twilio", status=503, times=1000, match={"To": phone})  # Twilio is down
    topics = [
        retry_topic("twilio", 1),
        retry_topic("twilio", 2),
        dlq_topic(STAGE),
        results_topic("twilio"),
        DLQ_AUDIT,
    ]
    with TopicWatcher(hub_settings, topics) as watch:
        request = notify(hub_settings, phone)
        key = request.idempotency_key
        letter = watch.wait_for(DeadLetter, lambda d: d.idempotency_key == key, timeout=45)[0]
        tiered = [
            (t, e)
            for t, e in watch.events
            if t.startswith("connector.twilio.retry-") and getattr(e, "idempotency_key", "") == key
        ]
        # The result and the dead letter are written together but to different
        # topics: wait for the result rather than assume it was read first.
        failed = watch.wait_for(ConnectorResult, lambda r: r.idempotency_key == key)

        # Each round is the seed's 5 in-process attempts; then tier 1, tier 2, dead letter.
        assert [t for t, _ in tiered] == [retry_topic("twilio", 1), retry_topic("twilio", 2)]
        assert len(sms_to(sim, phone)) == 15
        assert letter.error_class == "RetriesExhaustedError"
        assert letter.retryable is True
        assert letter.attempts == 15
        assert (letter.provider, letter.header.tenant) == ("twilio", SCHOOL)
        assert letter.header.correlation_id == request.header.correlation_id
        assert letter.original_topic == commands_topic("twilio")
        assert "503" in letter.error_message
        spent = (letter.last_failure_at - letter.first_failure_at).total_seconds()
        assert spent >= 3.0, "tier delays of 1 s and 2 s were honoured"
        command = decode_as(SingleObjectCodec(), letter.original_value, ConnectorCommand)
        assert command.idempotency_key == key  # the original record, untouched
        watch.settle(0.5)
        failed = watch.find(ConnectorResult, lambda r: r.idempotency_key == key)
        assert [r.status for r in failed] == [ResultStatus.FAILED]

        # The provider recovers; an operator replays the dead letter.
        sim.clear_faults()
        dead_letter_id = _id_of(hub_settings, key)
        replayed = hub_cli(hub_settings, "dlq", "replay", dead_letter_id)
        assert replayed.returncode == 0, replayed.stderr + replayed.stdout
        delivered = watch.wait_for(
            ConnectorResult,
            lambda r: r.idempotency_key == key and r.status is ResultStatus.DELIVERED,
            timeout=20,
        )
        assert delivered[0].duplicate is False

        # Replaying the same dead letter again sends nothing new.
        again = hub_cli(hub_settings, "dlq", "replay", dead_letter_id, "--again")
        assert again.returncode == 0, again.stderr + again.stdout
        watch.wait_for(
            ConnectorResult, lambda r: r.idempotency_key == key and r.duplicate, timeout=20
        )
        audits = watch.wait_for(DlqAudit, lambda a: dead_letter_id in a.filter, count=4)
    assert [r["response_status"] for r in sms_to(sim, phone)].count(201) == 1
    assert sorted(a.phase for a in audits) == sorted(
        [DlqActionPhase.STARTED] * 2 + [DlqActionPhase.COMPLETED] * 2
    )
    shown = hub_cli(hub_settings, "dlq", "show", dead_letter_id)
    assert "replayed" in shown.stdout and "RetriesExhaustedError" in shown.stdout


def _id_of(settings: Settings, idempotency_key: str) -> str:
    listed = hub_cli(settings, "dlq", "list", "--stage", STAGE, "--json", "--limit", "10000")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    return next(r["id"] for r in rows if r["idempotency_key"] == idempotency_key)


def test_provider_400_is_a_dead_letter_at_once_without_retries(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    invalid = "+0" + str(secrets.randbelow(10**6))  # Twilio 21211
    with TopicWatcher(hub_settings, [dlq_topic(STAGE), retry_topic("twilio", 1)]) as watch:
        request = notify(hub_settings, invalid)
        letter = watch.wait_for(
            DeadLetter, lambda d: d.idempotency_key == request.idempotency_key, timeout=15
        )[0]
        watch.settle(1.5)
        assert (
            watch.find(ConnectorCommand, lambda c: c.idempotency_key == request.idempotency_key)
            == []
        )
    assert letter.error_class == "ProviderRejectedError"
    assert letter.retryable is False
    assert letter.attempts == 1
    assert "400" in letter.error_message and "21211" in letter.error_message
    assert len(sms_to(sim, invalid)) == 1


def _tier_record(producer: Producer, phone: str, partition: int, due_in_ms: int) -> None:
    command = ConnectorCommand(
        header=EventHeader.new("connector.sms.send", TENANT, source="test"),
        idempotency_key=f"tier-test:{secrets.token_hex(6)}",
        provider="twilio",
        payload=SendSms(to=phone, text=f"due in {due_in_ms} ms"),
    )
    headers = [
        *event_headers(command),
        (tiers.TIER, b"1"),
        (tiers.ORIGINAL_TOPIC, commands_topic("twilio").encode()),
        (tiers.DUE_AT, str(int(time.time() * 1000) + due_in_ms).encode()),
    ]
    producer.produce(
        retry_topic("twilio", 1),
        key=command.key(),
        partition=partition,
        value=encode_event(SingleObjectCodec(), command),
        headers=headers,
    )


def test_a_record_not_yet_due_on_one_partition_does_not_delay_due_records_on_another(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    later, now = unique_phone(), unique_phone()
    producer = Producer(producer_config(hub_settings, "tier-test"))
    _tier_record(producer, later, partition=0, due_in_ms=8_000)
    _tier_record(producer, now, partition=1, due_in_ms=0)
    assert producer.flush(10) == 0
    sent = time.monotonic()

    sim.wait_for_requests("twilio", 1, timeout=6, To=now)
    assert time.monotonic() - sent < 6
    assert sms_to(sim, later) == [], "the held record is not delivered early"
    sim.wait_for_requests("twilio", 1, timeout=20, To=later)
    assert time.monotonic() - sent >= 7.5, "and it is delivered once it is due"
