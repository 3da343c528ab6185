"""In-process retries: the seed's schedule as a value, run by tenacity.

5 attempts, waiting 1, 2, 4, 8 s between them (exponential, capped), on
RetryLater outcomes only (5xx, 429, 408, network errors). A provider's
Retry-After replaces the backoff, capped so one command cannot park a worker.
Sleeping is injected, so tests run the whole schedule without waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt

from core.settings import Settings
from providers.base import Outcome, RetryLater

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 8.0
    retry_after_cap: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.retry_attempts,
            settings.retry_base_seconds,
            settings.retry_max_seconds,
            settings.retry_after_cap_seconds,
        )

    def backoff(self, failed_attempt: int) -> float:
        return min(self.max_seconds, self.base_seconds * 2.0 ** (failed_attempt - 1))

    def wait(self, failed_attempt: int, outcome: Outcome) -> float:
        if isinstance(outcome, RetryLater) and outcome.retry_after is not None:
            return min(self.retry_after_cap, outcome.retry_after)
        return self.backoff(failed_attempt)

    def schedule(self) -> list[float]:
        """The waits between attempts when the provider gives no Retry-After."""
        return [self.backoff(n) for n in range(1, self.attempts)]


@dataclass(frozen=True)
class Attempted:
    outcome: Outcome
    attempts: int


async def with_retries(
    call: Callable[[], Awaitable[Outcome]], policy: RetryPolicy, sleep: Sleep
) -> Attempted:
    def wait(state: RetryCallState) -> float:
        assert state.outcome is not None
        return policy.wait(state.attempt_number, state.outcome.result())

    def give_up(state: RetryCallState) -> Outcome:
        assert state.outcome is not None
        result: Outcome = state.outcome.result()
        return result

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_result(lambda outcome: isinstance(outcome, RetryLater)),
        sleep=sleep,
        retry_error_callback=give_up,
    )
    attempts = 0

    async def counted() -> Outcome:
        nonlocal attempts
        attempts += 1
        return await call()

    outcome: Outcome = await retrying(counted)
    return Attempted(outcome, attempts)
