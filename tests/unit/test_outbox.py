"""The transactional outbox's pure parts: the row an event becomes, and the relay's connector."""

from __future__ import annotations

import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, func, select
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine

from core.kafka import event_headers
from core.settings import Settings
from core.topics import INVOICES, PAYMENT_REQUESTS
from hub import cdc_source
from producers import OutboxError, outbox, outbox_row, write_event
from producers.outbox import HEADER_COLUMNS, metadata, relayed_headers, row_id
from schemas.codec import SingleObjectCodec
from schemas.events import Contact, EventHeader, Invoice, PaymentRequested, decode_event

CODEC = SingleObjectCodec()


def invoice(**overrides: Any) -> Invoice:
    fields: dict[str, Any] = {
        "header": EventHeader.new(Invoice.EVENT_TYPE, "greenwood", source="fee-module"),
        "invoice_id": "INV-2026-0001",
        "student_id": "12345",
        "student_name": "Rohan Sharma",
        "description": "Term 1 fees",
        "amount_minor": 50_000_00,
        "due_date": date(2026, 7, 1),
        "parent": Contact(name="Mrs. Sharma", phone="+919876543211"),
    }
    return Invoice(**{**fields, **overrides})


def request_for(inv: Invoice) -> PaymentRequested:
    return PaymentRequested(
        header=inv.header.caused(PaymentRequested.EVENT_TYPE, source="fee-module"),
        invoice_id=inv.invoice_id,
        student_id=inv.student_id,
        student_name=inv.student_name,
        description=inv.description,
        amount_minor=inv.amount_minor,
        parent=inv.parent,
    )


# --- the row -------------------------------------------------------------------


def test_an_event_becomes_one_row_routed_keyed_and_encoded_like_event_producer() -> None:
    inv = invoice()
    row = outbox_row(inv, codec=CODEC)
    assert row["id"] == uuid.UUID(inv.header.event_id)
    assert row["aggregatetype"] == INVOICES
    assert row["aggregateid"] == inv.key() == "greenwood:INV-2026-0001"
    assert row["type"] == "fees.invoice.issued"
    assert decode_event(CODEC, row["payload"]) == inv


def test_the_relayed_headers_are_exactly_the_ones_event_producer_writes() -> None:
    for event in (inv := invoice(), request_for(inv)):
        row = outbox_row(event, codec=CODEC)
        assert relayed_headers(row) == event_headers(event)


def test_each_event_goes_to_its_own_default_topic_unless_told_otherwise() -> None:
    inv = invoice()
    assert outbox_row(request_for(inv), codec=CODEC)["aggregatetype"] == PAYMENT_REQUESTS
    assert outbox_row(inv, topic="fees.invoices.v2", codec=CODEC)["aggregatetype"] == (
        "fees.invoices.v2"
    )


class Unlisted(Invoice):
    SCHEMA: ClassVar[str] = "com.integrationhub.Unlisted"


def test_an_event_without_a_default_topic_needs_one() -> None:
    stray = Unlisted(**invoice().model_dump())
    with pytest.raises(OutboxError, match=r"com\.integrationhub\.Unlisted has no default topic"):
        outbox_row(stray, codec=CODEC)


def test_a_non_uuid_event_id_still_gets_a_stable_row_id() -> None:
    assert row_id("not-a-uuid") == row_id("not-a-uuid") != row_id("not-a-uuid-2")
    assert row_id(uuid.UUID(int=7).hex) == uuid.UUID(int=7)


# --- writing, in the caller's transaction (SQLite stands in for PostgreSQL) -----


@pytest.fixture
def engine() -> Engine:
    db = create_engine("sqlite://")
    metadata.create_all(db)
    return db


def statements(db: Engine) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(maxsplit=1)[0].upper())

    sa_event.listen(db, "before_cursor_execute", record)
    return seen


