"""hub.dlq.actions, pure parts: where a replay goes, its headers, batch size and pacing."""

from __future__ import annotations

import pytest
from dlq_support import COMMAND_TOPIC, letter, record, source_headers

from connectors.tiers import (
    ATTEMPTS,
    DUE_AT,
    FIRST_FAILURE,
    LAST_ERROR,
    ORIGINAL_TOPIC,
    RETRY_HEADERS,
    TIER,
    RetryHistory,
    due_at,
    original_topic,
)
from core.settings import Settings
from hub.dlq.actions import (
    REPLAY_ID,
    REPLAY_OF,
    ReplayError,
    batch_size,
    pace,
    provider_of_stage,
    replay_headers,
    target_topic,
)
from hub.dlq.model import DlqRecord

NOW_MS = 1_767_225_600_000
SETTINGS = Settings(retry_tiers={"default": [5.0, 60.0]})
RETRY_HISTORY = [
    (TIER, b"2"),
    (DUE_AT, b"1767225500000"),
    (ORIGINAL_TOPIC, COMMAND_TOPIC.encode()),
    (FIRST_FAILURE, b"1767220000000"),
    (ATTEMPTS, b"11"),
    (LAST_ERROR, b"twilio 503"),
]


def connector_record(offset: int = 7, provider: str = "twilio") -> DlqRecord:
    stage = f"connector-{provider}"
    headers = [*source_headers()[:2], *RETRY_HISTORY, *source_headers()[2:]]
    dead = letter(stage=stage, provider=provider, topic=f"connector.{provider}.commands.v1",
                  headers=headers)  # fmt: skip
    return record(offset, stage=stage, dead=dead)


def normalizer_record() -> DlqRecord:
    dead = letter(stage="normalizer", provider=None, topic="webhooks.raw.v1")
    return record(3, stage="normalizer", dead=dead)


def as_bytes(headers: list[tuple[str, str | bytes | None]]) -> list[tuple[str, bytes | None]]:
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in headers]


# --- provider_of_stage / target_topic --------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "provider"),
    [
        ("connector-twilio", "twilio"),
        ("connector-sendgrid", "sendgrid"),
        ("connector-razorpay", "razorpay"),
        ("connector-nosuch", None),
        ("normalizer", None),
        ("messenger", None),
        ("twilio", None),
    ],
)
def test_provider_of_stage(stage: str, provider: str | None) -> None:
    assert provider_of_stage(stage) == provider


def test_target_original_is_the_topic_it_failed_on() -> None:
    assert target_topic(connector_record(), "original", SETTINGS) == COMMAND_TOPIC
    assert target_topic(normalizer_record(), "original", SETTINGS) == "webhooks.raw.v1"


def test_target_retry_is_the_first_tier_of_the_provider() -> None:
    assert target_topic(connector_record(), "retry", SETTINGS) == "connector.twilio.retry-1.v1"
    assert (
        target_topic(connector_record(provider="sendgrid"), "retry", SETTINGS)
        == "connector.sendgrid.retry-1.v1"
    )


def test_target_retry_is_refused_for_processor_stages() -> None:
    with pytest.raises(ReplayError, match=r"normalizer:0:3: --to retry is for connector"):
        target_topic(normalizer_record(), "retry", SETTINGS)


def test_target_any_other_name_is_that_topic() -> None:
    assert target_topic(normalizer_record(), "webhooks.raw.v1", SETTINGS) == "webhooks.raw.v1"
    assert target_topic(connector_record(), "my.debug.topic", SETTINGS) == "my.debug.topic"


# --- replay_headers --------------------------------------------------------------------


def test_replay_to_original_keeps_headers_without_retry_history() -> None:
    rec = connector_record()
    headers = as_bytes(replay_headers(rec, "act-1", "original", SETTINGS, NOW_MS))
    assert headers == [
        *source_headers(),
        (REPLAY_ID, b"act-1"),
        (REPLAY_OF, b"connector-twilio:0:7"),
    ]
    assert not any(k in RETRY_HEADERS for k, _ in headers)


