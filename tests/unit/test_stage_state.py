"""The stage runner's state store: per partition, journaled, undoable."""

import pytest

from processors.state import Change, StateStore

T, U = "invoices", "links"


def store() -> StateStore:
    s = StateStore((T, U))
    s.load(T, 0, {"a": 1})
    s.load(U, 0, {})
    return s


def test_a_batch_writes_each_changed_key_once_with_its_final_value() -> None:
    s = store()
    s.begin_record()
    s.table(T, 0).set("a", 2)
    s.begin_record()
    s.table(T, 0).set("a", 3)
    s.table(T, 0).set("b", {"x": 1})
    s.table(U, 0).set("k", [1])
    assert sorted(s.changes(), key=lambda c: (c.table, c.key)) == [
        Change(T, 0, "a", 3),
        Change(T, 0, "b", {"x": 1}),
        Change(U, 0, "k", [1]),
    ]


def test_a_deleted_key_is_written_as_none_and_pop_returns_it() -> None:
    s = store()
    s.begin_record()
    assert s.table(T, 0).pop("a") == 1
    assert s.table(T, 0).pop("a", "gone") == "gone"
    assert s.changes() == [Change(T, 0, "a", None)]
    assert "a" not in s.table(T, 0)


def test_a_failed_record_leaves_no_trace_in_state_or_changes() -> None:
    s = store()
    s.begin_record()
    s.table(T, 0).set("a", 2)  # an earlier record of the batch
    s.begin_record()
    s.table(T, 0).set("a", 99)
    s.table(T, 0).set("new", 1)
    s.undo_record()
    assert s.table(T, 0).get("a") == 2
    assert "new" not in s.table(T, 0)
    assert s.changes() == [Change(T, 0, "a", 2)]


def test_undoing_a_record_that_set_the_same_value_keeps_the_earlier_change() -> None:
    s = store()
    s.begin_record()
    s.table(T, 0).set("a", 1)  # same object as before: still a change of the batch
    s.begin_record()
    s.table(T, 0).set("a", 5)
    s.undo_record()
    assert s.changes() == [Change(T, 0, "a", 1)]


def test_an_aborted_batch_returns_to_the_committed_state() -> None:
    s = store()
    s.begin_record()
    s.table(T, 0).set("a", 2)
    s.table(T, 0).delete("a")
    s.table(T, 0).set("b", 3)
    s.undo_batch()
    assert dict(s.table(T, 0).items()) == {"a": 1}
    assert s.changes() == []


def test_a_committed_batch_starts_the_next_with_no_changes() -> None:
    s = store()
    s.begin_record()
    s.table(T, 0).set("a", 2)
    s.commit_batch()
    assert s.changes() == []
    s.undo_batch()
    assert s.table(T, 0).get("a") == 2


def test_partitions_are_independent_and_dropped_whole() -> None:
    s = store()
    s.load(T, 1, {"a": "one"})
    assert s.table(T, 1).get("a") == "one" and s.table(T, 0).get("a") == 1
    s.drop(1)
    assert s.partitions() == [0]
    assert s.table(T, 1).get("a") is None


def test_undo_after_the_partition_was_revoked_does_not_resurrect_it() -> None:
    s = store()
    s.load(T, 1, {})
    s.begin_record()
    s.table(T, 1).set("x", 1)
    s.drop(1)
    s.undo_batch()
    assert 1 not in s.partitions()


def test_none_is_not_a_value_and_unknown_tables_are_an_error() -> None:
    s = store()
    with pytest.raises(ValueError, match="delete"):
        s.table(T, 0).set("a", None)
    with pytest.raises(KeyError, match="no table"):
        s.table("nope", 0)


def test_items_is_a_copy_so_a_sweep_can_delete_while_iterating() -> None:
    s = store()
    s.table(T, 0).set("b", 2)
    for key, _ in s.table(T, 0).items():
        s.table(T, 0).delete(key)
    assert len(s.table(T, 0)) == 0
