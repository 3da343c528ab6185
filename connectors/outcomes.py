"""What a connector writes once a command has run. Pure.

- delivered (or already delivered): its result;
- retryable failure, tiers left: the command itself, unchanged, to the next
  retry tier (no result yet: the command is not finished);
- retryable failure after the last tier: the result and a dead letter;
- permanent failure (4xx, unknown tenant, missing credentials): the result and
  a dead letter at once, without retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.executor import CIRCUIT_OPEN
from connectors.ledger import IN_DOUBT_SINCE
from connectors.tiers import RetryHistory, ToTier, next_step, same_tier, tier_headers
from core.dead_letters import Failure, SourceRecord, build_dead_letter
from core.kafka import Record, event_record
from core.topics import connector_stage, dlq_topic, results_topic
from schemas.codec import Codec
from schemas.events import ConnectorCommand, ConnectorResult, ResultStatus


class RetriesExhaustedError(RuntimeError):
    """Every in-process retry and every retry tier failed with a retryable error."""


class ProviderRejectedError(RuntimeError):
    """The provider (or the hub, for a command it cannot send) refused it for good."""


def _describe(result: ConnectorResult) -> str:
    status = f" {result.http_status}" if result.http_status else ""
    code = f" [{result.error_code}]" if result.error_code else ""
    return f"{result.provider}{status}{code}: {result.error_message or 'failed'}"


@dataclass(frozen=True)
class OutcomeContext:
    codec: Codec
    provider: str
    worker: str
    tiers: Sequence[float]


def records_for(
    command: ConnectorCommand,
    result: ConnectorResult,
    source: SourceRecord,
    ctx: OutcomeContext,
    now_ms: int,
) -> list[Record]:
    result_record = event_record(ctx.codec, results_topic(ctx.provider), result)
    if result.status is ResultStatus.DELIVERED:
        return [result_record]
    history = RetryHistory.of(source.headers)
    attempts = history.attempts + result.attempts
    first_ms = history.first_failure_ms or now_ms
    # A message's attempt that may have reached the provider is not failed over: the
    # backup would send it a second time. It waits in a tier, where the ledger asks the
    # provider whether it happened (connectors.ledger) before anything is sent again.
    maybe_sent = "message" in command.context and IN_DOUBT_SINCE in result.details
    if result.retryable and command.context.get("failover") == "next" and not maybe_sent:
        # Another gateway takes over (processors.fees): retry tiers would keep the
        # parent waiting for minutes on a gateway that is down.
        return [result_record]
    if result.retryable:
        step = next_step(history, ctx.provider, ctx.tiers, result.attempts, now_ms)
        if result.error_code == CIRCUIT_OPEN and ctx.tiers:
            # Not called at all (the account's breaker is open): wait in the same tier
            # again, never closer to a dead letter. The breaker always probes after its
            # open time, so the command comes back to a real call.
            step = same_tier(history, ctx.provider, ctx.tiers, now_ms)
        if isinstance(step, ToTier):
            headers = tier_headers(
                source.headers,
                step,
                history=history,
                attempts_now=result.attempts,
                now_ms=now_ms,
                command_topic=source.topic,
                error=_describe(result),
            )
            return [Record(step.topic, source.key, source.value or b"", headers)]
        error: Exception = RetriesExhaustedError(
            f"{_describe(result)} (after {attempts} calls and {len(ctx.tiers)} retry tiers)"
        )
    else:
        error = ProviderRejectedError(_describe(result))
    letter = build_dead_letter(
        source,
        Failure(
            error,
            retryable=result.retryable,
            attempts=max(attempts, 1),
            first_failure_at=datetime.fromtimestamp(first_ms / 1000, UTC),
        ),
        stage=connector_stage(ctx.provider),
        worker=ctx.worker,
        provider=ctx.provider,
        idempotency_key=command.idempotency_key,
    )
    dead = event_record(ctx.codec, dlq_topic(connector_stage(ctx.provider)), letter, key=source.key)
    return [result_record, dead]
