"""Replay and purge dead letters: exactly once, resumable, audited.

Each batch is one Kafka transaction holding, for every dead letter in it, the
replayed record (original key, value and headers) and its REPLAYED mark on
`hub.dlq.state.v1`. A crash (even SIGKILL) loses at most the open
transaction, and both halves of it: a re-run skips exactly the dead letters
whose marks were committed, so nothing is replayed twice and nothing is
skipped. All operators share one transactional id, so a new run fences a
half-dead old one instead of waiting for its transaction to time out.

A replayed connector command keeps its idempotency key: replaying it again
still makes the provider act once (the connector's ledger answers).
"""

from __future__ import annotations

import getpass
import json
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.tiers import RetryHistory, ToTier, tier_headers, without_retry_headers
from core.kafka import Headers, Record, event_record, transactional_config
from core.settings import Settings
from core.topics import DLQ_AUDIT, DLQ_STATE, retry_topic
from core.transactions import Transactor
from hub.dlq.model import DlqRecord
from providers import names as provider_names
from schemas.codec import Codec
from schemas.events import (
    DeadLetterState,
    DeadLetterStatus,
    DlqAction,
    DlqActionPhase,
    DlqAudit,
    Event,
    EventHeader,
    new_id,
)

TRANSACTIONAL_ID = "hub-dlq-operator"
REPLAY_ID = "hub.replay.id"
REPLAY_OF = "hub.replay.of"
ORIGINAL = "original"
RETRY = "retry"


class ReplayError(ValueError):
    pass


def actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def provider_of_stage(stage: str) -> str | None:
    name = stage.removeprefix("connector-")
    return name if stage.startswith("connector-") and name in provider_names() else None


def target_topic(record: DlqRecord, to: str, settings: Settings) -> str:
    if to == ORIGINAL:
        return record.letter.original_topic
    if to == RETRY:
        provider = provider_of_stage(record.stage)
        if provider is None:
            raise ReplayError(f"{record.id}: --to retry is for connector dead letters only")
        if not settings.tiers_for(provider):
            raise ReplayError(f"{record.id}: {provider} has no retry tiers (HUB_RETRY_TIERS)")
        return retry_topic(provider, 1)
    return to


def replay_headers(
    record: DlqRecord, action_id: str, to: str, settings: Settings, now_ms: int
) -> Headers:
    """The original headers, a fresh retry history, and where the replay came from."""
    original = [
        (h.key, h.value)
        for h in record.letter.original_headers
        if h.key not in (REPLAY_ID, REPLAY_OF)
    ]  # a replay of a replay: only the newest
    marks: Headers = [(REPLAY_ID, action_id.encode()), (REPLAY_OF, record.id.encode())]
    if to != RETRY:
        return [*without_retry_headers(original), *marks]
    provider = provider_of_stage(record.stage)
    assert provider is not None
    first_tier = settings.tiers_for(provider)[:1] or [0.0]
    step = ToTier(1, retry_topic(provider, 1), now_ms + round(first_tier[0] * 1000))
    headers = tier_headers(
        original,
        step,
        history=RetryHistory(),
        attempts_now=0,
        now_ms=now_ms,
        command_topic=record.letter.original_topic,
        error="replayed by operator",
    )
    return [*headers, *marks]


def batch_size(rate: float | None) -> int:
    """Records per transaction. A commit costs tens of milliseconds, so an unpaced
    replay commits every 5,000 (a crash redoes at most that, never duplicates);
    a paced one about five times a second, so progress stays smooth."""
    return 5000 if not rate else max(1, min(500, int(rate / 5)))


def pace(done: int, started: float, rate: float | None, now: float) -> float:
    """Seconds to wait so that `done` records took at least done/rate seconds."""
    return 0.0 if not rate else max(0.0, started + done / rate - now)


