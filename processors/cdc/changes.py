"""Field-level changes and sync-stream records from a change event. Pure."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from processors.cdc.envelope import UNAVAILABLE, Envelope
from schemas.events import (
    CdcSource,
    ChangeOp,
    EntityChange,
    EntityState,
    EventHeader,
    FieldChange,
    Value,
)

SOURCE = "cdc-consumer"
OP = {"c": ChangeOp.CREATE, "u": ChangeOp.UPDATE, "d": ChangeOp.DELETE}


def as_value(value: Any) -> Value:
    """A column value as a sync-stream value.

    Avro envelopes bring NUMERIC as Decimal (kept exact, as text) and bytea as
    bytes (base64, as Debezium's JSON does); JSON objects and arrays become
    JSON text.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldChange]:
    """Every field whose value changed, old -> new, in column order.

    A TOAST placeholder is never a change: the column did not change, Postgres
    just did not repeat its value. A column only one side has (added or
    dropped since) is a change from or to null.
    """
    before, after = before or {}, after or {}
    changes = []
    for field in [*after, *(f for f in before if f not in after)]:
        old, new = before.get(field), after.get(field)
        if UNAVAILABLE in (old, new) or old == new:
            continue
        changes.append(FieldChange(field=field, old=as_value(old), new=as_value(new)))
    return changes


def full_row(envelope: Envelope) -> dict[str, Any]:
    """The row after the change, with unchanged TOAST values taken from the old row."""
    after = dict(envelope.after or {})
    before = envelope.before or {}
    for field, value in list(after.items()):
        if value == UNAVAILABLE:
            if field in before and before[field] != UNAVAILABLE:
                after[field] = before[field]
            else:
                del after[field]  # unknown: leave it out rather than store the placeholder
    return after


def source_of(envelope: Envelope) -> CdcSource:
    src = envelope.source
    return CdcSource(
        db=str(src.get("db", "")),
        schema_=str(src.get("schema", "")),
        table=envelope.table,
        lsn=envelope.lsn,
        tx_id=envelope.tx_id,
        committed_at=envelope.committed_at,
        snapshot=envelope.is_snapshot,
    )


@dataclass(frozen=True)
class SyncRecords:
    state: EntityState | None  # None: a tombstone (the row was deleted)
    change: EntityChange | None  # None: nothing changed, or a snapshot read
    changed_fields: frozenset[str]
    row: dict[str, Any]


def sync_records(envelope: Envelope, tenant: str, entity_id: str) -> SyncRecords:
    entity = envelope.table
    source = source_of(envelope)
    header = EventHeader.new(EntityState.EVENT_TYPE, tenant, source=SOURCE)
    state = None
    # What a target renders: the row after the change, or the deleted row.
    row: dict[str, Any] = dict(envelope.before or {})
    if envelope.op != "d":
        row = full_row(envelope)
        state = EntityState(
            header=header,
            entity=entity,
            entity_id=entity_id,
            attributes={k: as_value(v) for k, v in row.items()},
            source=source,
        )
    if envelope.op == "r":
        return SyncRecords(state, None, frozenset(), row)
    changes = diff(envelope.before, envelope.after if envelope.op != "d" else None)
    if not changes:
        return SyncRecords(state, None, frozenset(), row)
    change = EntityChange(
        header=EventHeader.new(
            EntityChange.EVENT_TYPE, tenant, source=SOURCE, correlation_id=header.correlation_id
        ),
        entity=entity,
        entity_id=entity_id,
        op=OP[envelope.op],
        changes=changes,
        source=source,
    )
    return SyncRecords(state, change, frozenset(c.field for c in changes), row)
