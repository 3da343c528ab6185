"""Connector workers against the provider simulators: retries, rejections, idempotency."""

from __future__ import annotations

import re
import secrets

import pytest
from support import TENANT, delivered, sms_to, unique_phone

from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import NOTIFICATION_REQUESTS, commands_topic, results_topic
from producers import EventProducer
from schemas.events import (
    Channel,
    ConnectorCommand,
    ConnectorResult,
    EventHeader,
    NotificationRequest,
    ResultStatus,
    SendSms,
)
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]


def notify(
    settings: Settings, to: str, text: str = "Rohan was absent today"
) -> NotificationRequest:
    request = NotificationRequest(
        header=EventHeader.new(NotificationRequest.EVENT_TYPE, TENANT, source="attendance-test"),
        idempotency_key=f"attendance:{secrets.token_hex(6)}:sms",
        channel=Channel.SMS,
        to=to,
        text=text,
    )
    with EventProducer(settings) as producer:
        producer.publish(request, NOTIFICATION_REQUESTS)
    return request


def result_for(watch: TopicWatcher, key: str, **kwargs: object) -> list[ConnectorResult]:
    return watch.wait_for(
        ConnectorResult,
        lambda r: r.idempotency_key == key,
        timeout=15,
        **kwargs,  # type: ignore[arg-type]
    )


def test_provider_503_twice_fails_over_to_the_backup_and_is_delivered_once(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    phone = unique_phone()
    sim.add_fault("twilio", status=503, times=2, match={"To": phone})
    with TopicWatcher(hub_settings, [results_topic("twilio")]) as watch:
        request = notify(hub_settings, phone)
        # HUB_FAILOVER_ATTEMPTS (2) tries at the primary, then the school's next account.
        first = result_for(watch, f"{request.idempotency_key}#1")[0]
        result = result_for(watch, f"{request.idempotency_key}#2")[0]
    assert (first.status, first.retryable, first.attempts) == (ResultStatus.FAILED, True, 2)
    assert first.context["account"] == "twilio-primary"
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 1
    assert result.context["account"] == "twilio-backup"
    calls = sms_to(sim, phone)
    assert [c["response_status"] for c in calls] == [503, 503, 201]
    assert len(delivered(calls)) == 1
    # The message SID Twilio answered with ("SM" and 32 hex digits, as the simulator makes it).
    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_ref or "")


def test_provider_400_is_final_and_recorded_without_retrying(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    invalid = "+0" + str(secrets.randbelow(10**6))  # not E.164: Twilio answers 400 / 21211
    with TopicWatcher(hub_settings, [results_topic("twilio")]) as watch:
        request = notify(hub_settings, invalid)
        key = f"{request.idempotency_key}#1"  # the first attempt's command (the messenger's)
        result = result_for(watch, key)[0]
        watch.settle(1.0)
        # One result, and no second attempt: an invalid number is not failed over.
        mine = watch.find(
            ConnectorResult, lambda r: r.idempotency_key.startswith(request.idempotency_key)
        )
        assert [r.idempotency_key for r in mine] == [key]
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert (result.http_status, result.error_code) == (400, "21211")
    assert result.attempts == 1
    assert len(sms_to(sim, invalid)) == 1


def test_a_redelivered_command_is_not_sent_twice(
    hub_settings: Settings, sim: SimulatorClient
) -> None:
    phone = unique_phone()
    key = f"attendance:{secrets.token_hex(6)}:sms"
    header = EventHeader.new("connector.sms.send", TENANT, source="test")
    first = ConnectorCommand(
        header=header, idempotency_key=key, provider="twilio", payload=SendSms(to=phone, text="one")
    )
    again = first.model_copy(update={"command_id": "another-delivery"})
    with TopicWatcher(hub_settings, [results_topic("twilio")]) as watch:
        with EventProducer(hub_settings) as producer:
            producer.publish(first, commands_topic("twilio"))
            producer.publish(again, commands_topic("twilio"))
        results = result_for(watch, key, count=2)
    assert sorted(r.duplicate for r in results) == [False, True]
    assert len({r.provider_ref for r in results}) == 1
    assert len(sms_to(sim, phone)) == 1
