"""The transactional stage runner, killed inside a transaction: nothing lost, nothing twice."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.kafka import admin_config, producer_config, read_to_end
from core.settings import Settings
from core.topics import table_topic
from hub.local_kafka import LocalBroker

pytestmark = pytest.mark.kafka

CHILD = Path(__file__).with_name("runner_child.py")
KEYS = 200


def _topics(settings: Settings, tag: str) -> tuple[str, str, str]:
    source, output, table = f"test.runner-in-{tag}.v1", f"test.runner-out-{tag}.v1", f"t-{tag}"
    admin = AdminClient(admin_config(settings))
    futures = admin.create_topics(
        [
            NewTopic(source, 3, 1),
            NewTopic(output, 3, 1),
            NewTopic(table_topic(table), 3, 1, config={"cleanup.policy": "compact"}),
        ]
    )
    for future in futures.values():
        future.result(30)
    return source, output, table


def _child(settings: Settings, tag: str, topics: tuple[str, str, str], *extra: str) -> list[str]:
    source, output, table = topics
    return [
        sys.executable,
        str(CHILD),
        f"--bootstrap={settings.bootstrap_servers}",
        f"--group=test-runner-{tag}",
        f"--source={source}",
        f"--output={output}",
        f"--table={table}",
        *extra,
    ]


def _lag(settings: Settings, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(3)]
        committed = consumer.committed(parts, timeout=10)
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
        return sum(end - max(tp.offset, 0) for tp, end in zip(committed, ends, strict=True))
    finally:
        consumer.close()


def test_killed_inside_a_transaction_the_runner_loses_no_output_and_repeats_none(
    broker: LocalBroker,
) -> None:
    settings = Settings(kafka_bootstrap_servers=broker.cfg.bootstrap)
    tag = uuid.uuid4().hex[:8]
    topics = _topics(settings, tag)
    source, output, table = topics
    producer = Producer(producer_config(settings, "test"))
    # Every key once, then the first half again: 300 records, 200 distinct keys.
    for i in [*range(KEYS), *range(KEYS // 2)]:
        producer.produce(source, key=f"k{i}", value=f"v{i}".encode())
    assert producer.flush(10) == 0

    dying = subprocess.run(
        _child(settings, tag, topics, "--die-at-commit=3"), timeout=90, check=False
    )
    assert dying.returncode == 9  # it died inside its third transaction, as planned
    partial = [m.key() for m in read_to_end(settings, output)]
    assert 0 < len(partial) < KEYS  # two batches were committed before it died

    survivor = subprocess.Popen(_child(settings, tag, topics))
    try:
        deadline = time.monotonic() + 90
        outputs: list[bytes | None] = []
        while time.monotonic() < deadline:
            outputs = [m.key() for m in read_to_end(settings, output)]
            if len(outputs) >= KEYS and _lag(settings, f"test-runner-{tag}", source) == 0:
                break
            time.sleep(0.5)
    finally:
        survivor.terminate()
        survivor.wait(30)
    assert sorted(outputs) == sorted(f"k{i}".encode() for i in range(KEYS))  # each once
    state = {m.key() for m in read_to_end(settings, table_topic(table))}
    assert state == {f"k{i}".encode() for i in range(KEYS)}
    assert _lag(settings, f"test-runner-{tag}", source) == 0
