"""Read a results topic's partitions from the beginning up to their current end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import structlog
from confluent_kafka import Consumer, TopicPartition

from hub.settings import Settings
from schemas.codec import Codec, DecodeError
from schemas.events import ConnectorResult, decode_as

log = structlog.get_logger("connectors.restore")


def restore_results(
    settings: Settings, topic: str, partitions: list[int], codec: Codec, timeout: float = 60.0
) -> Iterator[ConnectorResult]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            # assign() reads without joining a group; the id is never used to commit.
            "group.id": f"hub-ledger-restore-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        ends: dict[int, int] = {}
        start: list[TopicPartition] = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
                start.append(TopicPartition(topic, partition, low))
        consumer.assign(start)
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                partition, offset = msg.partition() or 0, msg.offset() or 0
                if partition in ends and offset + 1 >= ends[partition]:
                    del ends[partition]
                try:
                    yield decode_as(codec, msg.value(), ConnectorResult)
                except DecodeError:
                    continue
        if ends:
            log.warning("ledger.restore_incomplete", topic=topic, partitions=sorted(ends))
    finally:
        consumer.close()
