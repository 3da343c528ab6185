import pytest

from connectors.progress import PartitionProgress


def progress(*offsets: int) -> PartitionProgress:
    p = PartitionProgress()
    for offset in offsets:
        p.take(offset)
    return p


def test_nothing_finished_commits_nothing() -> None:
    assert progress(5, 6).committable is None


def test_the_finished_prefix_is_committable_and_a_slow_record_holds_it() -> None:
    p = progress(5, 6, 7)
    p.finish(6)
    assert p.committable is None  # 5 is still running
    p.finish(5)
    assert p.committable == 7
    assert p.in_flight == 1
    p.finish(7)
    assert p.committable == 8 and p.in_flight == 0


def test_offsets_with_gaps_commit_past_the_last_finished() -> None:
    p = progress(3, 10)  # 4..9 were compacted away or are markers
    p.finish(3)
    p.finish(10)
    assert p.committable == 11


def test_committable_with_previews_without_changing_anything() -> None:
    p = progress(1, 2, 3)
    p.finish(2)
    assert p.committable_with({1}) == 3
    assert p.committable_with({3}) is None
    assert p.committable is None  # the preview changed nothing
    assert p.committable_with({1, 3}) == 4


def test_records_arrive_in_order() -> None:
    p = progress(4)
    with pytest.raises(ValueError, match="in order"):
        p.take(4)
