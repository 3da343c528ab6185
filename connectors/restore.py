"""Catch the local ledger up with its topic: read a partition from its checkpoint to the end."""

from __future__ import annotations

import orjson

from connectors.ledger import LedgerWrite
from connectors.ledger_store import LedgerStore
from core.kafka import read_to_end
from core.settings import Settings

CHUNK = 2000


def catch_up(settings: Settings, store: LedgerStore, topic: str, partition: int) -> int:
    """Apply every ledger record after the partition's checkpoint; returns how many."""
    applied = 0
    writes: list[LedgerWrite] = []
    next_offset = start = store.checkpoint(partition)
    for msg in read_to_end(settings, topic, [partition], start={partition: start}):
        key = (msg.key() or b"").decode()
        value = msg.value()
        next_offset = (msg.offset() or 0) + 1
        if value is None:
            store.apply(writes, {partition: next_offset})  # in order: writes, then the delete
            writes = []
            store.delete(partition, key)
        else:
            writes.append(LedgerWrite(partition, key, dict(orjson.loads(value))))
        applied += 1
        if len(writes) >= CHUNK:
            store.apply(writes, {partition: next_offset})
            writes = []
    store.apply(writes, {partition: next_offset})
    return applied
