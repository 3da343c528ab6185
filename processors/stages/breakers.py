"""Breakers stage: the fleet's call outcomes -> each provider account's circuit breaker.

The keeper of core.breaker: it folds the events connector workers append to
hub.breakers.events.v1 (keyed by account, so one account's events are in one
partition, in log order) into the account's state, and writes every changed
state to the compacted hub.breakers.v1 in the same transaction as its table,
which every connector worker and the messenger follow. One writer per account
is what makes "3 probes for the whole fleet" true.
"""

from __future__ import annotations

import orjson
import structlog
from confluent_kafka import Message
from pydantic import ValidationError

from core.breaker import BreakerConfig, BreakerEvent, BreakerState, apply
from core.kafka import Record
from core.settings import Settings
from core.topics import BREAKER_EVENTS, BREAKER_STATES, BREAKERS
from processors.runner import Stage, StepContext

log = structlog.get_logger("processors.stages.breakers")

NAME = "breakers"


class UnreadableBreakerEventError(ValueError):
    """Not a breaker event: a dead letter, the fold goes on."""


def _seen_by_workers(state: BreakerState) -> tuple[object, ...]:
    return (state.phase, state.epoch, state.probe_holder, state.granted_at, state.probe_results)


def stage(settings: Settings) -> Stage:
    config = BreakerConfig.from_settings(settings)

    def step(ctx: StepContext, msg: Message) -> list[Record]:
        try:
            event = BreakerEvent.model_validate({"event": orjson.loads(msg.value() or b"")}).event
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise UnreadableBreakerEventError(f"not a breaker event: {exc}") from exc
        table = ctx.table(BREAKER_STATES)
        stored = table.get(event.account)
        before = BreakerState.model_validate(stored) if stored else None
        after = apply(before, event, config)
        if before is not None and after == before:
            return []
        table.set(event.account, after.model_dump(mode="json"))
        if before is not None and _seen_by_workers(before) == _seen_by_workers(after):
            return []  # a closed breaker's window moved: workers need not hear of it
        if before is None or before.phase is not after.phase:
            log.info(
                "breaker.transition",
                account=after.account,
                phase=after.phase,
                epoch=after.epoch,
                reason=after.reason,
                probe_holder=after.probe_holder,
            )
        value = orjson.dumps(after.model_dump(mode="json"))
        return [Record(BREAKERS, event.account.encode(), value, [])]

    return Stage(NAME, (BREAKER_EVENTS,), step, tables=(BREAKER_STATES,))
