"""`hub cdc source`: Debezium's PostgreSQL connectors in a Kafka Connect standalone worker.

Kafka Connect is how Debezium runs in production, so the change events reach
Kafka the same way here: JSON envelopes keyed by the row's primary key, on
`cdc.<source>.<table>.v1` (a RegexRouter renames Debezium's default topics).
Connect keeps each connector's position (the LSN) in an offsets file under
HUB_HOME, so a restarted source resumes where it stopped; PostgreSQL keeps
the WAL it has not confirmed in the replication slot meanwhile.

The same worker runs the transactional outbox's relay (producers/outbox.py):
a second connector, with its own slot and publication, that captures only
`hub_outbox` and turns each row into the hub event it holds. It is a connector
of its own because its records are not Debezium's JSON: the key is the
outbox's string key and the value the payload's raw bytes, so consumers read
it exactly as a record EventProducer wrote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import httpx

from core.crypto import Keyring
from core.kafka_preflight import check_connection
from core.kafka_security import connect_jvm_options, connect_secret_values, connect_worker_security
from core.settings import Settings
from core.topics import cdc_topic
from hub.connect_secrets import build_provider, provider_properties, reference, write_sealed
from hub.local_kafka import DEPLOY_DIR, resolve_classpath, server_env
from producers.outbox import HEADER_COLUMNS
from producers.outbox import TABLE as OUTBOX_TABLE

DEBEZIUM_DIR = DEPLOY_DIR.parent / "debezium"
CONNECTOR = "hub-cdc-postgres"
OUTBOX_CONNECTOR = "hub-outbox-postgres"
_TOPIC_MATCHES = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _escaped(value: str) -> str:
    # A .properties value is one line: Java's Properties.load reads the two characters \n
    # back as a newline (a PEM certificate chain has several).
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def kafka_security_properties(settings: Settings) -> dict[str, str]:
    """How the worker and the clients it makes for the connectors reach Kafka (TLS, SASL).
    Secrets are references to the sealed file (kafka_connect_secrets holds their values)."""
    cert = settings.kafka_ssl_cert_file
    security = connect_worker_security(
        settings,
        lambda name: reference(sealed_file(settings), name),
        cert.read_text() if cert is not None else None,
    )
    return {key: _escaped(value) for key, value in security.items()}


def kafka_connect_secrets(settings: Settings) -> dict[str, str]:
    key = settings.kafka_ssl_key_file
    return connect_secret_values(settings, key.read_text() if key is not None else None)


def worker_properties(settings: Settings, offsets_file: Path) -> str:
    return _properties(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            **kafka_security_properties(settings),
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


def sealed_file(settings: Settings) -> Path:
    """Where the worker's sealed secrets live (ciphertext only, see hub/connect_secrets.py)."""
    return _workdir(settings) / "secrets.sealed"


def _workdir(settings: Settings) -> Path:
    return settings.home / "cdc" / f"{settings.cdc_source_name}-{settings.cdc_slot_name}"


def connect_secrets(settings: Settings) -> dict[str, str]:
    """The values the connectors' configs reference instead of holding them."""
    return {
        "database.password": unquote(urlsplit(settings.source_dsn).password or "hub"),
        **kafka_connect_secrets(settings),
    }


def _database(settings: Settings) -> dict[str, object]:
    dsn = urlsplit(settings.source_dsn)
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": 1,
        "database.hostname": dsn.hostname or "127.0.0.1",
        "database.port": dsn.port or 5432,
        "database.user": unquote(dsn.username or "hub"),
        # A reference Connect resolves through the hub's config provider when it starts
        # the connector: the password itself is never in a properties file.
        "database.password": reference(sealed_file(settings), "database.password"),
        "database.dbname": dsn.path.lstrip("/") or "school_erp",
    }


