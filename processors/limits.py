"""Rate limits on messages: per provider account, per tenant, per recipient. Pure.

Three limits, all checked before a message is handed to a provider:

- per provider account: the provider's documented send rate (or the tenant's
  lower one), a token bucket refilled continuously, bursting one second's worth;
- per tenant: a quota per minute and per day (fixed windows, UTC);
- per recipient: at most N messages an hour to one address (a sliding hour).

Over a limit a message waits, never dropped: `check` says until when, and the
messenger holds it (its story shows the wait) and asks again then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HOUR = 3600.0


@dataclass(frozen=True)
class Allowed:
    pass


@dataclass(frozen=True)
class Wait:
    until: float
    reason: str


Verdict = Allowed | Wait


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `tokens` at time `at`, refilled at `rate` per second up to `burst`."""

    tokens: float
    at: float

    @staticmethod
    def full(rate: float) -> Bucket:
        return Bucket(max(1.0, rate), 0.0)

    def level(self, rate: float, now: float) -> float:
        return min(max(1.0, rate), self.tokens + max(0.0, now - self.at) * rate)

    def take(self, rate: float, now: float) -> Bucket | Wait:
        level = self.level(rate, now)
        if level >= 1.0:
            return Bucket(level - 1.0, now)
        return Wait(now + (1.0 - level) / rate, f"the account's rate limit ({rate:g}/s)")


@dataclass(frozen=True)
class Window:
    """Messages counted in one fixed window (`index` = floor(time / length))."""

    index: int
    count: int


def _window_count(stored: Any, index: int) -> int:
    if isinstance(stored, list) and len(stored) == 2 and stored[0] == index:
        return int(stored[1])
    return 0


@dataclass(frozen=True)
class TenantUsage:
    minute: Window
    day: Window

    @staticmethod
    def of(stored: Mapping[str, Any] | None, now: float) -> TenantUsage:
        minute, day = int(now // 60), int(now // 86_400)
        stored = stored or {}
        return TenantUsage(
            Window(minute, _window_count(stored.get("minute"), minute)),
            Window(day, _window_count(stored.get("day"), day)),
        )

    def check(self, per_minute: int | None, per_day: int | None, now: float) -> Verdict:
        if per_day is not None and self.day.count >= per_day:
            return Wait((self.day.index + 1) * 86_400.0, f"the school's daily quota ({per_day})")
        if per_minute is not None and self.minute.count >= per_minute:
            return Wait(
                (self.minute.index + 1) * 60.0, f"the school's per-minute quota ({per_minute})"
            )
        return Allowed()

    def counted(self) -> TenantUsage:
        return TenantUsage(
            Window(self.minute.index, self.minute.count + 1),
            Window(self.day.index, self.day.count + 1),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "minute": [self.minute.index, self.minute.count],
            "day": [self.day.index, self.day.count],
        }


def recent_sends(stored: Any, now: float) -> list[float]:
    """A recipient's send times within the last hour, oldest first."""
    times = stored if isinstance(stored, list) else []
    return [float(t) for t in times if isinstance(t, int | float) and now - float(t) < HOUR]


def check_recipient(sends: list[float], per_hour: int | None, now: float) -> Verdict:
    if per_hour is None or len(sends) < per_hour:
        return Allowed()
    # The oldest send in the hour leaves the window first; then one more may go.
    until = sends[len(sends) - per_hour] + HOUR
    return Wait(until, f"at most {per_hour} messages an hour to one recipient")