def test_replay_to_a_topic_is_like_original() -> None:
    rec = normalizer_record()
    assert replay_headers(rec, "act-2", "some.topic", SETTINGS, NOW_MS) == [
        *source_headers(),
        (REPLAY_ID, b"act-2"),
        (REPLAY_OF, b"normalizer:0:3"),
    ]


def test_replay_does_not_touch_the_dead_letter() -> None:
    rec = connector_record()
    before = rec.letter.original_headers
    replay_headers(rec, "act-1", "retry", SETTINGS, NOW_MS)
    assert rec.letter.original_headers == before
    assert len(before) == len(source_headers()) + len(RETRY_HISTORY)


def test_replay_to_retry_starts_a_fresh_history_at_tier_one() -> None:
    rec = connector_record()
    headers = as_bytes(replay_headers(rec, "act-1", "retry", SETTINGS, NOW_MS))
    keys = [k for k, _ in headers]
    assert headers[: len(source_headers())] == source_headers()  # others first, in order
    for name in RETRY_HEADERS:
        assert keys.count(name) == 1  # the old history replaced, not duplicated
    assert RetryHistory.of(headers) == RetryHistory(tier=1, attempts=0, first_failure_ms=NOW_MS)
    assert due_at(headers) == NOW_MS + 5000  # first tier of the default: 5 s
    assert original_topic(headers) == COMMAND_TOPIC
    assert dict(headers)[LAST_ERROR] == b"replayed by operator"
    assert headers[-2:] == [(REPLAY_ID, b"act-1"), (REPLAY_OF, b"connector-twilio:0:7")]


def test_replay_to_retry_uses_the_provider_own_first_tier() -> None:
    settings = Settings(retry_tiers={"default": [5.0, 60.0], "sendgrid": [30.0]})
    rec = connector_record(provider="sendgrid")
    headers = as_bytes(replay_headers(rec, "act-1", "retry", settings, NOW_MS))
    assert due_at(headers) == NOW_MS + 30_000
    assert original_topic(headers) == "connector.sendgrid.commands.v1"


def test_replay_to_retry_without_tiers_is_due_at_once() -> None:
    settings = Settings(retry_tiers={"default": []})
    headers = as_bytes(replay_headers(connector_record(), "act-1", "retry", settings, NOW_MS))
    assert due_at(headers) == NOW_MS


# --- batch_size / pace -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "size"),
    [(None, 5000), (0.0, 5000), (100.0, 20), (5.0, 1), (1.0, 1), (0.1, 1), (2500.0, 500),
     (1e6, 500), (12.0, 2)],
)  # fmt: skip
def test_batch_size(rate: float | None, size: int) -> None:
    assert batch_size(rate) == size


def test_pace_without_rate_never_waits() -> None:
    assert pace(10_000, 0.0, None, 0.0) == 0.0
    assert pace(10_000, 0.0, 0.0, 0.0) == 0.0


def test_pace_waits_until_done_over_rate_seconds_passed() -> None:
    assert pace(100, 1000.0, 50.0, 1000.5) == pytest.approx(1.5)
    assert pace(100, 1000.0, 50.0, 1002.0) == 0.0
    assert pace(100, 1000.0, 50.0, 1010.0) == 0.0  # behind: never negative
    assert pace(0, 1000.0, 50.0, 1000.0) == 0.0


def test_retry_is_refused_for_a_provider_without_tiers() -> None:
    no_tiers = Settings(retry_tiers={"default": []})
    with pytest.raises(ReplayError, match="no retry tiers"):
        target_topic(connector_record(), "retry", no_tiers)


def test_a_replay_of_a_replay_carries_only_the_newest_replay_marks() -> None:
    first = replay_headers(connector_record(), "act-1", "original", SETTINGS, 0)
    dead = letter(
        stage="connector-twilio",
        provider="twilio",
        topic="connector.twilio.commands.v1",
        headers=first,
    )
    headers = replay_headers(
        record(8, stage="connector-twilio", dead=dead), "act-2", "original", SETTINGS, 0
    )
    assert [v for k, v in headers if k == "hub.replay.id"] == [b"act-2"]