def connector_properties(settings: Settings) -> str:
    source = settings.cdc_source_name
    tables = ",".join(f"public.{t}" for t in settings.tables)
    return _properties(
        {
            "name": CONNECTOR,
            **_database(settings),
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


def outbox_prefix(settings: Settings) -> str:
    """Debezium's topic prefix (and logical server name) for the relay.

    Only the predicates see the topic it names (`<prefix>.public.hub_outbox`):
    the router renames every outbox record to its event's topic."""
    return f"{settings.cdc_source_name}-outbox"


def outbox_connector_properties(settings: Settings) -> str:
    """The relay: one Kafka record per outbox row, as EventProducer would have written it."""
    prefix = outbox_prefix(settings)
    raw_topic = rf"{prefix}\\.public\\.{OUTBOX_TABLE}"
    heartbeats = rf"__debezium-heartbeat\\.{prefix}"
    headers = ",".join(f"{column}:header:hub.{name}" for column, name in HEADER_COLUMNS.items())
    return _properties(
        {
            "name": OUTBOX_CONNECTOR,
            **_database(settings),
            "topic.prefix": outbox_prefix(settings),
            "plugin.name": "pgoutput",
            "slot.name": settings.outbox_slot_name,
            "publication.name": settings.outbox_slot_name,
            "publication.autocreate.mode": "filtered",
            "table.include.list": f"public.{OUTBOX_TABLE}",
            # The table is empty by design (each row is deleted in the transaction
            # that wrote it), so there is nothing to snapshot: every event is in
            # the WAL the slot has kept since it was created (install_outbox).
            "snapshot.mode": "no_data",
            # Debezium confirms an LSN to the slot only when a record at or past it
            # reached Kafka; with the outbox quiet and the ERP busy, no outbox record
            # does, and the slot would hold ever more WAL. Each heartbeat writes a
            # logical message (no table needed) whose LSN the next heartbeat carries.
            "heartbeat.interval.ms": 10_000,
            "heartbeat.action.query": (
                "SELECT pg_logical_emit_message(false, 'hub-outbox-heartbeat', now()::text)"
            ),
            "poll.interval.ms": 50,
            "binary.handling.mode": "bytes",
            # No tombstones for the outbox's DELETEs (the router would drop them anyway).
            "tombstones.on.delete": "false",
            # Only the hub's headers and the router's `id`, no __debezium.context.* ones.
            "extended.headers.enabled": "false",
            # Key: aggregateid as UTF-8, which Kafka's default partitioner hashes
            # with murmur2, exactly as the hub's producers do (hub/kafka.py), so an
            # invoice's relayed events share a partition with everything else about it.
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            # Value: the payload column's bytes as they are (JsonConverter would base64
            # them); the heartbeats, which are structs, as JSON.
            "value.converter": "io.debezium.converters.BinaryDataConverter",
            "value.converter.delegate.converter.type": (
                "org.apache.kafka.connect.json.JsonConverter"
            ),
            "value.converter.delegate.converter.type.schemas.enable": "false",
            "header.converter": "org.apache.kafka.connect.storage.StringConverter",
            "topic.creation.default.replication.factor": 1,
            "topic.creation.default.partitions": settings.topic_partitions,
            # Drop what is neither an outbox row nor a heartbeat (such as the logical
            # messages the heartbeat writes). Heartbeats must reach Kafka: Connect
            # commits no offset for a dropped record, so only they move the slot's LSN.
            "transforms": "relayedOnly,outbox",
            "transforms.relayedOnly.type": "org.apache.kafka.connect.transforms.Filter",
            "transforms.relayedOnly.predicate": "isRelayed",
            "transforms.relayedOnly.negate": "true",
            "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
            "transforms.outbox.predicate": "isOutbox",
            "transforms.outbox.route.by.field": "aggregatetype",
            "transforms.outbox.route.topic.replacement": "${routedByValue}",
            "transforms.outbox.table.field.event.id": "id",
            "transforms.outbox.table.field.event.key": "aggregateid",
            "transforms.outbox.table.field.event.payload": "payload",
            "transforms.outbox.table.fields.additional.placement": headers,
            "transforms.outbox.table.expand.json.payload": "false",
            # Rows are only ever inserted (and deleted); an UPDATE is a bug to log loudly.
            "transforms.outbox.table.op.invalid.behavior": "error",
            "predicates": "isOutbox,isRelayed",
            "predicates.isOutbox.type": _TOPIC_MATCHES,
            "predicates.isOutbox.pattern": raw_topic,
            "predicates.isRelayed.type": _TOPIC_MATCHES,
            "predicates.isRelayed.pattern": f"{raw_topic}|{heartbeats}",
        }
    )


def status_url(settings: Settings, connector: str = CONNECTOR) -> str:
    return f"http://127.0.0.1:{settings.cdc_connect_port}/connectors/{connector}/status"


def _running(settings: Settings, connector: str) -> bool:
    try:
        status = httpx.get(status_url(settings, connector), timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    tasks = status.get("tasks") or []
    return (
        status.get("connector", {}).get("state") == "RUNNING"
        and bool(tasks)
        and all(t.get("state") == "RUNNING" for t in tasks)
    )


def streaming(settings: Settings) -> bool:
    """Connect says both connectors (CDC and the outbox relay) and their tasks are RUNNING."""
    return all(_running(settings, name) for name in (CONNECTOR, OUTBOX_CONNECTOR))


def run_source(settings: Settings, heap: str = "512m") -> NoReturn:
    """Replace this process with the Connect worker (so signals reach the JVM directly)."""
    # The worker would log refused logins and go on retrying: say so before it starts.
    check_connection(settings)
    workdir = _workdir(settings)
    workdir.mkdir(parents=True, exist_ok=True)
    classpath = resolve_classpath(settings.home, DEBEZIUM_DIR)
    provider = build_provider(settings.home, classpath)
    write_sealed(
        sealed_file(settings),
        Keyring.from_settings(settings, create=True),
        connect_secrets(settings),
    )
    worker = workdir / "worker.properties"
    connector = workdir / "connector.properties"
    relay = workdir / "outbox.properties"
    # One offsets file for both: Connect keys each position by connector name.
    worker.write_text(
        worker_properties(settings, workdir / "offsets.dat")
        + _properties(provider_properties(settings))
    )
    connector.write_text(connector_properties(settings))
    relay.write_text(outbox_connector_properties(settings))
    argv = [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        *connect_jvm_options(settings),
        f"-Dlog4j2.configurationFile={DEBEZIUM_DIR / 'log4j2.properties'}",
        "-cp",
        f"{provider}{os.pathsep}{classpath}",
        "org.apache.kafka.connect.cli.ConnectStandalone",
        str(worker),
        str(connector),
        str(relay),
    ]
    os.execvpe("java", argv, worker_env(settings))  # noqa: S606, S607 - argv is built here


def worker_env(settings: Settings) -> dict[str, str]:
    """The JVM's environment: no HUB_ or KAFKA_ variable (its settings are in the
    properties files, its secrets sealed), except the master keys its config provider
    opens them with, when they are given inline rather than as the key file."""
    env = server_env()
    if settings.master_keys is not None:
        env["HUB_MASTER_KEYS"] = settings.master_keys.get_secret_value()
    return env
