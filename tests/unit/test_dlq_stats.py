"""hub.dlq.stats.compute: counters, oldest/newest, and the hour-on-hour growth."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from dlq_support import NOW, STAGE, letter, record

from hub.dlq.stats import DlqStats, compute
from schemas.events import DeadLetterStatus

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


class DecodeError(ValueError):
    pass


def stats(last_hour: int, previous_hour: int) -> DlqStats:
    empty: Counter[str] = Counter()
    return DlqStats(0, empty, empty, empty, empty, empty, None, None, last_hour, previous_hour)


def test_no_records() -> None:
    result = compute([], NOW)
    assert result.total == 0
    assert result.oldest is None
    assert result.newest is None
    assert (result.last_hour, result.previous_hour) == (0, 0)
    assert result.by_error == Counter()
    assert result.growth == "+0 (none the hour before)"


def test_counters() -> None:
    records = [
        record(1, dead=letter(tenant="greenwood", provider="twilio")),
        record(2, dead=letter(tenant="greenwood", provider="sendgrid", stage="connector-sendgrid"),
               stage="connector-sendgrid", status=DeadLetterStatus.REPLAYED),
        record(3, dead=letter(tenant="oakridge", provider=None, stage="normalizer",
                              error=DecodeError("bad avro")),
               stage="normalizer", status=DeadLetterStatus.PURGED),
        record(4, dead=letter(tenant="oakridge", provider="twilio")),
    ]  # fmt: skip
    result = compute(records, NOW)
    assert result.total == 4
    assert result.by_error == Counter({"RuntimeError": 3, "DecodeError": 1})
    assert result.by_provider == Counter({"twilio": 2, "sendgrid": 1, "-": 1})
    assert result.by_tenant == Counter({"greenwood": 2, "oakridge": 2})
    assert result.by_stage == Counter({STAGE: 2, "connector-sendgrid": 1, "normalizer": 1})
    assert result.by_status == Counter({"pending": 2, "replayed": 1, "purged": 1})


def test_oldest_and_newest_are_written_times() -> None:
    records = [
        record(1, written_at=NOW - 3 * HOUR),
        record(2, written_at=NOW - 10 * HOUR),
        record(3, written_at=NOW - MINUTE),
    ]
    result = compute(records, NOW)
    assert result.oldest == NOW - 10 * HOUR
    assert result.newest == NOW - MINUTE


def test_hour_boundaries() -> None:
    ages = [
        timedelta(0),  # last hour
        30 * MINUTE,  # last hour
        HOUR,  # exactly one hour: still the last hour
        HOUR + timedelta(milliseconds=1),  # previous hour
        90 * MINUTE,  # previous hour
        2 * HOUR,  # exactly two hours: still the previous hour
        2 * HOUR + timedelta(milliseconds=1),  # older: neither
        5 * HOUR,  # neither
    ]
    records = [record(i, written_at=NOW - age) for i, age in enumerate(ages)]
    result = compute(records, NOW)
    assert result.last_hour == 3
    assert result.previous_hour == 3
    assert result.total == 8


def test_hours_count_written_time_not_last_failure() -> None:
    records = [record(1, dead=letter(last_failure_at=NOW - 5 * HOUR), written_at=NOW - MINUTE)]
    assert compute(records, NOW).last_hour == 1


def test_growth_with_nothing_the_hour_before() -> None:
    assert stats(5, 0).growth == "+5 (none the hour before)"


def test_growth_as_percent_of_the_hour_before() -> None:
    assert stats(6, 4).growth == "+6 (+50% on the hour before)"
    assert stats(2, 4).growth == "+2 (-50% on the hour before)"
    assert stats(4, 4).growth == "+4 (+0% on the hour before)"
    assert stats(0, 3).growth == "+0 (-100% on the hour before)"


def test_growth_from_computed_stats() -> None:
    records = [
        *(record(i, written_at=NOW - 10 * MINUTE) for i in range(3)),
        record(10, written_at=NOW - 70 * MINUTE),
    ]
    assert compute(records, NOW).growth == "+3 (+200% on the hour before)"
