"""The connector's ledger: what became of each command, by idempotency key. Pure.

Entries live on the compacted topic `connector.<provider>.ledger.v1`, on the
partition of the command they describe, and are written in the connector's
transactions together with the results, retry-tier records and dead letters
they go with. An entry is one of:

- intent: an attempt is about to start. It is committed *before* the
  provider is called, so a worker that dies during the call leaves a trace:
  the command is "in doubt" when it comes back.
- delivered: the provider accepted it; the result is kept, to answer a
  duplicate without calling again.
- failed: it failed (and went to a retry tier, or became a dead letter); a
  later record with the same key — the tier's, an operator's replay — tries
  again. A failure that may have reached the provider (a lost answer nobody
  could confirm) stays in doubt: the next try asks the provider first.
- superseded: not sent, because a newer command for the same ordering key
  (a row's later change) was delivered first.

Every entry names the record (partition, offset) it was decided for, so the
redelivery of that very record after a crash (its outcome committed, its
offset not yet) is recognised and skipped without writing anything twice.

Order marks (`o:` keys) keep, per ordering key, the newest version delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel

from core.kafka import Record
from schemas.events import ConnectorCommand, ConnectorResult, entity_key


class EntryState(StrEnum):
    INTENT = "intent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class LedgerEntry(BaseModel):
    state: EntryState
    command_id: str
    partition: int
    offset: int
    # Intent: when the attempt began (a provider lookup searches from there).
    at_ms: int
    result: dict[str, Any] | None = None  # the delivery's ConnectorResult, as JSON
    # A failure whose attempt may have happened: since when it is in doubt.
    in_doubt_since: int | None = None

    def decided(self, partition: int, offset: int) -> bool:
        """A final entry made for exactly this record?"""
        return self.state is not EntryState.INTENT and (self.partition, self.offset) == (
            partition,
            offset,
        )


class OrderMark(BaseModel):
    version: int
    idempotency_key: str
    at_ms: int = 0  # when it was written: it ages out of the local store like entries


# In a failed result's details: the attempt may have happened, since then (epoch ms).
IN_DOUBT_SINCE = "in_doubt_since_ms"


def entry_key(command: ConnectorCommand) -> str:
    return "k:" + entity_key(command.header.tenant, command.idempotency_key)


def mark_key(command: ConnectorCommand) -> str | None:
    if command.ordering_key is None or command.ordering_version is None:
        return None
    return "o:" + entity_key(command.header.tenant, command.ordering_key)


# --- decisions ---------------------------------------------------------------


@dataclass(frozen=True)
class Skip:
    """This very record was carried out already: write nothing, commit its offset."""


@dataclass(frozen=True)
class AnswerDuplicate:
    """Delivered before (another record, same key): answer from the ledger, no call."""

    earlier: ConnectorResult


@dataclass(frozen=True)
class Supersede:
    """A newer command for this ordering key was delivered: record it, do not send."""

    newer_version: int


@dataclass(frozen=True)
class LookUp:
    """An attempt is in doubt: ask the provider whether it happened before sending."""

    since_ms: int


@dataclass(frozen=True)
class Send:
    # True: an earlier attempt may have reached the provider, whose own
    # idempotency (a key, or an operation that is the same done twice) makes
    # sending again safe.
    in_doubt: bool = False


Decision = Skip | AnswerDuplicate | Supersede | LookUp | Send


def decide(
    entry: LedgerEntry | None,
    mark: OrderMark | None,
    command: ConnectorCommand,
    partition: int,
    offset: int,
    *,
    can_look_up: bool,
) -> Decision:
    if entry is not None and entry.decided(partition, offset):
        return Skip()
    if entry is not None and entry.state is EntryState.DELIVERED and entry.result is not None:
        return AnswerDuplicate(ConnectorResult.model_validate(entry.result))
    version = command.ordering_version
    if mark is not None and version is not None and version < mark.version:
        return Supersede(mark.version)
    doubt = _doubt_since(entry)
    if doubt is not None:
        return LookUp(doubt) if can_look_up else Send(in_doubt=True)
    return Send()


def _doubt_since(entry: LedgerEntry | None) -> int | None:
    if entry is None:
        return None
    if entry.state is EntryState.INTENT:
        return entry.at_ms
    return entry.in_doubt_since if entry.state is EntryState.FAILED else None


# --- what to write -------------------------------------------------------------


@dataclass(frozen=True)
class LedgerWrite:
    partition: int
    key: str
    value: dict[str, Any]


def intent(command: ConnectorCommand, partition: int, offset: int, now_ms: int) -> LedgerWrite:
    entry = LedgerEntry(
        state=EntryState.INTENT,
        command_id=command.command_id,
        partition=partition,
        offset=offset,
        at_ms=now_ms,
    )
    return LedgerWrite(partition, entry_key(command), entry.model_dump(mode="json"))


def outcome(
    command: ConnectorCommand,
    result: ConnectorResult,
    partition: int,
    offset: int,
    *,
    now_ms: int,
    mark: OrderMark | None,
) -> list[LedgerWrite]:
    """The entries a finished command leaves: its own, and a newer order mark."""
    state = {
        "DELIVERED": EntryState.DELIVERED,
        "SUPERSEDED": EntryState.SUPERSEDED,
    }.get(result.status, EntryState.FAILED)
    delivered = state is EntryState.DELIVERED
    doubt = result.details.get(IN_DOUBT_SINCE) if state is EntryState.FAILED else None
    entry = LedgerEntry(
        state=state,
        command_id=command.command_id,
        partition=partition,
        offset=offset,
        at_ms=now_ms,
        result=result.model_dump(mode="json") if delivered else None,
        in_doubt_since=int(doubt) if doubt and doubt.isdigit() else None,
    )
    writes = [LedgerWrite(partition, entry_key(command), entry.model_dump(mode="json"))]
    key, version = mark_key(command), command.ordering_version
    newer = version is not None and (mark is None or version > mark.version)
    if delivered and key is not None and version is not None and newer:
        new_mark = OrderMark(version=version, idempotency_key=command.idempotency_key, at_ms=now_ms)
        writes.append(LedgerWrite(partition, key, new_mark.model_dump()))
    return writes


def ledger_record(topic: str, write: LedgerWrite) -> Record:
    return Record(topic, write.key.encode(), orjson.dumps(write.value), [], write.partition)
