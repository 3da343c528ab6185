"""The connector worker's pure helpers: offsets to commit and a message's source record."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE

from core.dead_letters import SourceRecord, source_of
from core.kafka import next_offsets


class FakeMessage:
    """Just enough of confluent_kafka.Message for the helpers."""

    def __init__(
        self,
        topic: str | None,
        partition: int | None,
        offset: int | None,
        *,
        timestamp: tuple[int, int] = (TIMESTAMP_CREATE_TIME, 1_700_000_000_000),
        key: bytes | None = b"t1:k1",
        value: bytes | None = b"\x00payload",
        headers: Any = None,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._timestamp, self._key, self._value, self._headers = timestamp, key, value, headers

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Any:
        return self._headers


def commits(messages: list[Any]) -> set[tuple[str, int, int]]:
    # TopicPartition's equality ignores the offset: compare plain tuples instead.
    return {(tp.topic, tp.partition, tp.offset) for tp in next_offsets(messages)}


TOPIC = "connector.twilio.commands.v1"


def test_next_offsets_is_highest_offset_plus_one_per_partition() -> None:
    messages = [
        FakeMessage(TOPIC, 0, 5),
        FakeMessage(TOPIC, 1, 10),
        FakeMessage(TOPIC, 0, 7),
        FakeMessage(TOPIC, 0, 6),
        FakeMessage(TOPIC, 1, 3),
        FakeMessage("other.v1", 0, 42),
    ]
    assert commits(messages) == {(TOPIC, 0, 8), (TOPIC, 1, 11), ("other.v1", 0, 43)}
    assert len(next_offsets(messages)) == 3


def test_next_offsets_out_of_order_batch_still_commits_past_the_highest() -> None:
    assert commits([FakeMessage(TOPIC, 2, 9), FakeMessage(TOPIC, 2, 1)]) == {(TOPIC, 2, 10)}


def test_next_offsets_first_offset_commits_one() -> None:
    assert commits([FakeMessage(TOPIC, 0, 0)]) == {(TOPIC, 0, 1)}


def test_next_offsets_of_empty_batch_commits_nothing() -> None:
    assert next_offsets([]) == []


def test_source_of_copies_the_message_coordinates() -> None:
    msg: Any = FakeMessage(
        TOPIC, 3, 17, headers=[("hub-event-type", b"connector.command"), ("x", "text")]
    )
    assert source_of(msg) == SourceRecord(
        TOPIC,
        3,
        17,
        1_700_000_000_000,
        b"t1:k1",
        b"\x00payload",
        [("hub-event-type", b"connector.command"), ("x", b"text")],
    )


def test_source_of_without_timestamp_or_headers() -> None:
    msg: Any = FakeMessage(TOPIC, 0, 1, timestamp=(TIMESTAMP_NOT_AVAILABLE, -1), key=None)
    record = source_of(msg)
    assert record.timestamp_ms is None
    assert record.key is None
    assert list(record.headers) == []
