"""hub.dlq.model: dead letter ids, times, statuses and the filters `hub dlq` selects with."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from dlq_support import NOW, STAGE, letter, record

from hub.dlq.model import (
    BadIdError,
    DlqFilter,
    DlqRecord,
    Status,
    dead_letter_id,
    parse_id,
    parse_when,
    select,
)
from providers import stages as all_stages
from schemas.events import DeadLetterStatus

ALL = frozenset(Status)

# --- ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", all_stages())
def test_id_round_trip_for_every_stage(stage: str) -> None:
    text = dead_letter_id(stage, 3, 1_234_567)
    assert parse_id(text) == (stage, 3, 1_234_567)


def test_id_format() -> None:
    assert dead_letter_id("connector-twilio", 0, 42) == "connector-twilio:0:42"


def test_parse_id_strips_whitespace() -> None:
    assert parse_id("  normalizer:1:2\n") == ("normalizer", 1, 2)


@pytest.mark.parametrize(
    "bad",
    ["", "normalizer", "normalizer:1", "normalizer:1:x", "normalizer:-1:2", "Normalizer:1:2",
     "normalizer:1:2:3", "dlq.normalizer.v1:1:2", "normalizer 1 2"],
)  # fmt: skip
def test_parse_id_rejects_what_is_not_an_id(bad: str) -> None:
    with pytest.raises(BadIdError) as info:
        parse_id(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "<stage>:<partition>:<offset>" in message
    assert "hub dlq list" in message


def test_bad_id_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a dead letter id"):
        parse_id("nope")


# --- parse_when -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("1.5h", timedelta(minutes=90)),
        (" 0s ", timedelta(0)),
    ],
)
def test_ages_are_before_now(text: str, age: timedelta) -> None:
    assert parse_when(text, NOW) == NOW - age


def test_age_without_now_is_before_the_current_time() -> None:
    before = datetime.now(UTC)
    when = parse_when("1h")
    after = datetime.now(UTC)
    assert before - timedelta(hours=1) <= when <= after - timedelta(hours=1)
    assert when.tzinfo is not None


def test_iso_time_without_timezone_is_utc() -> None:
    assert parse_when("2026-11-22T10:00", NOW) == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert parse_when("2026-11-22T10:00").tzinfo is UTC


def test_iso_time_with_timezone_keeps_it() -> None:
    when = parse_when("2026-11-22T15:30:00+05:30", NOW)
    assert when.utcoffset() == timedelta(hours=5, minutes=30)
    assert when == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert parse_when("2026-11-22T10:00:00Z") == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_iso_date_is_midnight_utc() -> None:
    assert parse_when("2026-11-22") == datetime(2026, 11, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    "garbage", ["", "yesterday", "30", "30x", "-2h", "2 h", "h2", "2026-13-01"]
)
def test_garbage_times_are_value_errors(garbage: str) -> None:
    with pytest.raises(ValueError, match="neither an ISO time nor an age"):
        parse_when(garbage, NOW)


# --- status ---------------------------------------------------------------------------


def test_status_from_state() -> None:
    assert record(1).status is Status.PENDING
    assert record(1, status=DeadLetterStatus.REPLAYED).status is Status.REPLAYED
    assert record(1, status=DeadLetterStatus.PURGED).status is Status.PURGED


def test_record_topic_is_its_stage_dlq() -> None:
    assert record(1, stage="normalizer").topic == "dlq.normalizer.v1"
    assert record(1).topic == "dlq.connector-twilio.v1"


# --- DlqFilter.matches ----------------------------------------------------------------


def test_default_filter_selects_pending_only() -> None:
    default = DlqFilter()
    assert default.matches(record(1))
    assert not default.matches(record(2, status=DeadLetterStatus.REPLAYED))
    assert not default.matches(record(3, status=DeadLetterStatus.PURGED))


def test_statuses_filter() -> None:
    replayed = DlqFilter(statuses=frozenset({Status.REPLAYED}))
    assert replayed.matches(record(1, status=DeadLetterStatus.REPLAYED))
    assert not replayed.matches(record(2))
    assert not replayed.matches(record(3, status=DeadLetterStatus.PURGED))
    everything = DlqFilter(statuses=ALL)
    assert all(
        everything.matches(record(4, status=s))
        for s in (None, DeadLetterStatus.REPLAYED, DeadLetterStatus.PURGED)
    )


def test_stage_filter() -> None:
    only = DlqFilter(stage="normalizer")
    assert only.matches(record(1, stage="normalizer"))
    assert not only.matches(record(1, stage=STAGE))


def test_original_topic_filter() -> None:
    only = DlqFilter(topic="webhooks.raw.v1")
    assert only.matches(record(1, dead=letter(topic="webhooks.raw.v1")))
    assert not only.matches(record(1, dead=letter(topic="payments.events.v1")))


def test_tenant_filter() -> None:
    only = DlqFilter(tenant="greenwood")
    assert only.matches(record(1, dead=letter(tenant="greenwood")))
    assert not only.matches(record(1, dead=letter(tenant="oakridge")))


def test_provider_filter() -> None:
    only = DlqFilter(provider="twilio")
    assert only.matches(record(1, dead=letter(provider="twilio")))
    assert not only.matches(record(1, dead=letter(provider="sendgrid")))
    assert not only.matches(record(1, dead=letter(provider=None, stage="normalizer")))


class NormalizationError(ValueError):
    pass


def test_error_filter_by_class() -> None:
    dead = record(1, dead=letter(error=NormalizationError("amount is missing")))
    assert DlqFilter(error="NormalizationError").matches(dead)
    assert not DlqFilter(error="DecodeError").matches(dead)


def test_error_filter_by_message_substring_ignoring_case() -> None:
    dead = record(1, dead=letter(error=RuntimeError("Twilio 400 [21211]: Invalid Number")))
    assert DlqFilter(error="invalid number").matches(dead)
    assert DlqFilter(error="21211").matches(dead)
    assert DlqFilter(error="TWILIO 400").matches(dead)
    assert not DlqFilter(error="timeout").matches(dead)


def test_since_and_until_bound_the_last_failure_inclusively() -> None:
    at = record(1, dead=letter(last_failure_at=NOW))
    second = timedelta(seconds=1)
    assert DlqFilter(since=NOW).matches(at)
    assert DlqFilter(until=NOW).matches(at)
    assert DlqFilter(since=NOW - second, until=NOW + second).matches(at)
    assert not DlqFilter(since=NOW + second).matches(at)
    assert not DlqFilter(until=NOW - second).matches(at)


def test_since_compares_against_last_failure_not_written_at() -> None:
    old_failure = record(1, dead=letter(last_failure_at=NOW - timedelta(days=2)), written_at=NOW)
    assert not DlqFilter(since=NOW - timedelta(days=1)).matches(old_failure)


def test_since_with_other_timezone() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    at = record(1, dead=letter(last_failure_at=NOW))
    assert DlqFilter(since=datetime(2026, 11, 22, 15, 30, tzinfo=ist)).matches(at)
    assert not DlqFilter(since=datetime(2026, 11, 22, 15, 31, tzinfo=ist)).matches(at)


def test_ids_filter() -> None:
    only = DlqFilter(ids=frozenset({"connector-twilio:0:1", "connector-twilio:0:3"}))
    assert only.matches(record(1))
    assert not only.matches(record(2))
    assert only.matches(record(3))
    assert not only.matches(record(1, partition=1))


def test_ids_filter_still_honours_status() -> None:
    only = DlqFilter(ids=frozenset({"connector-twilio:0:1"}))
    assert not only.matches(record(1, status=DeadLetterStatus.REPLAYED))


def test_not_done_by_leaves_out_what_that_action_did() -> None:
    resume = DlqFilter(statuses=ALL, not_done_by="act-1")
    assert resume.matches(record(1))  # no state: nobody did anything
    assert not resume.matches(record(2, status=DeadLetterStatus.REPLAYED, action_id="act-1"))
    assert resume.matches(record(3, status=DeadLetterStatus.REPLAYED, action_id="act-0"))
    assert DlqFilter(statuses=ALL).matches(
        record(2, status=DeadLetterStatus.REPLAYED, action_id="act-1")
    )


def test_every_field_narrows_together() -> None:
    dead = record(1, dead=letter(tenant="greenwood", provider="twilio"))
    assert DlqFilter(stage=STAGE, tenant="greenwood", provider="twilio").matches(dead)
    assert not DlqFilter(stage=STAGE, tenant="greenwood", provider="sendgrid").matches(dead)


# --- select ---------------------------------------------------------------------------


def at(
    offset: int, minutes: int, *, partition: int = 0, status: DeadLetterStatus | None = None
) -> DlqRecord:
    dead = letter(last_failure_at=NOW + timedelta(minutes=minutes))
    return record(offset, dead=dead, partition=partition, status=status)


def test_select_orders_by_last_failure_then_id() -> None:
    records = [at(5, 10), at(1, 30), at(2, 10), at(3, 0), at(4, 10, partition=1)]
    chosen = select(records, DlqFilter())
    assert [r.id for r in chosen] == [
        "connector-twilio:0:3",
        "connector-twilio:0:2",
        "connector-twilio:0:5",
        "connector-twilio:1:4",
        "connector-twilio:0:1",
    ]


def test_select_filters_then_limits() -> None:
    records = [
        at(1, 3),
        at(2, 1, status=DeadLetterStatus.PURGED),
        at(3, 2),
        at(4, 0),
    ]
    assert [r.id for r in select(records, DlqFilter(), limit=2)] == [
        "connector-twilio:0:4",
        "connector-twilio:0:3",
    ]
    assert len(select(records, DlqFilter())) == 3
    assert len(select(records, DlqFilter(), limit=10)) == 3
    assert select([], DlqFilter(), limit=5) == []


# --- describe -------------------------------------------------------------------------


def test_describe_default_filter_has_only_statuses() -> None:
    assert DlqFilter().describe() == {"statuses": ["pending"]}


def test_describe_has_only_the_fields_set_and_is_json() -> None:
    since = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    described = DlqFilter(
        stage=STAGE,
        provider="twilio",
        error="21211",
        since=since,
        statuses=frozenset({Status.REPLAYED, Status.PENDING}),
        ids=frozenset({"connector-twilio:0:9", "connector-twilio:0:1"}),
    ).describe()
    assert described == {
        "stage": STAGE,
        "provider": "twilio",
        "error": "21211",
        "since": since.isoformat(),
        "statuses": ["pending", "replayed"],
        "ids": ["connector-twilio:0:1", "connector-twilio:0:9"],
    }
    assert json.loads(json.dumps(described)) == described


def test_describe_full_filter_round_trips_through_json() -> None:
    until = NOW
    described = DlqFilter(
        stage="normalizer",
        topic="webhooks.raw.v1",
        tenant="greenwood",
        until=until,
        statuses=ALL,
    ).describe()
    text = json.dumps(described, sort_keys=True)
    assert json.loads(text) == {
        "stage": "normalizer",
        "topic": "webhooks.raw.v1",
        "tenant": "greenwood",
        "until": "2026-11-22T10:00:00+00:00",
        "statuses": ["pending", "purged", "replayed"],
    }
