"""RetryPolicy's schedule and `with_retries` run against a fake sleep (no real waiting)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest
from connector_support import SleepRecorder

from connectors.retry import RetryPolicy, with_retries
from core.settings import Settings
from providers.base import Delivered, Outcome, Rejected, RetryLater

UNAVAILABLE = RetryLater("Service Unavailable", 503)
OK = Delivered("SM1", 201)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Script:
    """A provider call answering from a list of outcomes; the last one repeats."""

    def __init__(self, outcomes: Sequence[Outcome]) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> Callable[[], Awaitable[Outcome]]:
        async def call() -> Outcome:
            self.calls += 1
            return self.outcomes[min(self.calls, len(self.outcomes)) - 1]

        return call


def test_default_policy_is_the_seed_schedule() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 5
    assert policy.schedule() == [1.0, 2.0, 4.0, 8.0]


def test_backoff_is_capped_at_max_seconds() -> None:
    policy = RetryPolicy(attempts=8, base_seconds=0.5, max_seconds=3.0)
    assert policy.schedule() == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]


def test_single_attempt_policy_never_waits() -> None:
    assert RetryPolicy(attempts=1).schedule() == []


def test_policy_from_settings() -> None:
    settings = Settings(
        retry_attempts=3,
        retry_base_seconds=0.25,
        retry_max_seconds=0.5,
        retry_after_cap_seconds=7.0,
    )
    assert RetryPolicy.from_settings(settings) == RetryPolicy(3, 0.25, 0.5, 7.0)


def test_wait_without_retry_after_is_the_backoff() -> None:
    policy = RetryPolicy()
    assert [policy.wait(n, UNAVAILABLE) for n in range(1, 5)] == [1.0, 2.0, 4.0, 8.0]


def test_wait_honours_retry_after() -> None:
    policy = RetryPolicy()
    assert policy.wait(1, RetryLater("slow down", 429, retry_after=3.0)) == 3.0
    assert policy.wait(4, RetryLater("slow down", 429, retry_after=0.0)) == 0.0


def test_wait_caps_retry_after() -> None:
    policy = RetryPolicy(retry_after_cap=60.0)
    assert policy.wait(1, RetryLater("slow down", 429, retry_after=3600.0)) == 60.0
    assert RetryPolicy(retry_after_cap=5.0).wait(2, RetryLater("x", 503, retry_after=6)) == 5.0


@pytest.mark.anyio
async def test_transient_failures_then_success() -> None:
    script, sleep = Script([UNAVAILABLE, UNAVAILABLE, OK]), SleepRecorder()
    attempted = await with_retries(script(), RetryPolicy(), sleep)
    assert attempted.outcome == OK
    assert attempted.attempts == 3
    assert script.calls == 3
    assert sleep.waits == [1.0, 2.0]


@pytest.mark.anyio
async def test_always_unavailable_gives_up_after_five_attempts() -> None:
    script, sleep = Script([UNAVAILABLE]), SleepRecorder()
    attempted = await with_retries(script(), RetryPolicy(), sleep)
    assert attempted.outcome == UNAVAILABLE
    assert attempted.attempts == 5
    assert script.calls == 5
    assert sleep.waits == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.anyio
async def test_give_up_returns_the_last_failure() -> None:
    last = RetryLater("Gateway Timeout", 504)
    script = Script([UNAVAILABLE, UNAVAILABLE, last])
    attempted = await with_retries(script(), RetryPolicy(attempts=3), SleepRecorder())
    assert attempted.outcome == last
    assert attempted.attempts == 3


@pytest.mark.anyio
async def test_rejection_is_not_retried() -> None:
    rejected = Rejected("invalid number", 400, "21211")
    script, sleep = Script([rejected, OK]), SleepRecorder()
    attempted = await with_retries(script(), RetryPolicy(), sleep)
    assert attempted.outcome == rejected
    assert attempted.attempts == 1
    assert script.calls == 1
    assert sleep.waits == []


@pytest.mark.anyio
async def test_immediate_success_does_not_sleep() -> None:
    script, sleep = Script([OK]), SleepRecorder()
    attempted = await with_retries(script(), RetryPolicy(), sleep)
    assert (attempted.outcome, attempted.attempts, sleep.waits) == (OK, 1, [])


@pytest.mark.anyio
async def test_retry_after_replaces_the_backoff() -> None:
    throttled = RetryLater("Too Many Requests", 429, retry_after=3.0)
    script, sleep = Script([throttled, UNAVAILABLE, OK]), SleepRecorder()
    attempted = await with_retries(script(), RetryPolicy(), sleep)
    assert attempted.outcome == OK
    assert attempted.attempts == 3
    assert sleep.waits == [3.0, 2.0]


@pytest.mark.anyio
async def test_retry_after_is_capped_during_retries() -> None:
    throttled = RetryLater("Too Many Requests", 429, retry_after=600.0)
    sleep = SleepRecorder()
    await with_retries(Script([throttled, OK])(), RetryPolicy(retry_after_cap=30.0), sleep)
    assert sleep.waits == [30.0]


@pytest.mark.anyio
async def test_custom_attempt_count_is_respected() -> None:
    script, sleep = Script([UNAVAILABLE]), SleepRecorder()
    attempted = await with_retries(script(), RetryPolicy(attempts=2), sleep)
    assert attempted.attempts == 2
    assert script.calls == 2
    assert sleep.waits == [1.0]


@pytest.mark.anyio
async def test_exceptions_from_the_call_propagate() -> None:
    async def broken() -> Outcome:
        raise RuntimeError("adapter bug")

    sleep = SleepRecorder()
    with pytest.raises(RuntimeError, match="adapter bug"):
        await with_retries(broken, RetryPolicy(), sleep)
    assert sleep.waits == []
