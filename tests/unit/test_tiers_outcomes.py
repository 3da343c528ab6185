"""connectors.outcomes.records_for: result, next retry tier, or dead letter, with a real codec."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dlq_support import COMMAND_TOPIC, KEY, PROVIDER, VALUE, source, source_headers

from connectors.outcomes import OutcomeContext, records_for
from connectors.tiers import ATTEMPTS, FIRST_FAILURE, TIER, RetryHistory, due_at, original_topic
from core.kafka import Record, header_value
from schemas.codec import SingleObjectCodec
from schemas.events import (
    ConnectorCommand,
    ConnectorResult,
    DeadLetter,
    EventHeader,
    KafkaHeader,
    ResultStatus,
    SendSms,
    decode_as,
)

NOW_MS = 1_767_225_600_000
FIRST_MS = NOW_MS - 3_600_123
TIERS = [5.0, 60.0]
CODEC = SingleObjectCodec()
CTX = OutcomeContext(CODEC, PROVIDER, "host:42", TIERS)
RESULTS = "connector.twilio.results.v1"
DLQ = "dlq.connector-twilio.v1"


def command() -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "greenwood", source="test"),
        idempotency_key="idem-1",
        provider=PROVIDER,
        payload=SendSms(to="+919876543210", text="Fee received"),
    )


def result(
    cmd: ConnectorCommand,
    status: ResultStatus,
    *,
    retryable: bool = False,
    attempts: int = 3,
    http_status: int | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> ConnectorResult:
    return ConnectorResult(
        header=cmd.header.caused(ConnectorResult.EVENT_TYPE, source="connector-twilio"),
        command_id=cmd.command_id,
        idempotency_key=cmd.idempotency_key,
        provider=PROVIDER,
        operation=cmd.operation,
        status=status,
        retryable=retryable,
        provider_ref="SM1" if status is ResultStatus.DELIVERED else None,
        http_status=http_status,
        error_code=error_code,
        error_message=error_message,
        attempts=attempts,
    )


def unavailable(cmd: ConnectorCommand, attempts: int = 3) -> ConnectorResult:
    return result(
        cmd,
        ResultStatus.FAILED,
        retryable=True,
        attempts=attempts,
        http_status=503,
        error_message="Service Unavailable",
    )


def tier_source(tier: int, attempts: int) -> list[tuple[str, bytes | None]]:
    return [
        *source_headers(),
        (TIER, str(tier).encode()),
        (ATTEMPTS, str(attempts).encode()),
        (FIRST_FAILURE, str(FIRST_MS).encode()),
        ("hub.retry.due_at", b"1"),
        ("hub.retry.original_topic", COMMAND_TOPIC.encode()),
    ]


def check_result_record(rec: Record, expected: ConnectorResult) -> None:
    assert rec.topic == RESULTS
    assert rec.key == expected.key()
    assert decode_as(CODEC, rec.value, ConnectorResult) == expected


def dead_letter_of(rec: Record) -> DeadLetter:
    assert rec.topic == DLQ
    assert rec.key == KEY
    return decode_as(CODEC, rec.value, DeadLetter)


def test_delivered_is_only_the_result() -> None:
    cmd = command()
    res = result(cmd, ResultStatus.DELIVERED, attempts=1, http_status=201)
    records = records_for(cmd, res, source(), CTX, NOW_MS)
    assert len(records) == 1
    check_result_record(records[0], res)
    assert header_value(records[0].headers, "event_id") == res.header.event_id


def test_delivered_after_a_tier_is_still_only_the_result() -> None:
    cmd = command()
    res = result(cmd, ResultStatus.DELIVERED, attempts=1)
    records = records_for(cmd, res, source(headers=tier_source(2, 6)), CTX, NOW_MS)
    assert [r.topic for r in records] == [RESULTS]


def test_retryable_failure_goes_to_tier_one_unchanged() -> None:
    cmd = command()
    src = source()
    records = records_for(cmd, unavailable(cmd, attempts=3), src, CTX, NOW_MS)
    assert len(records) == 1  # no result yet: the command is not finished
    (rec,) = records
    assert rec.topic == "connector.twilio.retry-1.v1"
    assert rec.key == KEY
    assert rec.value == VALUE
    headers = [(k, v if not isinstance(v, str) else v.encode()) for k, v in rec.headers]
    assert headers[: len(src.headers)] == list(src.headers)  # original headers kept, first
    assert RetryHistory.of(headers) == RetryHistory(tier=1, attempts=3, first_failure_ms=NOW_MS)
    assert due_at(headers) == NOW_MS + 5000
    assert original_topic(headers) == COMMAND_TOPIC
    error = dict(headers)["hub.retry.last_error"]
    assert error is not None
    assert b"503" in error


def test_retryable_failure_after_tier_one_goes_to_tier_two_keeping_history() -> None:
    cmd = command()
    records = records_for(
        cmd, unavailable(cmd, attempts=2), source(headers=tier_source(1, 3)), CTX, NOW_MS
    )
    (rec,) = records
    assert rec.topic == "connector.twilio.retry-2.v1"
    assert (rec.key, rec.value) == (KEY, VALUE)
    headers = [(k, v if not isinstance(v, str) else v.encode()) for k, v in rec.headers]
    assert RetryHistory.of(headers) == RetryHistory(tier=2, attempts=5, first_failure_ms=FIRST_MS)
    assert due_at(headers) == NOW_MS + 60_000
    assert [k for k, _ in headers].count(TIER) == 1


def test_retryable_failure_after_the_last_tier_is_result_and_dead_letter() -> None:
    cmd = command()
    res = unavailable(cmd, attempts=2)
    src = source(headers=tier_source(len(TIERS), 6))
    records = records_for(cmd, res, src, CTX, NOW_MS)
    assert len(records) == 2
    check_result_record(records[0], res)
    dead = dead_letter_of(records[1])
    assert dead.error_class == "RetriesExhaustedError"
    assert dead.retryable is True
    assert dead.attempts == 8  # 6 before the last tier + 2 now
    assert dead.first_failure_at == datetime.fromtimestamp(FIRST_MS / 1000, UTC)
    assert dead.original_topic == COMMAND_TOPIC
    assert dead.original_partition == src.partition
    assert dead.original_offset == src.offset
    assert dead.original_key == KEY
    assert dead.original_value == VALUE
    assert dead.original_headers == [KafkaHeader(key=k, value=v) for k, v in src.headers]
    assert dead.idempotency_key == "idem-1"
    assert dead.provider == PROVIDER
    assert dead.stage == "connector-twilio"
    assert dead.worker == "host:42"
    assert dead.header.tenant == "greenwood"
    assert "503" in dead.error_message
    assert "Service Unavailable" in dead.error_message


def test_retryable_failure_without_tiers_is_a_dead_letter_at_once() -> None:
    cmd = command()
    ctx = OutcomeContext(CODEC, PROVIDER, "host:42", [])
    records = records_for(cmd, unavailable(cmd, attempts=4), source(), ctx, NOW_MS)
    assert [r.topic for r in records] == [RESULTS, DLQ]
    dead = dead_letter_of(records[1])
    assert dead.error_class == "RetriesExhaustedError"
    assert dead.attempts == 4
    assert dead.first_failure_at == datetime.fromtimestamp(NOW_MS / 1000, UTC)


def test_permanent_failure_is_result_and_dead_letter_without_retries() -> None:
    cmd = command()
    res = result(
        cmd,
        ResultStatus.FAILED,
        retryable=False,
        attempts=1,
        http_status=400,
        error_code="21211",
        error_message="Invalid 'To' Phone Number",
    )
    src = source()
    records = records_for(cmd, res, src, CTX, NOW_MS)
    assert len(records) == 2
    check_result_record(records[0], res)
    dead = dead_letter_of(records[1])
    assert dead.error_class == "ProviderRejectedError"
    assert dead.retryable is False
    assert "400" in dead.error_message
    assert "21211" in dead.error_message
    assert "Invalid 'To' Phone Number" in dead.error_message
    assert dead.attempts == 1
    assert (dead.original_key, dead.original_value) == (KEY, VALUE)
    assert dead.original_headers == [KafkaHeader(key=k, value=v) for k, v in src.headers]
    assert dead.idempotency_key == "idem-1"
    assert dead.provider == PROVIDER
    assert dead.stage == "connector-twilio"


def test_permanent_failure_inside_a_tier_counts_all_attempts() -> None:
    cmd = command()
    res = result(cmd, ResultStatus.FAILED, retryable=False, attempts=1, http_status=401)
    records = records_for(cmd, res, source(headers=tier_source(1, 5)), CTX, NOW_MS)
    assert [r.topic for r in records] == [RESULTS, DLQ]
    dead = dead_letter_of(records[1])
    assert dead.error_class == "ProviderRejectedError"
    assert dead.attempts == 6
    assert dead.first_failure_at == datetime.fromtimestamp(FIRST_MS / 1000, UTC)


@pytest.mark.parametrize("provider", ["sendgrid", "razorpay"])
def test_dead_letter_topic_follows_the_provider(provider: str) -> None:
    cmd = command()
    res = result(cmd, ResultStatus.FAILED, retryable=False, attempts=1, http_status=400)
    ctx = OutcomeContext(CODEC, provider, "host:42", TIERS)
    records = records_for(cmd, res, source(), ctx, NOW_MS)
    assert [r.topic for r in records] == [
        f"connector.{provider}.results.v1",
        f"dlq.connector-{provider}.v1",
    ]
    dead = decode_as(CODEC, records[1].value, DeadLetter)
    assert dead.stage == f"connector-{provider}"
    assert dead.provider == provider


def test_a_retryable_failure_with_a_gateway_to_fail_over_to_is_only_the_result() -> None:
    # processors.fees marks an order creation another gateway can take over:
    # the parent must not wait through retry tiers for a gateway that is down.
    cmd = command().model_copy(update={"context": {"failover": "next"}})
    failed = unavailable(cmd)
    (rec,) = records_for(cmd, failed, source(), CTX, NOW_MS)
    assert rec.topic == RESULTS
    check_result_record(rec, failed)


def test_a_permanent_failure_with_a_failover_mark_is_still_a_dead_letter() -> None:
    cmd = command().model_copy(update={"context": {"failover": "next"}})
    rejected = result(cmd, ResultStatus.FAILED, http_status=400, error_message="bad")
    topics = [r.topic for r in records_for(cmd, rejected, source(), CTX, NOW_MS)]
    assert topics == [RESULTS, DLQ]


@pytest.mark.parametrize(("tier", "expected"), [(0, 1), (1, 1), (len(TIERS), len(TIERS))])
def test_a_call_refused_by_an_open_breaker_waits_in_the_same_tier_never_a_dead_letter(
    tier: int, expected: int
) -> None:
    cmd = command()
    refused = result(
        cmd,
        ResultStatus.FAILED,
        retryable=True,
        attempts=0,
        error_code="circuit_open",
        error_message="circuit open for greenwood:twilio:twilio-primary",
    )
    headers = tier_source(tier, 4) if tier else source_headers()
    [record] = records_for(cmd, refused, source(headers=headers), CTX, NOW_MS)
    assert record.topic == f"connector.twilio.retry-{expected}.v1"
    history = RetryHistory.of(record.headers)
    assert history.tier == expected
    assert due_at(record.headers) == NOW_MS + int(TIERS[expected - 1] * 1000)
    assert history.attempts == (4 if tier else 0)
