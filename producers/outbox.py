"""The transactional outbox: a module's event, written in the module's own database transaction.

A module that commits a change and then publishes its event can crash, or lose
Kafka, between the two: the invoice exists and nobody ever hears of it. With
the outbox the module inserts the encoded event into `hub_outbox` in the same
transaction as the change, so both are committed or neither is:

    with engine.begin() as conn:
        conn.execute(insert(invoices), [row])
        write_event(conn, invoice)

The relay is Debezium (`hub cdc source`, hub/cdc_source.py): it reads the
committed INSERT from PostgreSQL's WAL through its own replication slot, and its
Outbox Event Router sends the row to the topic in `aggregatetype`, keyed by
`aggregateid`, the `payload` bytes unchanged as the value (the hub's own Avro
encoding, so consumers decode it like any other hub event), and the header
columns as the same `hub.*` headers EventProducer writes.

The row is deleted again in the same transaction. Debezium reads the WAL, not
the table, so the INSERT is relayed all the same, and the router drops DELETE
events (Debezium's outbox documentation: "The SMT automatically filters out
DELETE operations on an outbox table"); the table stays empty instead of growing
until a job purges it. The WAL is kept for the relay by its replication slot,
so install_outbox() creates that slot when given its name: an event committed
before the relay first ran is not lost either.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    func,
    insert,
    text,
)

from core.kafka import HEADER_PREFIX
from core.settings import get_settings
from core.topics import default_topic_for
from schemas.codec import Codec, make_codec
from schemas.events import Event, encode_event

log = structlog.get_logger("producers.outbox")

TABLE = "hub_outbox"

# Outbox column -> hub header (without "hub."), in EventProducer's header order.
# The relay places each column into the Kafka header of that name; a unit test
# proves a relayed record gets exactly the headers EventProducer would write.
HEADER_COLUMNS: dict[str, str] = {
    "event_id": "event_id",
    "type": "event_type",
    "event_schema": "schema",
    "tenant": "tenant",
    "correlation_id": "correlation_id",
}

# Names of non-hub event ids become UUIDs in this namespace (hub ids already are UUIDs).
_EVENT_ID_NAMESPACE = uuid.UUID("6f1c3a52-0b7e-4d2a-9a43-5d1e0c6b8f21")

# PostgreSQL's rule for slot names; the publication (same name) is quoted as an identifier.
_SLOT_NAME = re.compile(r"[a-z0-9_]{1,63}")

metadata = MetaData()

outbox = Table(
    TABLE,
    metadata,
    # Debezium's default column names: id, aggregatetype, aggregateid, type, payload.
    Column("id", Uuid, primary_key=True),  # the event id, as a UUID (PostgreSQL's uuid type)
    Column("aggregatetype", String(249), nullable=False),  # the topic (Kafka's longest: 249)
    Column("aggregateid", String(255), nullable=False),  # the record key
    Column("type", String(255), nullable=False),  # the event type
    Column("payload", LargeBinary, nullable=False),  # the event, encoded by the hub's codec
    Column("event_id", String(64), nullable=False),  # verbatim, for the hub.event_id header
    Column("event_schema", String(255), nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


class OutboxError(Exception):
    pass


def row_id(event_id: str) -> uuid.UUID:
    """The row's primary key: the event id itself when it is a UUID (every hub id is)."""
    try:
        return uuid.UUID(event_id)
    except ValueError:
        return uuid.uuid5(_EVENT_ID_NAMESPACE, event_id)


def outbox_row(event: Event, *, topic: str | None = None, codec: Codec) -> dict[str, Any]:
    """The outbox row of `event`: what the relay turns into exactly one Kafka record."""
    target = topic or default_topic_for(event.SCHEMA)
    if target is None:
        raise OutboxError(f"{event.SCHEMA} has no default topic; pass topic=")
    h = event.header
    return {
        "id": row_id(h.event_id),
        "aggregatetype": target,
        "aggregateid": event.key(),
        "type": h.event_type,
        "payload": encode_event(codec, event),
        "event_id": h.event_id,
        "event_schema": event.SCHEMA,
        "tenant": h.tenant,
        "correlation_id": h.correlation_id,
    }


def relayed_headers(row: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The hub headers the relay puts on a row's record (besides Debezium's own `id`)."""
    return [
        (f"{HEADER_PREFIX}{header}", str(row[column]).encode())
        for column, header in HEADER_COLUMNS.items()
    ]


@lru_cache(maxsize=4)
def _codec_for(schema_registry_url: str | None) -> Codec:
    return make_codec(schema_registry_url)


def write_event(
    connection: Connection,
    event: Event,
    *,
    topic: str | None = None,
    codec: Codec | None = None,
) -> str:
    """Add `event` to the caller's open transaction; returns its topic.

    Nothing is sent now: the event reaches Kafka when, and only if, the
    transaction commits. The row is inserted and deleted again (see the module
    docstring), so call this once per event, inside the transaction that makes
    the change the event announces.
    """
    if _autocommits(connection):
        # Each statement would commit on its own: the event would no longer share
        # the fate of the change it announces.
        raise OutboxError("write_event needs a transaction; the connection is in AUTOCOMMIT")
    codec = codec or _codec_for(get_settings().schema_registry_url)
    row = outbox_row(event, topic=topic, codec=codec)
    connection.execute(insert(outbox), [row])
    connection.execute(delete(outbox).where(outbox.c.id == row["id"]))
    return str(row["aggregatetype"])


def _autocommits(connection: Connection) -> bool:
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return True
    # Set on the engine (create_engine(isolation_level="AUTOCOMMIT")), SQLAlchemy
    # puts the driver's connection in autocommit mode (psycopg, psycopg2).
    return getattr(connection.connection.dbapi_connection, "autocommit", False) is True


def install_outbox(engine: Engine, *, slot_name: str | None = None) -> None:
    """Create the outbox table (idempotent); with `slot_name`, the relay's publication and slot.

    REPLICA IDENTITY DEFAULT (the primary key) is all the relay needs: it acts
    on INSERTs only, and FULL would write every payload to the WAL a second
    time with its DELETE.
    """
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {TABLE} REPLICA IDENTITY DEFAULT"))
    if slot_name:
        create_relay_slot(engine, slot_name)


def create_relay_slot(engine: Engine, slot_name: str) -> None:
    """The relay's publication and replication slot, if missing (Debezium reuses both).

    From the moment the slot exists PostgreSQL keeps the WAL the relay has not
    confirmed, so an outbox row committed before the relay's first start is
    relayed when it starts. The publication comes first: pgoutput reads it as
    of each change, and a change older than its publication is not published.
    """
    if not _SLOT_NAME.fullmatch(slot_name):
        raise OutboxError(f"{slot_name!r} is not a replication slot name (a-z, 0-9, _)")
    with engine.begin() as conn:
        published = conn.execute(
            text("SELECT 1 FROM pg_publication WHERE pubname = :name"), {"name": slot_name}
        ).first()
        if published is None:
            conn.execute(text(f'CREATE PUBLICATION "{slot_name}" FOR TABLE public.{TABLE}'))
    with engine.begin() as conn:
        slot = conn.execute(
            text("SELECT 1 FROM pg_replication_slots WHERE slot_name = :name"),
            {"name": slot_name},
        ).first()
        if slot is None:
            # Its own transaction: a logical slot cannot be created in one that has written.
            conn.execute(
                text("SELECT pg_create_logical_replication_slot(:name, 'pgoutput')"),
                {"name": slot_name},
            )
            log.info("outbox.slot_created", slot=slot_name)
