"""The token bucket arithmetic behind the ingress's 429s, and its bounded memory."""

from __future__ import annotations

import pytest

from webhook_ingress.limits import Bucket, Buckets, Limit, retry_after, take

LIMIT = Limit(rate=2.0, burst=3)  # 2 requests/s, 3 at once


def run(times: list[float], limit: Limit = LIMIT) -> list[float]:
    bucket, waits = None, []
    for now in times:
        bucket, wait = take(bucket, now, limit)
        waits.append(wait)
    return waits


def test_a_new_sender_gets_the_whole_burst_then_waits_for_one_token() -> None:
    # Three at once pass; the fourth at the same instant needs 1 token at 2/s: 0.5 s.
    assert run([10.0, 10.0, 10.0, 10.0]) == [0.0, 0.0, 0.0, 0.5]


def test_tokens_come_back_at_the_rate_and_never_above_the_burst() -> None:
    # Empty at t=10; at t=10.5 one token is back; after an hour idle only 3 are.
    assert run([10, 10, 10, 10.5, 10.5]) == [0.0, 0.0, 0.0, 0.0, 0.5]
    assert run([10, 10, 10, 3610, 3610, 3610, 3610]) == [0, 0, 0, 0, 0, 0, 0.5]


def test_a_refused_request_takes_nothing() -> None:
    bucket = Bucket(tokens=0.5, at=10.0)
    after, wait = take(bucket, 10.0, LIMIT)
    assert (after.tokens, wait) == (0.5, 0.25)


def test_a_clock_that_goes_back_refills_nothing() -> None:
    after, wait = take(Bucket(tokens=0.0, at=10.0), 5.0, LIMIT)
    assert (after.tokens, wait) == (0.0, 0.5)


@pytest.mark.parametrize(("seconds", "header"), [(0.01, 1), (0.5, 1), (1.0, 1), (1.2, 2), (7, 7)])
def test_retry_after_is_whole_seconds_and_at_least_one(seconds: float, header: int) -> None:
    assert retry_after(seconds) == header


def test_buckets_are_per_key() -> None:
    buckets = Buckets(Limit(rate=1.0, burst=1), capacity=10)
    assert buckets.check("noisy", 0.0) == 0.0
    assert buckets.check("noisy", 0.0) == 1.0
    assert buckets.check("quiet", 0.0) == 0.0  # another key is untouched


def test_memory_is_bounded_and_the_least_recently_used_key_goes_first() -> None:
    buckets = Buckets(Limit(rate=1.0, burst=1), capacity=3)
    for key in ("a", "b", "c"):
        buckets.check(key, 0.0)  # each empty now
    assert buckets.check("a", 0.0) == 1.0  # "a" is refused, and now the most recent
    for n in range(1000):
        buckets.check(f"random-{n}", 0.0)
    assert len(buckets) == 3
    # "a" was dropped with the rest: it starts again with a full bucket.
    assert buckets.check("a", 0.0) == 0.0


@pytest.mark.parametrize("limit", [Limit(rate=0.0, burst=10), Limit(rate=5.0, burst=0)])
def test_zero_turns_a_limit_off(limit: Limit) -> None:
    buckets = Buckets(limit, capacity=10)
    assert [buckets.check("k", 0.0) for _ in range(100)] == [0.0] * 100
    assert len(buckets) == 0
