"""CDC: commit -> external call latency, and sustained changes/s through the consumer.

Latency: 1,000 phone updates (50 students x 20, one transaction each, at a
steady rate); for each, the database commit time against the moment the SMS
gateway simulator received the contact update (same clock, same machine).

Throughput: a bulk update of N rows touching an unmapped column (no outbound
calls), timed until the consumer has written every change record. Baseline,
same run: the time until Debezium had written every change event. The ratio
is the consumer's rate over Debezium's.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from sqlalchemy import text

from bench.common import percentile
from core.kafka import client_config, watermarks
from core.ports import free_port
from core.settings import Settings
from core.topics import cdc_topic, changes_topic
from hub import erp
from hub.local_postgres import LocalPostgres, PostgresConfig
from hub.stack import HubStack
from simulators.client import SimulatorClient


def _phones(count: int, offset: int) -> list[str]:
    return [f"+9196{offset + n:08d}" for n in range(count)]


def _latency(
    settings: Settings, sim: SimulatorClient, students: int, rounds: int, per_second: float
) -> dict[str, Any]:
    engine = erp.engine_for(settings.source_dsn)
    ids = [f"B{n:05d}" for n in range(students)]
    with engine.begin() as conn:
        conn.execute(
            erp.students.insert(),
            [
                {
                    "id": i,
                    "name": "Student",
                    "email": f"{i.lower()}@greenwood.school.example",
                    "phone": "+919500000000",
                }
                for i in ids
            ],
        )
    time.sleep(3)
    committed: dict[str, float] = {}
    phones = iter(_phones(students * rounds, 10_000_000))
    interval = 1.0 / per_second
    for _ in range(rounds):
        for sid in ids:
            tick = time.perf_counter()
            phone = next(phones)
            erp.update_student(engine, sid, phone=phone)
            committed[phone] = time.time()
            time.sleep(max(0.0, interval - (time.perf_counter() - tick)))
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + 120
    while len(arrived) < len(committed) and time.monotonic() < deadline:
        for request in sim.requests("smsgateway"):
            phone = (request.get("body") or {}).get("phone")
            if phone in committed and request.get("response_status") == 200:
                arrived.setdefault(phone, request["received_at"])
        time.sleep(1.0)
    latencies = [(arrived[p] - committed[p]) * 1000 for p in arrived]
    return {
        "updates": len(committed),
        "arrived": len(arrived),
        "commit_to_call_ms_p50": round(percentile(latencies, 50), 1),
        "commit_to_call_ms_p99": round(percentile(latencies, 99), 1),
    }


def _end(settings: Settings, topic: str) -> int:
    consumer = Consumer({**client_config(settings), "group.id": "bench-end"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    total = sum(watermarks(consumer, topic, p)[1] for p in partitions)
    consumer.close()
    return total


def _throughput(settings: Settings, rows: int) -> dict[str, Any]:
    engine = erp.engine_for(settings.source_dsn)
    with engine.begin() as conn:
        conn.execute(
            erp.students.insert(),
            [{"id": f"T{n:06d}", "name": "Student", "grade": "1"} for n in range(rows)],
        )
    time.sleep(5)
    source = settings.cdc_source_name
    cdc_start = _end(settings, cdc_topic(source, "students"))
    changes_start = _end(settings, changes_topic(source, "students"))
    started = time.monotonic()
    with engine.begin() as conn:  # an unmapped column: the stream alone, no outbound calls
        conn.execute(text("UPDATE students SET grade = '2' WHERE id LIKE 'T%'"))
    debezium_done = consumer_done = None
    while consumer_done is None and time.monotonic() - started < 300:
        now = time.monotonic() - started
        if (
            debezium_done is None
            and _end(settings, cdc_topic(source, "students")) - cdc_start >= rows
        ):
            debezium_done = now
        if _end(settings, changes_topic(source, "students")) - changes_start >= rows:
            consumer_done = now
        time.sleep(0.2)
    assert debezium_done and consumer_done, "the bulk update did not get through in time"
    return {
        "rows": rows,
        "debezium_changes_per_s": round(rows / debezium_done),
        "consumer_changes_per_s": round(rows / consumer_done),
        "consumer_vs_debezium": round(debezium_done / consumer_done, 3),
    }


def run(
    settings: Settings,
    students: int = 50,
    rounds: int = 20,
    per_second: float = 40.0,
    rows: int = 20_000,
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="hub-bench-pg-"))
    root.chmod(0o755)
    database = LocalPostgres(PostgresConfig(root=root, port=free_port()))
    database.up()
    erp.install(erp.engine_for(database.cfg.dsn), seed=False)
    settings = settings.model_copy(
        update={"postgres_dsn": database.cfg.dsn, "cdc_connect_port": free_port()}
    )
    stack = HubStack(settings, settings.home / "logs")
    stack.start()
    try:
        sim = SimulatorClient(settings.simulator_url)
        return {
            **_latency(settings, sim, students, rounds, per_second),
            **_throughput(settings, rows),
        }
    finally:
        stack.stop()
        database.destroy()
        shutil.rmtree(root, ignore_errors=True)
