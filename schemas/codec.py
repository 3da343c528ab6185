"""Avro encoding of hub records: single-object encoding, or Confluent's wire format.

Single-object encoding (Avro spec) is the default: `C3 01`, the writer schema's
8-byte CRC-64-AVRO fingerprint, then the datum. Any reader holding the same
.avsc files can decode it without a registry. When a schema registry URL is
configured the hub writes Confluent's format instead (`00`, 4-byte schema id,
datum), and reads both.

Decoding never raises anything but `DecodeError`, so a consumer can set a bad
record aside and keep going instead of crash-looping on it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import fastavro
import httpx
from fastavro.schema import parse_schema

from schemas.store import (
    SchemaEntry,
    SchemaStore,
    UnknownSchemaError,
    default_store,
    full_schema_json,
)

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


class CodecError(Exception):
    pass


class EncodeError(CodecError):
    pass


class DecodeError(CodecError):
    pass


class UnknownWriterSchemaError(DecodeError):
    pass


class CorruptRecordError(DecodeError):
    pass


@dataclass(frozen=True)
class Decoded:
    schema: str
    record: dict[str, Any]


class Codec(Protocol):
    def encode(self, schema: str, record: Mapping[str, Any]) -> bytes: ...

    def decode(self, data: bytes | None) -> Decoded: ...


def _write_datum(entry: SchemaEntry, record: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(buf, entry.parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EncodeError(f"record does not match {entry.name}: {exc}") from exc
    return buf.getvalue()


def _read_datum(data: bytes, offset: int, writer: Any, reader: Any, name: str) -> dict[str, Any]:
    buf = io.BytesIO(data)
    buf.seek(offset)
    try:
        record = fastavro.schemaless_reader(
            buf, writer, reader, return_record_name=True, return_record_name_override=True
        )
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, UnicodeError...
        raise CorruptRecordError(f"cannot decode {name}: {type(exc).__name__}: {exc}") from exc
    if buf.tell() != len(data):
        raise CorruptRecordError(f"{len(data) - buf.tell()} trailing bytes after a {name} datum")
    if not isinstance(record, dict):
        raise CorruptRecordError(f"{name} did not decode to a record")
    return record


class SingleObjectCodec:
    def __init__(self, store: SchemaStore | None = None) -> None:
        self.store = store or default_store()

    def encode(self, schema: str, record: Mapping[str, Any]) -> bytes:
        entry = self.store.get(schema)
        return SINGLE_OBJECT_MAGIC + entry.fingerprint + _write_datum(entry, record)

    def decode(self, data: bytes | None) -> Decoded:
        if not data:
            raise CorruptRecordError("empty record value")
        if data[:2] != SINGLE_OBJECT_MAGIC or len(data) < 10:
            raise CorruptRecordError(
                "not Avro single-object encoded (expected C3 01 + 8-byte fingerprint)"
            )
        entry = self.store.by_fingerprint(data[2:10])
        if entry is None:
            raise UnknownWriterSchemaError(
                f"unknown writer schema fingerprint {data[2:10].hex()}: "
                "written by a newer hub or another system"
            )
        return Decoded(entry.name, _read_datum(data, 10, entry.parsed, None, entry.name))


class SchemaRegistryClient:
    """The two calls the codec needs from a Confluent-compatible registry, cached."""

    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=url, timeout=10.0, transport=transport)
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, Any] = {}

    def register(self, subject: str, schema_json: str) -> int:
        if subject not in self._ids:
            response = self._http.post(
                f"/subjects/{subject}/versions",
                json={"schema": schema_json},
                headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            )
            response.raise_for_status()
            self._ids[subject] = int(response.json()["id"])
        return self._ids[subject]

    def schema(self, schema_id: int) -> Any:
        if schema_id not in self._schemas:
            response = self._http.get(f"/schemas/ids/{schema_id}")
            if response.status_code == 404:
                raise UnknownWriterSchemaError(f"schema id {schema_id} is not in the registry")
            response.raise_for_status()
            self._schemas[schema_id] = parse_schema(json.loads(response.json()["schema"]))
        return self._schemas[schema_id]


class ConfluentCodec:
    """Confluent wire format, subjects named after the record (RecordNameStrategy)."""

    def __init__(self, registry: SchemaRegistryClient, store: SchemaStore | None = None) -> None:
        self.registry = registry
        self.store = store or default_store()
        self._single = SingleObjectCodec(self.store)

    def encode(self, schema: str, record: Mapping[str, Any]) -> bytes:
        entry = self.store.get(schema)
        schema_id = self.registry.register(entry.name, full_schema_json(entry))
        return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big") + _write_datum(entry, record)

    def decode(self, data: bytes | None) -> Decoded:
        if data and data[:2] == SINGLE_OBJECT_MAGIC:
            return self._single.decode(data)
        if not data or data[:1] != CONFLUENT_MAGIC or len(data) < 5:
            raise CorruptRecordError("neither Confluent wire format nor single-object encoding")
        schema_id = int.from_bytes(data[1:5], "big")
        try:
            writer = self.registry.schema(schema_id)
        except httpx.HTTPError as exc:
            raise UnknownWriterSchemaError(
                f"registry lookup of id {schema_id} failed: {exc}"
            ) from exc
        name = writer["name"] if isinstance(writer, dict) else str(writer)
        try:
            reader = self.store.get(name).parsed
        except UnknownSchemaError as exc:
            raise UnknownWriterSchemaError(str(exc)) from exc
        return Decoded(name, _read_datum(data, 5, writer, reader, name))


def make_codec(schema_registry_url: str | None = None) -> Codec:
    if schema_registry_url:
        return ConfluentCodec(SchemaRegistryClient(schema_registry_url))
    return SingleObjectCodec()