def chunks(items: Sequence[DlqRecord], size: int) -> Iterator[Sequence[DlqRecord]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class ActionContext:
    action_id: str
    action: DlqAction
    description: dict[str, Any]
    target: str | None  # original, retry or a topic; None for a purge
    selected: int
    targets: dict[str, str]  # dead letter id -> topic it is replayed to


@dataclass(frozen=True)
class ActionReport:
    action_id: str
    selected: int
    done: int


class Operator:
    """Carries out replays and purges against the cluster."""

    def __init__(self, settings: Settings, codec: Codec, who: str | None = None) -> None:
        self.settings = settings
        self.codec = codec
        self.actor = who or actor()
        self._tx = Transactor(
            transactional_config(settings, "hub-dlq", TRANSACTIONAL_ID, timeout_ms=60_000),
            timeout=60,
        )
        self._tx.init()

    def _header(self, event_type: str) -> EventHeader:
        return EventHeader.new(event_type, "hub", source="hub-dlq")

    def _event(self, topic: str, event: Event) -> None:
        self._tx.produce(event_record(self.codec, topic, event))

    def _audit(
        self, act: ActionContext, phase: DlqActionPhase, done: int, message: str | None = None
    ) -> None:
        audit = DlqAudit(
            header=self._header(DlqAudit.EVENT_TYPE),
            action_id=act.action_id,
            action=act.action,
            phase=phase,
            actor=self.actor,
            filter=json.dumps(act.description, sort_keys=True),
            target=act.target,
            selected=act.selected,
            done=done,
            message=message,
        )
        self._tx.run(lambda: self._event(DLQ_AUDIT, audit))

    def _mark(
        self, record: DlqRecord, status: DeadLetterStatus, action_id: str, target: str | None
    ) -> None:
        self._event(
            DLQ_STATE,
            DeadLetterState(
                header=self._header(DeadLetterState.EVENT_TYPE),
                dead_letter_id=record.id,
                status=status,
                action_id=action_id,
                target_topic=target,
                actor=self.actor,
            ),
        )

    def run(
        self,
        action: DlqAction,
        records: Sequence[DlqRecord],
        description: dict[str, Any],
        *,
        to: str = ORIGINAL,
        rate: float | None = None,
        progress: Callable[[int], None] = lambda _n: None,
        action_id: str | None = None,
    ) -> ActionReport:
        replay = action is DlqAction.REPLAY
        act = ActionContext(
            action_id or new_id()[:12],
            action,
            description,
            to if replay else None,
            len(records),
            {r.id: target_topic(r, to, self.settings) for r in records} if replay else {},
        )
        self._audit(act, DlqActionPhase.STARTED, 0)
        done, started = 0, time.monotonic()
        try:
            for batch in chunks(records, batch_size(rate)):
                self._apply(act, batch)
                done += len(batch)
                progress(len(batch))
                time.sleep(pace(done, started, rate, time.monotonic()))
        except BaseException as exc:  # Ctrl-C included: record why, then stop
            self._audit(act, DlqActionPhase.FAILED, done, f"{type(exc).__name__}: {exc}")
            raise
        self._audit(act, DlqActionPhase.COMPLETED, done)
        return ActionReport(act.action_id, len(records), done)

    def _apply(self, act: ActionContext, batch: Sequence[DlqRecord]) -> None:
        # Both halves, the replayed records and their marks, or neither.
        self._tx.run(lambda: self._produce_batch(act, batch, int(time.time() * 1000)))

    def _produce_batch(self, act: ActionContext, batch: Sequence[DlqRecord], now_ms: int) -> None:
        for record in batch:
            if act.action is DlqAction.PURGE:
                self._mark(record, DeadLetterStatus.PURGED, act.action_id, None)
                continue
            topic = act.targets[record.id]
            assert act.target is not None
            headers = replay_headers(record, act.action_id, act.target, self.settings, now_ms)
            self._tx.produce(
                Record(topic, record.letter.original_key, record.letter.original_value, headers)
            )
            self._mark(record, DeadLetterStatus.REPLAYED, act.action_id, topic)

    def close(self) -> None:
        self._tx.flush(10)
