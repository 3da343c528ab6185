"""The transactional stage runner vs a raw at-least-once loop, on the same dedup workload.

The workload of ../shared/runtimes.md: records on 3 partitions, 5 % of them
exact duplicates of an earlier key; the processor drops a key it has seen
(state that must survive a restart) and writes one record per new key.

- baseline: a confluent-kafka loop, at-least-once — consume up to 500,
  produce, flush, commit; its state in memory only (lost with the process).
- runner: `processors.runner.StageRunner` with one dedup stage — outputs,
  state records and offsets in one transaction per batch, state restorable.

Both run in this process, in threads, against the same broker, interleaved
(baseline, runner, baseline, runner, …) with fresh topics and groups each
time; the ratio is the median of the pairs' ratios.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from core.kafka import (
    Record,
    admin_config,
    client_config,
    consume_batch,
    consumer_config,
    producer_config,
)
from core.settings import Settings
from core.topics import table_topic
from processors.runner import Stage, StageRunner, StepContext
from schemas.codec import SingleObjectCodec

RECORDS = 100_000
DUPLICATES = 0.05


def _topics(settings: Settings, *names: str, compact: str | None = None) -> None:
    admin = AdminClient(admin_config(settings))
    specs = [NewTopic(n, 3, 1) for n in names]
    if compact:
        specs.append(NewTopic(compact, 3, 1, config={"cleanup.policy": "compact"}))
    for future in admin.create_topics(specs).values():
        future.result(30)


def _preload(settings: Settings, topic: str) -> int:
    producer = Producer(producer_config(settings, "bench-load", **{"linger.ms": 20}))
    keys = int(RECORDS * (1 - DUPLICATES))
    body = b"x" * 300
    for n in range(RECORDS):
        key = f"k{n if n < keys else n - keys}".encode()
        while True:
            try:
                producer.produce(topic, key=key, value=body)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)
    return keys


def _count(settings: Settings, topic: str, expected: int, timeout: float = 300.0) -> float:
    """Seconds until a read_committed reader has seen `expected` records on `topic`."""
    reader = Consumer(
        {
            **client_config(settings),
            "group.id": f"bench-count-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    reader.subscribe([topic])
    seen, deadline = 0, time.monotonic() + timeout
    while seen < expected and time.monotonic() < deadline:
        seen += sum(1 for m in consume_batch(reader, 1000, 0.5) if not m.error())
    reader.close()
    if seen < expected:
        raise TimeoutError(f"{seen}/{expected} records on {topic}")
    return time.monotonic()


Started = list[float]  # when the processor saw its first record (timed from there)


def _raw_loop(
    settings: Settings, source: str, output: str, stop: threading.Event, started: Started
) -> None:
    consumer = Consumer(consumer_config(settings, f"bench-raw-{uuid.uuid4().hex}"))
    producer = Producer(producer_config(settings, "bench-raw"))
    consumer.subscribe([source])
    seen: set[bytes] = set()
    while not stop.is_set():
        batch = [m for m in consume_batch(consumer, 500, 0.2) if not m.error()]
        if batch and not started:
            started.append(time.monotonic())
        for msg in batch:
            key = msg.key() or b""
            if key not in seen:
                seen.add(key)
                producer.produce(output, key=key, value=msg.value())
        if batch:
            producer.flush(30)
            consumer.commit(asynchronous=False)
    consumer.close()


def _dedup(output: str, table: str, started: Started) -> Stage:
    def step(ctx: StepContext, msg: Message) -> list[Record]:
        if not started:
            started.append(time.monotonic())
        key = (msg.key() or b"").decode()
        seen = ctx.table(table)
        if key in seen:
            return []
        seen.set(key, 1)
        return [Record(output, msg.key(), msg.value(), [])]

    return Stage("bench", ("unused",), step, tables=(table,))


def _runner_loop(
    settings: Settings, source: str, output: str, stop: threading.Event, started: Started
) -> None:
    table = f"bench-{uuid.uuid4().hex[:8]}"
    _topics(settings, compact=table_topic(table))
    stage = _dedup(output, table, started)
    stage = Stage(stage.name, (source,), stage.step, tables=stage.tables)
    runner = StageRunner(
        settings.model_copy(update={"instance_id": uuid.uuid4().hex[:6]}),
        f"bench-runner-{uuid.uuid4().hex}",
        [stage],
        SingleObjectCodec(),
    )
    runner.run(stop)


def _one(settings: Settings, loop: Any) -> float:
    tag = uuid.uuid4().hex[:8]
    source, output = f"bench.in-{tag}.v1", f"bench.out-{tag}.v1"
    _topics(settings, source, output)
    keys = _preload(settings, source)
    stop = threading.Event()
    started: Started = []
    thread = threading.Thread(
        target=loop, args=(settings, source, output, stop, started), daemon=True
    )
    thread.start()
    done = _count(settings, output, keys)
    stop.set()
    thread.join(30)
    return RECORDS / (done - started[0])


def run(settings: Settings, pairs: int = 3) -> dict[str, Any]:
    _one(settings, _raw_loop)  # warm-up: coordinators, transaction log
    raw, runner = [], []
    for _ in range(pairs):
        raw.append(_one(settings, _raw_loop))
        runner.append(_one(settings, _runner_loop))
    ratios = [r / b for r, b in zip(runner, raw, strict=True)]
    return {
        "records": RECORDS,
        "raw_at_least_once_per_s": [round(r) for r in raw],
        "runner_transactional_per_s": [round(r) for r in runner],
        "median_raw_per_s": round(statistics.median(raw)),
        "median_runner_per_s": round(statistics.median(runner)),
        "median_ratio": round(statistics.median(ratios), 3),
    }