def test_write_event_inserts_and_deletes_in_the_callers_transaction(engine: Engine) -> None:
    seen = statements(engine)
    with engine.begin() as conn:
        assert write_event(conn, invoice(), codec=CODEC) == INVOICES
        assert conn.in_transaction()
    # The INSERT is what the relay reads from the WAL; the DELETE keeps the table empty.
    assert [s for s in seen if s in {"INSERT", "DELETE"}] == ["INSERT", "DELETE"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0


def test_write_event_refuses_a_connection_without_a_transaction(engine: Engine) -> None:
    with (
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        pytest.raises(OutboxError, match="AUTOCOMMIT"),
    ):
        write_event(conn, invoice(), codec=CODEC)


# --- the relay's connector -------------------------------------------------------


def properties(text: str) -> dict[str, str]:
    """A Java .properties file as Connect reads it (only the escapes the hub writes)."""
    parsed = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        parsed[key] = value.replace("\\\\", "\\")
    return parsed


SETTINGS = Settings(postgres_dsn="postgresql://hub:s3cret@db.example:5433/school_erp")


def test_the_relay_is_its_own_connector_with_its_own_slot_and_publication() -> None:
    relay = properties(cdc_source.outbox_connector_properties(SETTINGS))
    cdc = properties(cdc_source.connector_properties(SETTINGS))
    assert relay["name"] == cdc_source.OUTBOX_CONNECTOR != cdc["name"]
    assert relay["slot.name"] == relay["publication.name"] == "hub_outbox"
    assert cdc["slot.name"] == "hub_erp"
    assert relay["topic.prefix"] != cdc["topic.prefix"]
    assert relay["table.include.list"] == "public.hub_outbox"
    assert relay["database.hostname"] == "db.example" and relay["database.port"] == "5433"
    assert relay["database.password"] == cdc["database.password"]
    assert relay["database.password"].startswith("${hub:")
    assert cdc_source.connect_secrets(SETTINGS) == {"database.password": "s3cret"}
    # The table is empty by design: nothing to snapshot, no tombstones for its deletes.
    assert relay["snapshot.mode"] == "no_data"
    assert relay["tombstones.on.delete"] == "false"


def test_the_slot_name_comes_from_settings() -> None:
    custom = SETTINGS.model_copy(update={"outbox_slot_name": "fees_outbox"})
    relay = properties(cdc_source.outbox_connector_properties(custom))
    assert relay["slot.name"] == relay["publication.name"] == "fees_outbox"
    with pytest.raises(ValidationError):
        Settings(outbox_slot_name="Fees-Outbox")


def test_the_router_routes_by_topic_keys_by_aggregateid_and_places_the_hub_headers() -> None:
    relay = properties(cdc_source.outbox_connector_properties(SETTINGS))
    assert relay["transforms.outbox.type"] == "io.debezium.transforms.outbox.EventRouter"
    assert relay["transforms.outbox.route.by.field"] == "aggregatetype"
    assert relay["transforms.outbox.route.topic.replacement"] == "${routedByValue}"
    assert relay["transforms.outbox.table.field.event.key"] == "aggregateid"
    assert relay["transforms.outbox.table.field.event.payload"] == "payload"
    assert relay["transforms.outbox.table.expand.json.payload"] == "false"
    placement = [
        tuple(p.split(":"))
        for p in relay["transforms.outbox.table.fields.additional.placement"].split(",")
    ]
    assert placement == [
        (column, "header", f"hub.{header}") for column, header in HEADER_COLUMNS.items()
    ]
    assert set(HEADER_COLUMNS) <= set(outbox.c.keys())


def test_the_value_is_the_payloads_bytes_and_the_key_a_string() -> None:
    relay = properties(cdc_source.outbox_connector_properties(SETTINGS))
    assert relay["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    # BYTES (the payload) as they are; structs (heartbeats) through the JSON delegate.
    assert relay["value.converter"] == "io.debezium.converters.BinaryDataConverter"
    assert relay["value.converter.delegate.converter.type"] == (
        "org.apache.kafka.connect.json.JsonConverter"
    )
    assert relay["binary.handling.mode"] == "bytes"
    # Nothing overrides Kafka's default partitioner (murmur2 on the key's bytes).
    assert not any("partition" in key for key in relay if key.startswith("transforms"))


def test_the_router_touches_only_outbox_rows_and_only_relayed_records_survive() -> None:
    relay = properties(cdc_source.outbox_connector_properties(SETTINGS))
    assert relay["transforms"] == "relayedOnly,outbox"
    assert relay["transforms.outbox.predicate"] == "isOutbox"
    assert relay["transforms.relayedOnly.predicate"] == "isRelayed"
    assert relay["transforms.relayedOnly.negate"] == "true"
    outbox_rows = re.compile(relay["predicates.isOutbox.pattern"])
    relayed = re.compile(relay["predicates.isRelayed.pattern"])
    # TopicNameMatches matches the whole topic name.
    assert outbox_rows.fullmatch("erp-outbox.public.hub_outbox")
    assert not outbox_rows.fullmatch("erp-outbox.public.hub_outboxes")
    assert not outbox_rows.fullmatch("erp-outboxXpublicXhub_outbox")
    assert relayed.fullmatch("__debezium-heartbeat.erp-outbox")
    assert not relayed.fullmatch("erp-outbox.message")  # the heartbeats' logical messages
    assert "pg_logical_emit_message" in relay["heartbeat.action.query"]


def test_run_source_starts_one_worker_with_both_connectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = "postgresql://hub:canary-db-pw@127.0.0.1:5432/school_erp"
    settings = SETTINGS.model_copy(update={"home": tmp_path, "postgres_dsn": dsn})
    started: list[list[str]] = []
    monkeypatch.setattr(cdc_source, "resolve_classpath", lambda *_a: "a.jar:b.jar")
    monkeypatch.setattr(cdc_source, "build_provider", lambda *_a: tmp_path / "provider")

    environments: list[dict[str, str]] = []

    def execvpe(_file: str, argv: list[str], env: dict[str, str]) -> None:
        started.append(argv)
        environments.append(env)
        raise SystemExit(0)

    monkeypatch.setattr(cdc_source.os, "execvpe", execvpe)
    monkeypatch.setenv("HUB_POSTGRES_DSN", dsn)
    with pytest.raises(SystemExit):
        cdc_source.run_source(settings)
    argv = started[0]
    assert argv[-4] == "org.apache.kafka.connect.cli.ConnectStandalone"
    worker, cdc, relay = (Path(a) for a in argv[-3:])
    assert cdc.read_text() == cdc_source.connector_properties(settings)
    assert relay.read_text() == cdc_source.outbox_connector_properties(settings)
    assert "offset.storage.file.filename" in worker.read_text()
    assert argv[argv.index("-cp") + 1] == f"{tmp_path / 'provider'}:a.jar:b.jar"
    # The password is in no file the worker reads as plain text: a reference, resolved
    # by the hub's config provider from the sealed file.
    sealed = cdc_source.sealed_file(settings)
    for written in (worker, cdc, relay, sealed):
        assert "canary-db-pw" not in written.read_text()
    assert properties(cdc.read_text())["database.password"] == (
        f"${{hub:{sealed}:database.password}}"
    )
    assert properties(relay.read_text())["database.password"] == (
        f"${{hub:{sealed}:database.password}}"
    )
    assert not [k for k in environments[0] if k.startswith(("HUB_", "KAFKA_"))]
    config = properties(worker.read_text())
    assert config["config.providers"] == "hub"
    assert config["config.providers.hub.class"] == "hub.connect.SealedConfigProvider"
    assert config["config.providers.hub.param.keys.file"] == str(settings.master_key_path)


def test_streaming_needs_both_connectors_running(monkeypatch: pytest.MonkeyPatch) -> None:
    states = {cdc_source.CONNECTOR: "RUNNING", cdc_source.OUTBOX_CONNECTOR: "FAILED"}

    class Answer:
        def __init__(self, url: str) -> None:
            self.url = url

        def json(self) -> dict[str, Any]:
            name = self.url.split("/connectors/")[1].split("/")[0]
            return {"connector": {"state": "RUNNING"}, "tasks": [{"state": states[name]}]}

    monkeypatch.setattr(cdc_source.httpx, "get", lambda url, **_kw: Answer(url))
    assert not cdc_source.streaming(SETTINGS)
    states[cdc_source.OUTBOX_CONNECTOR] = "RUNNING"
    assert cdc_source.streaming(SETTINGS)
