"""Builders for the CDC unit tests: Debezium change events (JSON and Confluent Avro), fake messages.

The events mirror what Debezium's PostgreSQL connector writes for the demo ERP's
`students` table through Kafka Connect's JsonConverter (schemas disabled unless
wrapped), or through a Confluent AvroConverter.
"""

from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass, field
from typing import Any

import fastavro

TENANT = "greenwood"
SOURCE = "erp"
STUDENT_ID = "12345"
LSN = 26409816
TX_ID = 729
SOURCE_TS_MS = 1795355821375
EVENT_TS_MS = 1795355821642
OLD_PHONE = "+919876543210"
NEW_PHONE = "+919812345678"
EMAIL = "rohan.sharma@greenwood.school.example"
NAME = "Rohan Sharma"
UNAVAILABLE = "__debezium_unavailable_value"


def student(**overrides: Any) -> dict[str, Any]:
    """A `students` row in column order (as Debezium sends it)."""
    row: dict[str, Any] = {
        "id": STUDENT_ID,
        "name": NAME,
        "grade": "10",
        "section": "A",
        "email": EMAIL,
        "phone": OLD_PHONE,
        "date_of_birth": 14975,  # io.debezium.time.Date: days since the epoch
        "notes": "Allergic to peanuts.",
        "updated_at": "2026-11-22T13:57:01.375000Z",
    }
    row.update(overrides)
    return row


def source_block(**overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "version": "3.7.0.Final",
        "connector": "postgresql",
        "name": SOURCE,
        "ts_ms": SOURCE_TS_MS,
        "snapshot": "false",
        "db": "school_erp",
        "sequence": f'[null,"{LSN}"]',
        "schema": "public",
        "table": "students",
        "txId": TX_ID,
        "lsn": LSN,
        "xmin": None,
    }
    block.update(overrides)
    return block


def event(
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    **source: Any,
) -> dict[str, Any]:
    """A Debezium change event value (JsonConverter, schemas disabled)."""
    return {
        "before": copy.deepcopy(before),
        "after": copy.deepcopy(after),
        "source": source_block(**source),
        "op": op,
        "ts_ms": EVENT_TS_MS,
    }


def phone_update(**source: Any) -> dict[str, Any]:
    return event("u", student(), student(phone=NEW_PHONE), **source)


def insert(**source: Any) -> dict[str, Any]:
    return event("c", None, student(), **source)


def delete(**source: Any) -> dict[str, Any]:
    return event("d", student(), None, **source)


def snapshot_read(marker: str = "true", **source: Any) -> dict[str, Any]:
    return event("r", None, student(), snapshot=marker, **source)


def schema_wrapped(payload: Any) -> dict[str, Any]:
    """The same event as JsonConverter writes it with schemas enabled."""
    return {
        "schema": {"type": "struct", "optional": False, "name": "erp.students.Envelope"},
        "payload": payload,
    }


def as_json(document: Any) -> bytes:
    return json.dumps(document).encode()


def key_bytes(entity_id: str = STUDENT_ID) -> bytes:
    return as_json({"id": entity_id})


@dataclass
class FakeMessage:
    """The part of confluent_kafka.Message the CDC consumer reads."""

    _value: bytes | None
    _key: bytes | None = field(default_factory=key_bytes)
    _topic: str = "cdc.erp.students.v1"
    _partition: int = 0
    _offset: int = 7
    _timestamp: tuple[int, int] = (1, EVENT_TS_MS)
    _headers: list[tuple[str, bytes]] | None = None

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


def message(document: dict[str, Any] | None, entity_id: str = STUDENT_ID) -> FakeMessage:
    return FakeMessage(None if document is None else as_json(document), key_bytes(entity_id))


# --- Confluent Avro (AvroConverter + schema registry) ------------------------

OPTIONAL_STRING = ["null", "string"]
STUDENT_AVRO_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "string"},
    {"name": "name", "type": "string"},
    {"name": "grade", "type": OPTIONAL_STRING, "default": None},
    {"name": "section", "type": OPTIONAL_STRING, "default": None},
    {"name": "email", "type": OPTIONAL_STRING, "default": None},
    {"name": "phone", "type": OPTIONAL_STRING, "default": None},
]


def envelope_schema(
    table: str = "students", row_fields: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A Debezium-like Avro envelope: nullable before/after rows, a source record, op, ts_ms."""
    namespace = f"{SOURCE}.public.{table}"
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": namespace,
        "fields": [
            {
                "name": "before",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Value",
                        "fields": row_fields if row_fields is not None else STUDENT_AVRO_FIELDS,
                    },
                ],
                "default": None,
            },
            {"name": "after", "type": ["null", f"{namespace}.Value"], "default": None},
            {
                "name": "source",
                "type": {
                    "type": "record",
                    "name": "Source",
                    "namespace": "io.debezium.connector.postgresql",
                    "fields": [
                        {"name": "version", "type": "string"},
                        {"name": "connector", "type": "string"},
                        {"name": "name", "type": "string"},
                        {"name": "ts_ms", "type": "long"},
                        {"name": "snapshot", "type": OPTIONAL_STRING, "default": None},
                        {"name": "db", "type": "string"},
                        {"name": "sequence", "type": OPTIONAL_STRING, "default": None},
                        {"name": "schema", "type": "string"},
                        {"name": "table", "type": "string"},
                        {"name": "txId", "type": ["null", "long"], "default": None},
                        {"name": "lsn", "type": ["null", "long"], "default": None},
                        {"name": "xmin", "type": ["null", "long"], "default": None},
                    ],
                },
            },
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"], "default": None},
        ],
    }


def parsed(schema: dict[str, Any]) -> Any:
    return fastavro.parse_schema(schema)


def avro_row(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A JSON students row cut down to the Avro schema's columns."""
    if row is None:
        return None
    return {f["name"]: row.get(f["name"]) for f in STUDENT_AVRO_FIELDS}


def confluent_avro(schema_id: int, schema: Any, record: dict[str, Any]) -> bytes:
    """Confluent's wire format: magic 0, 4-byte big-endian schema id, schemaless datum."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue()


class Registry:
    """A stand-in for the schema registry's `schema(id)`: records every lookup."""

    def __init__(self, schemas: dict[int, Any]) -> None:
        self.schemas = schemas
        self.asked: list[int] = []

    def __call__(self, schema_id: int) -> Any:
        self.asked.append(schema_id)
        return self.schemas[schema_id]
