"""DLQ replay rate: 100k dead letters, `hub dlq replay` vs raw consume -> produce.

The replay reads and decodes every dead letter, checks its state, and writes
each original record plus its REPLAYED mark in transactions (exactly once).
The baseline, same run, same records: a plain confluent-kafka consumer
copying the dead-letter topic's raw bytes to another topic, no decoding, no
transactions — the fastest a copy can go on this broker.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.dead_letters import Failure, SourceRecord, build_dead_letter
from core.kafka import admin_config, client_config, event_headers, producer_config, watermarks
from core.settings import Settings
from core.topics import dlq_topic
from hub.dlq.actions import Operator
from hub.dlq.model import DlqFilter, select
from hub.dlq.store import load_dead_letters
from schemas.codec import SingleObjectCodec
from schemas.events import DlqAction, encode_event

STAGE = "router"


def _topic(settings: Settings, name: str) -> str:
    admin = AdminClient(admin_config(settings))
    admin.create_topics([NewTopic(name, settings.topic_partitions, 1)])[name].result(30)
    return name


def _write_dead_letters(settings: Settings, count: int) -> None:
    codec = SingleObjectCodec()
    producer = Producer(producer_config(settings, "bench-dlq", **{"linger.ms": 20}))
    for n in range(count):
        source = SourceRecord(
            "notifications.requests.v1",
            n % 3,
            n,
            None,
            f"t:{n}".encode(),
            os.urandom(300),
            [("hub.tenant", b"bench")],
        )
        letter = build_dead_letter(
            source, Failure(ValueError("bench"), retryable=False), stage=STAGE, worker="bench"
        )
        value = encode_event(codec, letter)
        while True:
            try:
                producer.produce(
                    dlq_topic(STAGE), key=source.key, value=value, headers=event_headers(letter)
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush()


def raw_copy(settings: Settings, source: str, target: str, count: int) -> float:
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(source, timeout=10).topics[source].partitions
    consumer.assign(
        [TopicPartition(source, p, watermarks(consumer, source, p)[0]) for p in partitions]
    )
    producer = Producer(producer_config(settings, "bench-copy"))
    started, copied = time.perf_counter(), 0
    while copied < count:
        for msg in consumer.consume(1000, 1.0):
            if msg.error():
                continue
            while True:
                try:
                    producer.produce(
                        target, key=msg.key(), value=msg.value(), headers=msg.headers()
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            copied += 1
        producer.poll(0)
    producer.flush()
    consumer.close()
    return copied / (time.perf_counter() - started)


def run(settings: Settings, count: int = 100_000) -> dict[str, Any]:
    _write_dead_letters(settings, count)
    baseline = raw_copy(settings, dlq_topic(STAGE), _topic(settings, "bench.raw-copy"), count)
    target = _topic(settings, "bench.replay-target")
    codec = SingleObjectCodec()
    started = time.perf_counter()
    records, _ = load_dead_letters(settings, codec, [STAGE])
    loaded = time.perf_counter()
    chosen = select(records, DlqFilter(stage=STAGE))
    report = Operator(settings, codec, who="bench").run(
        DlqAction.REPLAY, chosen, {"bench": True}, to=target
    )
    finished = time.perf_counter()
    rate = report.done / (finished - started)
    return {
        "dead_letters": count,
        "replayed": report.done,
        "replay_per_s": round(rate),
        "of_which_reading_s": round(loaded - started, 1),
        "raw_consume_produce_per_s": round(baseline),
        "replay_vs_raw": round(rate / baseline, 3),
    }
