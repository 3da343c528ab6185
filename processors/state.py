"""Keyed state of a stream stage, per input partition, changed through a journal. Pure.

A stage's tables live in memory, one dict per (table, input partition), and
are rebuilt from their compacted state topics when a partition is assigned.
Every change goes through the store's journal, so the runner can:

- undo one record's changes when that record fails (it becomes a dead
  letter; the state must not keep half of what it did),
- write exactly the keys a batch changed, with their final values, into the
  batch's transaction,
- undo the whole batch when its transaction is aborted, so memory never holds
  state that Kafka does not.

Values are JSON-compatible (dicts, lists, strings, numbers, None).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_MISSING: Any = object()

Slot = tuple[str, int]  # (table, partition)


@dataclass(frozen=True)
class Change:
    table: str
    partition: int
    key: str
    value: Any  # None: deleted


class StateStore:
    def __init__(self, tables: tuple[str, ...]) -> None:
        self.tables = tables
        self._data: dict[Slot, dict[str, Any]] = {}
        # (table, partition, key) -> value before the batch (or _MISSING)
        self._batch_undo: dict[tuple[str, int, str], Any] = {}
        self._record_undo: dict[tuple[str, int, str], Any] = {}
        # Keys the current record was the first of its batch to touch.
        self._record_first: set[tuple[str, int, str]] = set()

    # --- partitions ---------------------------------------------------------

    def load(self, table: str, partition: int, entries: dict[str, Any]) -> None:
        self._data[(table, partition)] = dict(entries)

    def drop(self, partition: int) -> None:
        for table in self.tables:
            self._data.pop((table, partition), None)

    def partitions(self) -> list[int]:
        return sorted({p for _, p in self._data})

    def size(self, table: str, partition: int) -> int:
        return len(self._data.get((table, partition), {}))

    def table(self, name: str, partition: int) -> Table:
        if name not in self.tables:
            raise KeyError(f"no table {name!r} (tables: {', '.join(self.tables)})")
        return Table(self, name, partition)

    # --- reads and writes (through Table) -----------------------------------

    def _entries(self, table: str, partition: int) -> dict[str, Any]:
        return self._data.setdefault((table, partition), {})

    def _write(self, table: str, partition: int, key: str, value: Any) -> None:
        entries = self._entries(table, partition)
        slot = (table, partition, key)
        before = entries.get(key, _MISSING)
        if slot not in self._batch_undo:
            self._batch_undo[slot] = before
            self._record_first.add(slot)
        self._record_undo.setdefault(slot, before)
        if value is _MISSING:
            entries.pop(key, None)
        else:
            entries[key] = value

    # --- the journal ----------------------------------------------------------

    def begin_record(self) -> None:
        self._record_undo = {}
        self._record_first = set()

    def undo_record(self) -> None:
        """Forget the current record's changes (it failed and becomes a dead letter)."""
        self._restore(self._record_undo)
        for slot in self._record_first:
            # Untouched by the batch after all: nothing to write for it.
            self._batch_undo.pop(slot, None)
        self.begin_record()

    def changes(self) -> list[Change]:
        """Every key the batch changed, with its value now (None: deleted)."""
        out = []
        for table, partition, key in self._batch_undo:
            value = self._data.get((table, partition), {}).get(key, _MISSING)
            out.append(Change(table, partition, key, None if value is _MISSING else value))
        return out

    def commit_batch(self) -> None:
        self._batch_undo = {}
        self.begin_record()

    def undo_batch(self) -> None:
        """The batch's transaction was aborted: back to the last committed state."""
        self._restore(self._batch_undo)
        self.commit_batch()

    def _restore(self, undo: dict[tuple[str, int, str], Any]) -> None:
        for (table, partition, key), before in undo.items():
            entries = self._data.get((table, partition))
            if entries is None:
                continue  # the partition was revoked meanwhile
            if before is _MISSING:
                entries.pop(key, None)
            else:
                entries[key] = before


class Table:
    """One table of one partition, as a stage's step functions see it."""

    def __init__(self, store: StateStore, name: str, partition: int) -> None:
        self._store = store
        self.name = name
        self.partition = partition

    def get(self, key: str, default: Any = None) -> Any:
        return self._store._entries(self.name, self.partition).get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self._store._entries(self.name, self.partition)

    def set(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("None is how a deletion is stored; use delete()")
        self._store._write(self.name, self.partition, key, value)

    def delete(self, key: str) -> None:
        if key in self:
            self._store._write(self.name, self.partition, key, _MISSING)

    def pop(self, key: str, default: Any = None) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            return default
        self.delete(key)
        return value

    def items(self) -> Iterator[tuple[str, Any]]:
        # A copy: callers delete while they iterate (sweeps).
        return iter(list(self._store._entries(self.name, self.partition).items()))

    def __len__(self) -> int:
        return len(self._store._entries(self.name, self.partition))
