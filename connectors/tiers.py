"""Retry tiers: where a command goes when its in-process retries ran out. Pure.

A command travels through the tiers unchanged (same key, value, idempotency
key); its history rides in `hub.retry.*` headers, so the retry worker needs
no state of its own and a dead letter can say how often and since when it
failed. Ordering across retries is not preserved: a command waiting in a tier
lets later commands for the same key pass (Uber's reprocessing pattern).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.kafka import Headers
from core.topics import retry_topic

TIER = "hub.retry.tier"
DUE_AT = "hub.retry.due_at"
ORIGINAL_TOPIC = "hub.retry.original_topic"
FIRST_FAILURE = "hub.retry.first_failure_at"
ATTEMPTS = "hub.retry.attempts"
LAST_ERROR = "hub.retry.last_error"
RETRY_HEADERS = (TIER, DUE_AT, ORIGINAL_TOPIC, FIRST_FAILURE, ATTEMPTS, LAST_ERROR)


def _get(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    for key, value in headers:
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None


def _int(headers: Sequence[tuple[str, bytes | None]], name: str) -> int | None:
    """A non-negative integer header, or None: a garbled header must not crash-loop a record."""
    value = _get(headers, name)
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


@dataclass(frozen=True)
class RetryHistory:
    tier: int = 0  # tiers already passed through
    attempts: int = 0  # provider calls before this delivery
    first_failure_ms: int | None = None

    @classmethod
    def of(cls, headers: Sequence[tuple[str, bytes | None]]) -> RetryHistory:
        return cls(
            tier=_int(headers, TIER) or 0,
            attempts=_int(headers, ATTEMPTS) or 0,
            first_failure_ms=_int(headers, FIRST_FAILURE),
        )


def due_at(headers: Sequence[tuple[str, bytes | None]]) -> int:
    """When a tier record may go back to its command topic (epoch ms; 0: now)."""
    return _int(headers, DUE_AT) or 0


def original_topic(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    return _get(headers, ORIGINAL_TOPIC)


@dataclass(frozen=True)
class ToTier:
    tier: int
    topic: str
    due_at_ms: int


@dataclass(frozen=True)
class ToDeadLetter:
    attempts: int
    first_failure_ms: int


def next_step(
    history: RetryHistory, provider: str, tiers: Sequence[float], attempts_now: int, now_ms: int
) -> ToTier | ToDeadLetter:
    """After a retryable failure: the next tier, or a dead letter after the last one."""
    first = history.first_failure_ms or now_ms
    if history.tier >= len(tiers):
        return ToDeadLetter(history.attempts + attempts_now, first)
    tier = history.tier + 1
    return ToTier(tier, retry_topic(provider, tier), now_ms + round(tiers[tier - 1] * 1000))


def same_tier(history: RetryHistory, provider: str, tiers: Sequence[float], now_ms: int) -> ToTier:
    """The tier a command is in (the first, if none) once more: a wait that is no failure."""
    tier = min(max(1, history.tier), len(tiers))
    return ToTier(tier, retry_topic(provider, tier), now_ms + round(tiers[tier - 1] * 1000))


def without_retry_headers(headers: Sequence[tuple[str, bytes | None]]) -> Headers:
    return [(k, v) for k, v in headers if k not in RETRY_HEADERS]


def tier_headers(
    headers: Sequence[tuple[str, bytes | None]],
    step: ToTier,
    *,
    history: RetryHistory,
    attempts_now: int,
    now_ms: int,
    command_topic: str,
    error: str,
) -> Headers:
    return [
        *without_retry_headers(headers),
        (TIER, str(step.tier).encode()),
        (DUE_AT, str(step.due_at_ms).encode()),
        (ORIGINAL_TOPIC, command_topic.encode()),
        (FIRST_FAILURE, str(history.first_failure_ms or now_ms).encode()),
        (ATTEMPTS, str(history.attempts + attempts_now).encode()),
        (LAST_ERROR, error[:500].encode()),
    ]
