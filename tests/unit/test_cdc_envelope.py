"""processors.cdc.envelope: Debezium's change event envelope from JSON or Confluent Avro."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from cdc_support import (
    EVENT_TS_MS,
    LSN,
    NEW_PHONE,
    SOURCE_TS_MS,
    TX_ID,
    Registry,
    as_json,
    avro_row,
    confluent_avro,
    delete,
    envelope_schema,
    event,
    insert,
    parsed,
    phone_update,
    schema_wrapped,
    snapshot_read,
    source_block,
    student,
)

from processors.cdc.envelope import (
    UNAVAILABLE,
    Envelope,
    EnvelopeError,
    from_document,
    parse_key,
    parse_value,
)

# --- from_document ---------------------------------------------------------------


def test_from_document_reads_a_plain_update_event() -> None:
    doc = phone_update()

    env = from_document(doc)

    assert env.op == "u"
    assert env.before == student()
    assert env.after == student(phone=NEW_PHONE)
    assert env.source == source_block()
    assert env.ts_ms == EVENT_TS_MS


def test_from_document_unwraps_the_schema_wrapper_to_the_same_envelope() -> None:
    plain = from_document(phone_update())

    wrapped = from_document(schema_wrapped(phone_update()))

    assert wrapped == plain
    assert wrapped.after is not None
    assert wrapped.after["phone"] == NEW_PHONE


def test_from_document_copies_the_images_so_later_edits_do_not_leak_in() -> None:
    doc = phone_update()
    env = from_document(doc)

    doc["after"]["phone"] = "changed afterwards"
    doc["source"]["table"] = "guardians"

    assert env.after is not None
    assert env.after["phone"] == NEW_PHONE
    assert env.table == "students"


def test_from_document_reads_a_delete_with_only_a_before_image() -> None:
    env = from_document(delete())

    assert env.op == "d"
    assert env.before == student()
    assert env.after is None


def test_from_document_reads_a_create_with_only_an_after_image() -> None:
    env = from_document(insert())

    assert env.op == "c"
    assert env.before is None
    assert env.after == student()


@pytest.mark.parametrize("ts_ms", [None, "1795355821642", 1.5])
def test_from_document_keeps_only_an_integer_event_timestamp(ts_ms: Any) -> None:
    doc = phone_update()
    doc["ts_ms"] = ts_ms

    assert from_document(doc).ts_ms is None


@pytest.mark.parametrize("document", [None, [], "u", 42, [phone_update()]])
def test_from_document_rejects_a_non_object(document: Any) -> None:
    with pytest.raises(EnvelopeError, match="must be an object"):
        from_document(document)


@pytest.mark.parametrize("op", ["x", "U", "", None, "t", "m"])
def test_from_document_rejects_an_unknown_op(op: Any) -> None:
    doc = phone_update()
    doc["op"] = op

    with pytest.raises(EnvelopeError, match="unknown op"):
        from_document(doc)


def test_from_document_rejects_an_event_without_an_op() -> None:
    doc = phone_update()
    del doc["op"]

    with pytest.raises(EnvelopeError, match="unknown op None"):
        from_document(doc)


@pytest.mark.parametrize("source", [None, "postgresql", ["students"], 1])
def test_from_document_rejects_a_missing_or_malformed_source(source: Any) -> None:
    doc = phone_update()
    doc["source"] = source

    with pytest.raises(EnvelopeError, match="source"):
        from_document(doc)


def test_from_document_rejects_an_event_without_a_source_key() -> None:
    doc = phone_update()
    del doc["source"]

    with pytest.raises(EnvelopeError, match="without a source block"):
        from_document(doc)


@pytest.mark.parametrize("image", ["before", "after"])
@pytest.mark.parametrize("bad", ["row", ["id", "12345"], 12345, True])
def test_from_document_rejects_images_that_are_not_objects(image: str, bad: Any) -> None:
    doc = phone_update()
    doc[image] = bad

    with pytest.raises(EnvelopeError, match=f"{image} is not a row"):
        from_document(doc)


@pytest.mark.parametrize("op", ["c", "u", "r"])
def test_from_document_rejects_create_update_read_without_an_after_image(op: str) -> None:
    with pytest.raises(EnvelopeError, match=f"op {op} without an after image"):
        from_document(event(op, student(), None))


def test_from_document_rejects_a_delete_without_a_before_image() -> None:
    with pytest.raises(EnvelopeError, match="REPLICA IDENTITY FULL"):
        from_document(event("d", None, None))


def test_from_document_rejects_a_schema_wrapped_non_envelope() -> None:
    with pytest.raises(EnvelopeError, match="must be an object"):
        from_document(schema_wrapped(None))


# --- Envelope properties -----------------------------------------------------------


def test_envelope_exposes_table_lsn_and_transaction() -> None:
    env = from_document(phone_update())

    assert env.table == "students"
    assert env.lsn == LSN
    assert env.tx_id == TX_ID


def test_envelope_without_table_lsn_or_transaction() -> None:
    doc = phone_update()
    for name in ("table", "lsn", "txId"):
        del doc["source"][name]

    env = from_document(doc)

    assert env.table == ""
    assert env.lsn is None
    assert env.tx_id is None


def test_envelope_lsn_and_tx_id_null_in_the_source_are_none() -> None:
    env = from_document(phone_update(lsn=None, txId=None))

    assert env.lsn is None
    assert env.tx_id is None


def test_committed_at_is_the_source_commit_time() -> None:
    env = from_document(phone_update())

    assert env.committed_at == datetime(2026, 11, 22, 13, 57, 1, 375000, tzinfo=UTC)
    assert env.committed_at.tzinfo is UTC
    assert int(env.committed_at.timestamp() * 1000) == SOURCE_TS_MS


def test_committed_at_falls_back_to_the_event_time() -> None:
    doc = phone_update()
    del doc["source"]["ts_ms"]

    env = from_document(doc)

    assert round(env.committed_at.timestamp() * 1000) == EVENT_TS_MS


def test_committed_at_is_the_epoch_without_any_timestamp() -> None:
    doc = phone_update()
    del doc["source"]["ts_ms"]
    doc["ts_ms"] = None

    assert from_document(doc).committed_at == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("op", "marker", "expected"),
    [
        ("r", "true", True),
        ("r", "first", True),
        ("r", "last", True),
        ("r", "last_in_data_collection", True),
        ("r", "false", True),  # a read is always a snapshot
        ("r", None, True),
        ("c", "true", True),
        ("u", "first", True),
        ("c", "last", True),
        ("u", "last_in_data_collection", True),
        ("u", "false", False),
        ("c", "false", False),
        ("d", "false", False),
        ("u", None, False),
        ("u", False, False),
    ],
)
def test_is_snapshot(op: str, marker: Any, expected: bool) -> None:
    doc = event(op, student(), student(), snapshot=marker)

    assert from_document(doc).is_snapshot is expected


def test_is_snapshot_without_a_snapshot_field_is_false_for_a_stream_change() -> None:
    doc = phone_update()
    del doc["source"]["snapshot"]

    assert from_document(doc).is_snapshot is False


# --- parse_key ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"id":"12345"}', "12345"),
        (b'{"id":"1"}', "1"),
        (b'{"id":12345}', "12345"),
        (b'{"id":7}', "7"),
        (b'{"school_id":3,"student_id":"12345"}', "3:12345"),
        (b'{"a":"x","b":"y","c":9}', "x:y:9"),
        (b'"12345"', "12345"),
        (b"42", "42"),
    ],
)
def test_parse_key(data: bytes, expected: str) -> None:
    assert parse_key(data) == expected


def test_parse_key_keeps_the_composite_key_column_order() -> None:
    assert parse_key(b'{"student_id":"12345","school_id":3}') == "12345:3"


def test_parse_key_unwraps_a_schema_wrapped_key() -> None:
    data = as_json(
        {
            "schema": {
                "type": "struct",
                "fields": [{"type": "string", "optional": False, "field": "id"}],
                "optional": False,
                "name": "erp.students.Key",
            },
            "payload": {"id": "12345"},
        }
    )

    assert parse_key(data) == "12345"


@pytest.mark.parametrize("data", [None, b""])
def test_parse_key_rejects_an_empty_key(data: bytes | None) -> None:
    with pytest.raises(EnvelopeError, match="without a key"):
        parse_key(data)


# --- parse_value: JSON -------------------------------------------------------------


def test_parse_value_none_is_a_tombstone() -> None:
    assert parse_value(None) is None
    assert parse_value(None, Registry({})) is None


def test_parse_value_reads_json() -> None:
    env = parse_value(as_json(phone_update()))

    assert isinstance(env, Envelope)
    assert env.op == "u"
    assert env.after == student(phone=NEW_PHONE)
    assert env.lsn == LSN


def test_parse_value_reads_schema_wrapped_json() -> None:
    env = parse_value(as_json(schema_wrapped(phone_update())))

    assert env == from_document(phone_update())


def test_parse_value_reads_json_even_with_a_registry() -> None:
    registry = Registry({})

    env = parse_value(as_json(delete()), registry)

    assert env is not None
    assert env.op == "d"
    assert registry.asked == []


def test_parse_value_keeps_the_toast_placeholder() -> None:
    doc = event("u", student(), student(notes=UNAVAILABLE))

    env = parse_value(as_json(doc))

    assert env is not None
    assert env.after is not None
    assert env.after["notes"] == UNAVAILABLE


@pytest.mark.parametrize(
    "data",
    [b"not json", b'{"op": "u"', b"", b"{'op': 'u'}", b"\x00\x00\x00\x00"],
)
def test_parse_value_rejects_invalid_json(data: bytes) -> None:
    with pytest.raises(EnvelopeError, match="not a Debezium JSON envelope"):
        parse_value(data)


def test_parse_value_rejects_invalid_utf8() -> None:
    with pytest.raises(EnvelopeError, match="not a Debezium JSON envelope"):
        parse_value(b'{"op": "\xff\xfe"}')


def test_parse_value_rejects_json_that_is_not_an_envelope() -> None:
    with pytest.raises(EnvelopeError, match="must be an object"):
        parse_value(b"[1, 2, 3]")
    with pytest.raises(EnvelopeError, match="unknown op"):
        parse_value(b'{"before": null, "after": {"id": "1"}, "source": {}}')


# --- parse_value: Confluent Avro ---------------------------------------------------

SCHEMA_ID = 42


def avro_record(doc: dict[str, Any]) -> dict[str, Any]:
    record = copy.deepcopy(doc)
    record["before"] = avro_row(doc["before"])
    record["after"] = avro_row(doc["after"])
    return record


@pytest.fixture
def writer() -> Any:
    return parsed(envelope_schema())


def test_parse_value_decodes_confluent_avro_with_the_registry_schema(writer: Any) -> None:
    registry = Registry({SCHEMA_ID: writer})
    data = confluent_avro(SCHEMA_ID, writer, avro_record(phone_update()))

    env = parse_value(data, registry)

    assert registry.asked == [SCHEMA_ID]
    assert env is not None
    assert env.op == "u"
    assert env.table == "students"
    assert env.lsn == LSN
    assert env.tx_id == TX_ID
    assert env.ts_ms == EVENT_TS_MS
    assert env.before == avro_row(student())
    assert env.after == avro_row(student(phone=NEW_PHONE))
    assert env.is_snapshot is False


def test_parse_value_reads_the_schema_id_big_endian(writer: Any) -> None:
    schema_id = 0x01020304
    registry = Registry({schema_id: writer})

    parse_value(confluent_avro(schema_id, writer, avro_record(insert())), registry)

    assert registry.asked == [schema_id]


def test_parse_value_decodes_avro_null_images_and_snapshot_reads(writer: Any) -> None:
    registry = Registry({SCHEMA_ID: writer})

    read = parse_value(
        confluent_avro(SCHEMA_ID, writer, avro_record(snapshot_read("last"))), registry
    )
    gone = parse_value(confluent_avro(SCHEMA_ID, writer, avro_record(delete())), registry)

    assert read is not None
    assert read.op == "r"
    assert read.before is None
    assert read.is_snapshot is True
    assert gone is not None
    assert gone.op == "d"
    assert gone.after is None
    assert gone.before == avro_row(student())


def test_parse_value_rejects_corrupt_avro(writer: Any) -> None:
    data = confluent_avro(SCHEMA_ID, writer, avro_record(phone_update()))

    with pytest.raises(EnvelopeError, match="not a Debezium Avro envelope"):
        parse_value(data[:20], Registry({SCHEMA_ID: writer}))


def test_parse_value_rejects_avro_with_a_bad_union_index(writer: Any) -> None:
    # before's union branch index (zig-zag 5 = 0x0a) does not exist
    data = b"\x00" + SCHEMA_ID.to_bytes(4, "big") + b"\x0a" + b"\x00" * 30

    with pytest.raises(EnvelopeError, match="not a Debezium Avro envelope"):
        parse_value(data, Registry({SCHEMA_ID: writer}))


def test_parse_value_rejects_an_avro_datum_that_is_not_a_valid_envelope(writer: Any) -> None:
    data = confluent_avro(SCHEMA_ID, writer, avro_record(event("x", None, student())))

    with pytest.raises(EnvelopeError, match="unknown op 'x'"):
        parse_value(data, Registry({SCHEMA_ID: writer}))


def test_parse_value_avro_bytes_without_a_registry_are_not_json(writer: Any) -> None:
    data = confluent_avro(SCHEMA_ID, writer, avro_record(phone_update()))

    with pytest.raises(EnvelopeError, match="not a Debezium JSON envelope"):
        parse_value(data)


@pytest.mark.parametrize("data", [b"not json", b'{"id":', b"\xff\xfe\x00"])
def test_parse_key_rejects_a_key_that_is_not_json(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_key(data)
