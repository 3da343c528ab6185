"""Debezium's change event envelope, read from JSON or Avro. Pure.

JSON comes from Kafka Connect's JsonConverter, with or without its schema
wrapper (`{"schema": ..., "payload": ...}`); Avro in Confluent's wire format
when a schema registry is configured (the writer schema is the registry's).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fastavro

# Debezium's stand-in for a large (TOASTed) column that did not change and was
# therefore not in the WAL record: it is not a new value.
UNAVAILABLE = "__debezium_unavailable_value"
OPS = {"c": "create", "u": "update", "d": "delete", "r": "read"}


class EnvelopeError(ValueError):
    pass


@dataclass(frozen=True)
class Envelope:
    op: str  # c, u, d, r
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: dict[str, Any]
    ts_ms: int | None

    @property
    def table(self) -> str:
        return str(self.source.get("table", ""))

    @property
    def lsn(self) -> int | None:
        lsn = self.source.get("lsn")
        return int(lsn) if isinstance(lsn, int) else None

    @property
    def tx_id(self) -> int | None:
        tx = self.source.get("txId")
        return int(tx) if isinstance(tx, int) else None

    @property
    def committed_at(self) -> datetime:
        ms = self.source.get("ts_ms") or self.ts_ms or 0
        return datetime.fromtimestamp(int(ms) / 1000, UTC)

    @property
    def is_snapshot(self) -> bool:
        return self.op == "r" or self.source.get("snapshot") not in (None, "false", False)


def _unwrap(document: Any) -> Any:
    if isinstance(document, Mapping) and "payload" in document and "schema" in document:
        return document["payload"]
    return document


def from_document(document: Any) -> Envelope:
    body = _unwrap(document)
    if not isinstance(body, Mapping):
        raise EnvelopeError("a change event must be an object")
    op = body.get("op")
    if op not in OPS:
        raise EnvelopeError(f"unknown op {op!r} (expected one of {', '.join(OPS)})")
    before, after, source = body.get("before"), body.get("after"), body.get("source")
    if not isinstance(source, Mapping):
        raise EnvelopeError("change event without a source block")
    for name, image in (("before", before), ("after", after)):
        if image is not None and not isinstance(image, Mapping):
            raise EnvelopeError(f"{name} is not a row")
    if op in ("c", "u", "r") and after is None:
        raise EnvelopeError(f"op {op} without an after image")
    if op == "d" and before is None:
        raise EnvelopeError("delete without a before image (set REPLICA IDENTITY FULL)")
    ts_ms = body.get("ts_ms")
    return Envelope(
        op,
        dict(before) if before else None,
        dict(after) if after else None,
        dict(source),
        ts_ms if isinstance(ts_ms, int) else None,
    )


def parse_key(data: bytes | None) -> str:
    """The row's primary key as a string: `{"id": 5}` -> "5", composite keys joined by ':'."""
    if not data:
        raise EnvelopeError("change event without a key")
    key = _unwrap(json.loads(data))
    if isinstance(key, Mapping):
        return ":".join(str(v) for v in key.values())
    return str(key)


SchemaLookup = Callable[[int], Any]


def parse_value(data: bytes | None, schema_for: SchemaLookup | None = None) -> Envelope | None:
    """None for a tombstone; otherwise the envelope, from JSON or Confluent Avro."""
    if data is None:
        return None
    if data[:1] == b"\x00" and schema_for is not None and len(data) > 5:
        writer = schema_for(int.from_bytes(data[1:5], "big"))
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[5:]), writer, None)
        except Exception as exc:  # fastavro raises many kinds for corrupt data
            raise EnvelopeError(f"not a Debezium Avro envelope: {exc}") from exc
        return from_document(record)
    try:
        return from_document(json.loads(data))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"not a Debezium JSON envelope: {exc}") from exc
