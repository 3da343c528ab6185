"""`hub cdc source`: Debezium's PostgreSQL connector in a Kafka Connect standalone worker.

Kafka Connect is how Debezium runs in production, so the change events reach
Kafka the same way here: JSON envelopes keyed by the row's primary key, on
`cdc.<source>.<table>.v1` (a RegexRouter renames Debezium's default topics).
Connect keeps the connector's position (the LSN) in an offsets file under
HUB_HOME, so a restarted source resumes where it stopped; PostgreSQL keeps
the WAL it has not confirmed in the replication slot meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import httpx

from hub.local_kafka import DEPLOY_DIR, resolve_classpath
from hub.settings import Settings
from hub.topics import cdc_topic

DEBEZIUM_DIR = DEPLOY_DIR.parent / "debezium"
CONNECTOR = "hub-cdc-postgres"


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def worker_properties(settings: Settings, offsets_file: Path) -> str:
    return _properties(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "offset.storage.file.filename": offsets_file,
            # Short: after a crash, Debezium re-sends at most this much; the CDC
            # consumer recognises the repeats by their LSN.
            "offset.flush.interval.ms": 1000,
            "listeners": f"http://127.0.0.1:{settings.cdc_connect_port}",
            "plugin.discovery": "only_scan",
            # Exactly-once delivery into Kafka from the connector's side as well.
            "producer.enable.idempotence": "true",
        }
    )


def connector_properties(settings: Settings) -> str:
    dsn = urlsplit(settings.source_dsn)
    source = settings.cdc_source_name
    tables = ",".join(f"public.{t}" for t in settings.tables)
    return _properties(
        {
            "name": CONNECTOR,
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": 1,
            "database.hostname": dsn.hostname or "127.0.0.1",
            "database.port": dsn.port or 5432,
            "database.user": unquote(dsn.username or "hub"),
            "database.password": unquote(dsn.password or "hub"),
            "database.dbname": dsn.path.lstrip("/") or "school_erp",
            "topic.prefix": source,
            "plugin.name": "pgoutput",
            "slot.name": settings.cdc_slot_name,
            "publication.name": settings.cdc_slot_name,
            "publication.autocreate.mode": "filtered",
            "table.include.list": tables,
            "snapshot.mode": "initial",
            # Keeps the slot's LSN moving when the captured tables are quiet.
            "heartbeat.interval.ms": 10_000,
            # How long Debezium waits to fill a batch of changes (default 500 ms).
            "poll.interval.ms": 50,
            "decimal.handling.mode": "string",
            "tombstones.on.delete": "true",
            "topic.creation.default.replication.factor": 1,
            "topic.creation.default.partitions": settings.topic_partitions,
            "transforms": "route",
            "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.route.regex": rf"{source}\\.public\\.(.*)",
            "transforms.route.replacement": cdc_topic(source, "$1"),
        }
    )


def status_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.cdc_connect_port}/connectors/{CONNECTOR}/status"


def streaming(settings: Settings) -> bool:
    """Connect says the connector and its task are RUNNING."""
    try:
        status = httpx.get(status_url(settings), timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    tasks = status.get("tasks") or []
    return (
        status.get("connector", {}).get("state") == "RUNNING"
        and bool(tasks)
        and all(t.get("state") == "RUNNING" for t in tasks)
    )


def run_source(settings: Settings, heap: str = "512m") -> NoReturn:
    """Replace this process with the Connect worker (so signals reach the JVM directly)."""
    workdir = settings.home / "cdc" / f"{settings.cdc_source_name}-{settings.cdc_slot_name}"
    workdir.mkdir(parents=True, exist_ok=True)
    classpath = resolve_classpath(settings.home, DEBEZIUM_DIR)
    worker = workdir / "worker.properties"
    connector = workdir / "connector.properties"
    worker.write_text(worker_properties(settings, workdir / "offsets.dat"))
    connector.write_text(connector_properties(settings))
    argv = [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile={DEBEZIUM_DIR / 'log4j2.properties'}",
        "-cp",
        classpath,
        "org.apache.kafka.connect.cli.ConnectStandalone",
        str(worker),
        str(connector),
    ]
    os.execvp("java", argv)  # noqa: S606, S607 - argv is built here
