"""connectors.tiers: retry history in hub.retry.* headers, the next step, the tier headers."""

from __future__ import annotations

import pytest

from connectors.retry_worker import DueGate, provider_of
from connectors.tiers import (
    ATTEMPTS,
    DUE_AT,
    FIRST_FAILURE,
    LAST_ERROR,
    ORIGINAL_TOPIC,
    RETRY_HEADERS,
    TIER,
    RetryHistory,
    ToDeadLetter,
    ToTier,
    due_at,
    next_step,
    original_topic,
    tier_headers,
    without_retry_headers,
)

NOW_MS = 1_767_225_600_000
COMMANDS = "connector.twilio.commands.v1"
OTHER = [("hub.tenant", b"greenwood"), ("traceparent", b"00-1"), ("empty", None)]


def history_headers(tier: int, attempts: int, first_ms: int) -> list[tuple[str, bytes | None]]:
    return [
        (TIER, str(tier).encode()),
        (ATTEMPTS, str(attempts).encode()),
        (FIRST_FAILURE, str(first_ms).encode()),
    ]


# --- RetryHistory.of, due_at, original_topic ---------------------------------------------


def test_history_without_headers_is_the_default() -> None:
    assert RetryHistory.of([]) == RetryHistory(tier=0, attempts=0, first_failure_ms=None)
    assert RetryHistory.of(OTHER) == RetryHistory()


def test_history_reads_its_headers() -> None:
    history = RetryHistory.of([*OTHER, *history_headers(2, 9, NOW_MS - 5000)])
    assert history == RetryHistory(tier=2, attempts=9, first_failure_ms=NOW_MS - 5000)


@pytest.mark.parametrize("garbage", [b"", b"two", b"1.5", b"\xff\xfe", b"12abc", b" "])
def test_history_ignores_garbage_values(garbage: bytes) -> None:
    headers = [(TIER, garbage), (ATTEMPTS, garbage), (FIRST_FAILURE, garbage)]
    assert RetryHistory.of(headers) == RetryHistory()


def test_history_ignores_headers_without_value() -> None:
    headers: list[tuple[str, bytes | None]] = [
        (TIER, None),
        (ATTEMPTS, None),
        (FIRST_FAILURE, None),
    ]
    assert RetryHistory.of(headers) == RetryHistory()


@pytest.mark.parametrize("garbage", ["--1", "²"])
def test_history_survives_garbage_that_looks_numeric(garbage: str) -> None:
    headers = [(TIER, garbage.encode()), (ATTEMPTS, garbage.encode()), (DUE_AT, garbage.encode())]
    assert RetryHistory.of(headers) == RetryHistory()
    assert due_at(headers) == 0


def test_due_at_reads_the_header_and_defaults_to_now() -> None:
    assert due_at([(DUE_AT, str(NOW_MS).encode())]) == NOW_MS
    assert due_at([]) == 0
    assert due_at([(DUE_AT, b"soon")]) == 0
    assert due_at([(DUE_AT, None)]) == 0


def test_original_topic_reads_the_header() -> None:
    assert original_topic([*OTHER, (ORIGINAL_TOPIC, COMMANDS.encode())]) == COMMANDS
    assert original_topic(OTHER) is None
    assert original_topic([(ORIGINAL_TOPIC, None)]) is None


# --- next_step ----------------------------------------------------------------------------


def test_first_failure_goes_to_tier_one() -> None:
    step = next_step(RetryHistory(), "twilio", [5.0, 60.0], 3, NOW_MS)
    assert step == ToTier(1, "connector.twilio.retry-1.v1", NOW_MS + 5000)


def test_second_failure_goes_to_tier_two_with_its_delay() -> None:
    step = next_step(RetryHistory(tier=1, attempts=3), "sendgrid", [5.0, 60.5], 3, NOW_MS)
    assert step == ToTier(2, "connector.sendgrid.retry-2.v1", NOW_MS + 60_500)


def test_after_the_last_tier_a_dead_letter_with_total_attempts_and_first_failure() -> None:
    history = RetryHistory(tier=2, attempts=6, first_failure_ms=NOW_MS - 70_000)
    step = next_step(history, "twilio", [5.0, 60.0], 3, NOW_MS)
    assert step == ToDeadLetter(attempts=9, first_failure_ms=NOW_MS - 70_000)


def test_dead_letter_without_first_failure_uses_now() -> None:
    step = next_step(RetryHistory(tier=1, attempts=2), "twilio", [5.0], 4, NOW_MS)
    assert step == ToDeadLetter(attempts=6, first_failure_ms=NOW_MS)


def test_no_tiers_means_dead_letter_at_once() -> None:
    assert next_step(RetryHistory(), "twilio", [], 5, NOW_MS) == ToDeadLetter(5, NOW_MS)


def test_history_beyond_the_configured_tiers_is_a_dead_letter() -> None:
    step = next_step(RetryHistory(tier=3, attempts=1), "twilio", [5.0], 1, NOW_MS)
    assert isinstance(step, ToDeadLetter)
    assert step.attempts == 2


# --- tier_headers / without_retry_headers ------------------------------------------------


def as_dict(headers: list[tuple[str, str | bytes | None]]) -> dict[str, str | bytes | None]:
    return dict(headers)


