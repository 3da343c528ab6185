import io
import json

import fastavro
import httpx
import pytest
from fastavro.schema import fingerprint

from schemas.codec import (
    CONFLUENT_MAGIC,
    SINGLE_OBJECT_MAGIC,
    ConfluentCodec,
    CorruptRecordError,
    SchemaRegistryClient,
    SingleObjectCodec,
    UnknownWriterSchemaError,
)
from schemas.events import Contact, EventHeader, Invoice, decode_event, encode_event
from schemas.store import default_store


def invoice() -> Invoice:
    return Invoice(
        header=EventHeader.new(Invoice.EVENT_TYPE, "greenwood", source="test"),
        invoice_id="INV-1",
        student_id="S-1",
        student_name="Rohan Sharma",
        description="Term 1 fees",
        amount_minor=5_000_000,
        parent=Contact(name="Mrs. Sharma", phone="+919876543210", email="s@example.com"),
    )


def test_fingerprint_matches_the_avro_spec_test_vector():
    # Avro spec: the CRC-64-AVRO fingerprint of "null" is 0x63dd24e7cc258f8a,
    # written little-endian in single-object encoding.
    assert bytes.fromhex(fingerprint('"null"', "CRC-64-AVRO")) == (0x63DD24E7CC258F8A).to_bytes(
        8, "little"
    )


def test_single_object_layout_is_magic_fingerprint_datum():
    codec = SingleObjectCodec()
    event = invoice()
    data = encode_event(codec, event)
    entry = default_store().get(Invoice.SCHEMA)
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == entry.fingerprint
    # The datum after the 10-byte prefix is plain Avro binary any reader can decode.
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), entry.parsed, None)
    assert record["invoice_id"] == "INV-1"
    assert decode_event(codec, data) == event


@pytest.mark.parametrize(
    "data, error",
    [
        (None, CorruptRecordError),
        (b"", CorruptRecordError),
        (b'{"json": true}', CorruptRecordError),
        (SINGLE_OBJECT_MAGIC + b"\x00" * 8 + b"\x02", UnknownWriterSchemaError),
    ],
)
def test_bad_input_is_a_clear_decode_error(data, error):
    with pytest.raises(error):
        SingleObjectCodec().decode(data)


def test_truncated_and_padded_datums_are_corrupt():
    data = encode_event(SingleObjectCodec(), invoice())
    with pytest.raises(CorruptRecordError):
        SingleObjectCodec().decode(data[:-5])
    with pytest.raises(CorruptRecordError, match="trailing"):
        SingleObjectCodec().decode(data + b"\x00\x00")


class FakeRegistry:
    """The far side of a Confluent Schema Registry's HTTP API (the two calls the codec makes)."""

    def __init__(self) -> None:
        self.subjects: dict[str, int] = {}
        self.schemas: dict[int, str] = {}
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if request.method == "POST" and request.url.path.startswith("/subjects/"):
            subject = request.url.path.split("/")[2]
            schema = json.loads(request.content)["schema"]
            schema_id = self.subjects.setdefault(subject, len(self.subjects) + 1)
            self.schemas[schema_id] = schema
            return httpx.Response(200, json={"id": schema_id})
        if request.method == "GET" and request.url.path.startswith("/schemas/ids/"):
            schema_id = int(request.url.path.rsplit("/", 1)[1])
            if schema_id not in self.schemas:
                return httpx.Response(
                    404, json={"error_code": 40403, "message": "Schema not found"}
                )
            return httpx.Response(200, json={"schema": self.schemas[schema_id]})
        return httpx.Response(404)


def test_confluent_wire_format_round_trip_and_caching():
    registry = FakeRegistry()
    client = SchemaRegistryClient(
        "http://registry", transport=httpx.MockTransport(registry.handler)
    )
    codec = ConfluentCodec(client)
    event = invoice()
    data = encode_event(codec, event)
    assert data[:1] == CONFLUENT_MAGIC
    assert int.from_bytes(data[1:5], "big") == registry.subjects[Invoice.SCHEMA]
    assert decode_event(codec, data) == event
    calls = registry.calls
    encode_event(codec, event)
    decode_event(codec, data)
    assert registry.calls == calls, "ids and schemas are cached after first use"
    # It still reads single-object records, e.g. written before a registry was configured.
    assert decode_event(codec, encode_event(SingleObjectCodec(), event)) == event


def test_confluent_unknown_schema_id_is_a_decode_error():
    registry = FakeRegistry()
    codec = ConfluentCodec(
        SchemaRegistryClient("http://r", transport=httpx.MockTransport(registry.handler))
    )
    with pytest.raises(UnknownWriterSchemaError):
        codec.decode(CONFLUENT_MAGIC + (99).to_bytes(4, "big") + b"\x00")
