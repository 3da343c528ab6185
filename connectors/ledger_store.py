"""The ledger on local disk: a SQLite copy of the ledger topic, caught up incrementally.

The ledger topic is the truth; this file is how a worker holds 30 days of
entries without holding them in memory, and restarts without reading them
all again. Per partition it keeps a checkpoint (the next ledger offset to
apply): a restarted worker reads only what was written since, on any
machine the file survived on, and a new machine reads the partition once.
The checkpoints belong to one Kafka cluster: a file that meets another
cluster (a re-formatted broker, another environment) starts empty.

Entries older than the retention are dropped here as the topic's retention
drops them there.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from connectors.ledger import LedgerWrite

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    partition INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (partition, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_age ON entries (updated_ms);
CREATE TABLE IF NOT EXISTS checkpoints (
    partition INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class LedgerStore:
    def __init__(self, path: Path, cluster_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Partitions are caught up in a worker thread while the loop reads: one
        # connection, used under a lock.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        # WAL + NORMAL: a crash may lose the last writes here, never corrupt the
        # file; what is lost is read again from the topic (after the checkpoint).
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._claim(cluster_id)

    def _claim(self, cluster_id: str) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'cluster_id'").fetchone()
        if row is not None and row[0] == cluster_id:
            return
        with self._transaction():
            self._db.execute("DELETE FROM entries")
            self._db.execute("DELETE FROM checkpoints")
            self._db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('cluster_id', ?)", (cluster_id,)
            )

    def _transaction(self) -> sqlite3.Connection:
        self._db.execute("BEGIN")
        return self._db

    def get(self, partition: int, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM entries WHERE partition = ? AND key = ?", (partition, key)
            ).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def checkpoint(self, partition: int) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT next_offset FROM checkpoints WHERE partition = ?", (partition,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def apply(
        self,
        writes: Iterable[LedgerWrite],
        checkpoints: dict[int, int],
        now_ms: int | None = None,
    ) -> None:
        """Store entries and move checkpoints forward, in one SQLite transaction.

        An entry ages from when it was written (its `at_ms`), not from when it
        was copied here, so a restored entry expires when the topic drops it."""
        now_ms = now_ms or int(time.time() * 1000)
        rows = [
            (w.partition, w.key, orjson.dumps(w.value), int(w.value.get("at_ms") or now_ms))
            for w in writes
        ]
        with self._lock:
            self._apply(rows, checkpoints)

    def _apply(self, rows: list[tuple[int, str, bytes, int]], checkpoints: dict[int, int]) -> None:
        db = self._transaction()
        try:
            db.executemany(
                "INSERT OR REPLACE INTO entries (partition, key, value, updated_ms) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT INTO checkpoints (partition, next_offset) VALUES (?, ?) "
                "ON CONFLICT (partition) DO UPDATE SET next_offset = "
                "max(next_offset, excluded.next_offset)",
                list(checkpoints.items()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete(self, partition: int, key: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM entries WHERE partition = ? AND key = ?", (partition, key)
            )

    def expire(self, older_than_ms: int) -> int:
        with self._lock:
            cursor = self._db.execute("DELETE FROM entries WHERE updated_ms < ?", (older_than_ms,))
            return int(cursor.rowcount)

    def count(self, partition: int | None = None) -> int:
        with self._lock:
            if partition is None:
                return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])
            row = self._db.execute("SELECT count(*) FROM entries WHERE partition = ?", (partition,))
            return int(row.fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
