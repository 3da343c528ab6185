"""LedgerStore: the SQLite copy of the ledger topic, its checkpoints and its retention."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.ledger import LedgerWrite
from connectors.ledger_store import LedgerStore

CLUSTER = "cluster-A"
NOW = 1_750_000_000_000
DAY = 86_400_000


def value(command_id: str = "cmd-1", at_ms: int = NOW, **extra: Any) -> dict[str, Any]:
    return {
        "state": "delivered",
        "command_id": command_id,
        "partition": 0,
        "offset": 7,
        "at_ms": at_ms,
        "result": {"provider_ref": "SM1"},
        **extra,
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledgers" / "twilio" / "ledger.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[LedgerStore]:
    opened = LedgerStore(path, CLUSTER)
    yield opened
    opened.close()


def test_a_new_store_is_empty_and_creates_its_directory(path: Path, store: LedgerStore) -> None:
    assert path.exists()
    assert store.count() == 0
    assert store.get(0, "k:t1:a") is None
    assert store.checkpoint(0) == 0


def test_apply_then_get_round_trips_per_partition(store: LedgerStore) -> None:
    stored = value("cmd-a")
    store.apply([LedgerWrite(1, "k:t1:a", stored)], {1: 8}, now_ms=NOW)
    assert store.get(1, "k:t1:a") == stored
    assert store.get(0, "k:t1:a") is None  # the same key on another partition is another entry
    assert store.get(1, "k:t1:b") is None
    assert store.checkpoint(1) == 8
    assert store.checkpoint(0) == 0


def test_a_later_write_of_a_key_replaces_it(store: LedgerStore) -> None:
    store.apply([LedgerWrite(0, "k:t1:a", value("first", state="intent"))], {0: 3}, now_ms=NOW)
    store.apply([LedgerWrite(0, "k:t1:a", value("second"))], {0: 4}, now_ms=NOW)
    got = store.get(0, "k:t1:a")
    assert got is not None
    assert (got["command_id"], got["state"]) == ("second", "delivered")
    assert store.count() == 1


def test_checkpoints_only_move_forward(store: LedgerStore) -> None:
    store.apply([], {0: 10, 1: 3}, now_ms=NOW)
    store.apply([], {0: 4, 1: 5}, now_ms=NOW)
    assert (store.checkpoint(0), store.checkpoint(1)) == (10, 5)
    store.apply([], {0: 12}, now_ms=NOW)
    assert (store.checkpoint(0), store.checkpoint(1)) == (12, 5)


def test_a_restored_entry_ages_from_its_own_at_ms(store: LedgerStore) -> None:
    # Copied today from the topic, but written 40 days ago: it goes with a 30-day retention.
    store.apply(
        [
            LedgerWrite(0, "k:t1:old", value("old", at_ms=NOW - 40 * DAY)),
            LedgerWrite(0, "k:t1:new", value("new", at_ms=NOW - 2 * DAY)),
        ],
        {0: 2},
        now_ms=NOW,
    )
    assert store.expire(NOW - 30 * DAY) == 1
    assert store.get(0, "k:t1:old") is None
    assert store.get(0, "k:t1:new") is not None
    assert store.checkpoint(0) == 2  # expiry is not a reason to read the topic again


def test_expire_keeps_an_entry_exactly_at_the_horizon(store: LedgerStore) -> None:
    store.apply([LedgerWrite(0, "k:t1:a", value(at_ms=NOW - 30 * DAY))], {}, now_ms=NOW)
    assert store.expire(NOW - 30 * DAY) == 0
    assert store.count() == 1


def test_an_entry_without_at_ms_ages_from_when_it_was_applied(store: LedgerStore) -> None:
    # Order marks carry no at_ms.
    store.apply([LedgerWrite(0, "o:t1:row-1", {"version": 3, "idempotency_key": "a"})], {}, NOW)
    assert store.expire(NOW - 1) == 0
    assert store.expire(NOW + 1) == 1
    assert store.get(0, "o:t1:row-1") is None


def test_delete_removes_one_key_of_one_partition(store: LedgerStore) -> None:
    store.apply(
        [
            LedgerWrite(0, "k:t1:a", value("a0")),
            LedgerWrite(1, "k:t1:a", value("a1")),
            LedgerWrite(0, "k:t1:b", value("b0")),
        ],
        {},
        now_ms=NOW,
    )
    store.delete(0, "k:t1:a")
    assert store.get(0, "k:t1:a") is None
    assert store.get(1, "k:t1:a") == value("a1")
    assert store.get(0, "k:t1:b") == value("b0")
    store.delete(0, "k:t1:missing")  # nothing to delete is not an error
    assert store.count() == 2


def test_count_per_partition(store: LedgerStore) -> None:
    writes = [LedgerWrite(0, f"k:t1:{i}", value(str(i))) for i in range(3)]
    writes.append(LedgerWrite(2, "k:t1:x", value("x")))
    store.apply(writes, {}, now_ms=NOW)
    assert store.count() == 4
    assert (store.count(0), store.count(1), store.count(2)) == (3, 0, 1)


def test_reopening_the_same_file_for_the_same_cluster_keeps_everything(path: Path) -> None:
    first = LedgerStore(path, CLUSTER)
    first.apply([LedgerWrite(2, "k:t1:a", value("a"))], {2: 17, 0: 4}, now_ms=NOW)
    first.close()
    again = LedgerStore(path, CLUSTER)
    try:
        assert again.get(2, "k:t1:a") == value("a")
        assert (again.checkpoint(2), again.checkpoint(0)) == (17, 4)
        assert again.count() == 1
    finally:
        again.close()


def test_another_cluster_wipes_the_file(path: Path) -> None:
    first = LedgerStore(path, CLUSTER)
    first.apply([LedgerWrite(0, "k:t1:a", value("a"))], {0: 9}, now_ms=NOW)
    first.close()
    other = LedgerStore(path, "cluster-B")
    try:
        assert other.count() == 0
        assert other.get(0, "k:t1:a") is None
        assert other.checkpoint(0) == 0
    finally:
        other.close()
    # Wiped, not hidden: going back to the first cluster does not bring the entries back.
    back = LedgerStore(path, CLUSTER)
    try:
        assert back.count() == 0
        assert back.checkpoint(0) == 0
    finally:
        back.close()


def test_a_failed_apply_stores_nothing_and_leaves_the_store_usable(store: LedgerStore) -> None:
    bad_checkpoints: dict[int, Any] = {0: None}  # NOT NULL: fails inside the transaction
    with pytest.raises(sqlite3.IntegrityError):
        store.apply([LedgerWrite(0, "k:t1:a", value("a"))], bad_checkpoints, now_ms=NOW)
    assert store.get(0, "k:t1:a") is None
    store.apply([LedgerWrite(0, "k:t1:b", value("b"))], {0: 1}, now_ms=NOW)
    assert store.get(0, "k:t1:b") == value("b")
    assert store.checkpoint(0) == 1