def test_tier_headers_for_a_first_failure() -> None:
    step = ToTier(1, "connector.twilio.retry-1.v1", NOW_MS + 5000)
    headers = tier_headers(
        OTHER,
        step,
        history=RetryHistory(),
        attempts_now=5,
        now_ms=NOW_MS,
        command_topic=COMMANDS,
        error="twilio 503: Service Unavailable",
    )
    assert headers == [
        *OTHER,
        (TIER, b"1"),
        (DUE_AT, str(NOW_MS + 5000).encode()),
        (ORIGINAL_TOPIC, COMMANDS.encode()),
        (FIRST_FAILURE, str(NOW_MS).encode()),
        (ATTEMPTS, b"5"),
        (LAST_ERROR, b"twilio 503: Service Unavailable"),
    ]


def test_tier_headers_replace_the_old_history_instead_of_duplicating_it() -> None:
    first_ms = NOW_MS - 10_000
    old = [
        ("a", b"1"),
        *history_headers(1, 5, first_ms),
        (DUE_AT, b"123"),
        ("b", b"2"),
        (ORIGINAL_TOPIC, COMMANDS.encode()),
        (LAST_ERROR, b"old error"),
        ("c", None),
    ]
    history = RetryHistory.of(old)
    step = next_step(history, "twilio", [5.0, 60.0], 4, NOW_MS)
    assert isinstance(step, ToTier)
    headers = tier_headers(
        old,
        step,
        history=history,
        attempts_now=4,
        now_ms=NOW_MS,
        command_topic=COMMANDS,
        error="new error",
    )
    keys = [k for k, _ in headers]
    assert keys[:3] == ["a", "b", "c"]  # other headers kept, in order, first
    for name in RETRY_HEADERS:
        assert keys.count(name) == 1
    values = as_dict(headers)
    assert values[TIER] == b"2"
    assert values[DUE_AT] == str(NOW_MS + 60_000).encode()
    assert values[ATTEMPTS] == b"9"  # 5 before + 4 now
    assert values[FIRST_FAILURE] == str(first_ms).encode()  # kept across tiers
    assert values[LAST_ERROR] == b"new error"
    assert RetryHistory.of(headers) == RetryHistory(tier=2, attempts=9, first_failure_ms=first_ms)


def test_tier_headers_truncate_the_error_to_500_characters() -> None:
    headers = tier_headers(
        [],
        ToTier(1, "connector.twilio.retry-1.v1", NOW_MS),
        history=RetryHistory(),
        attempts_now=1,
        now_ms=NOW_MS,
        command_topic=COMMANDS,
        error="x" * 499 + "yz" + "w" * 1000,
    )
    assert as_dict(headers)[LAST_ERROR] == b"x" * 499 + b"y"


def test_without_retry_headers_keeps_everything_else_in_order() -> None:
    mixed = [
        ("a", b"1"),
        (TIER, b"1"),
        ("b", None),
        (DUE_AT, b"5"),
        (ORIGINAL_TOPIC, b"t"),
        (FIRST_FAILURE, b"1"),
        (ATTEMPTS, b"2"),
        (LAST_ERROR, b"e"),
        ("a", b"again"),
        ("hub.retry.other", b"kept"),
    ]
    assert without_retry_headers(mixed) == [
        ("a", b"1"),
        ("b", None),
        ("a", b"again"),
        ("hub.retry.other", b"kept"),
    ]
    assert without_retry_headers([]) == []


# --- DueGate and provider_of (retry worker, pure parts) ----------------------------------

A = ("connector.twilio.retry-1.v1", 0)
B = ("connector.twilio.retry-1.v1", 1)
C = ("connector.sendgrid.retry-2.v1", 0)


def test_gate_releases_only_partitions_that_are_due() -> None:
    gate = DueGate()
    gate.hold(A, 1000)
    gate.hold(B, 2000)
    gate.hold(C, 3000)
    assert gate.release_due(999) == []
    assert gate.release_due(2000) == [A, B]  # due at exactly their time
    assert gate.held == {C: 3000}
    assert gate.release_due(2500) == []
    assert gate.release_due(10_000) == [C]
    assert gate.held == {}


def test_gate_hold_again_moves_the_time() -> None:
    gate = DueGate()
    gate.hold(A, 1000)
    gate.hold(A, 5000)
    assert gate.release_due(1000) == []
    assert gate.release_due(5000) == [A]


def test_gate_wait_is_until_the_earliest_partition() -> None:
    gate = DueGate()
    gate.hold(A, 1800)
    gate.hold(B, 1300)
    assert gate.wait_seconds(1000) == pytest.approx(0.3)
    assert gate.wait_seconds(1000, longest=0.1) == pytest.approx(0.1)


def test_gate_wait_is_capped_and_never_negative() -> None:
    gate = DueGate()
    assert gate.wait_seconds(0) == 1.0  # nothing held: the longest wait
    assert gate.wait_seconds(0, longest=2.5) == 2.5
    gate.hold(A, 60_000)
    assert gate.wait_seconds(0) == 1.0
    assert gate.wait_seconds(0, longest=5.0) == 5.0
    assert gate.wait_seconds(100_000) == 0.0  # overdue


def test_gate_forget_drops_partitions_and_ignores_unknown_ones() -> None:
    gate = DueGate()
    gate.hold(A, 1000)
    gate.hold(B, 1000)
    gate.forget([A, C])
    assert gate.held == {B: 1000}
    assert gate.release_due(5000) == [B]


@pytest.mark.parametrize(
    ("topic", "provider"),
    [
        ("connector.twilio.retry-1.v1", "twilio"),
        ("connector.sendgrid.retry-3.v1", "sendgrid"),
        ("connector.razorpay.retry-12.v1", "razorpay"),
    ],
)
def test_provider_of_a_tier_topic(topic: str, provider: str) -> None:
    assert provider_of(topic) == provider
