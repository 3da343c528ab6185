"""processors.cdc.changes: field-level diffs and the sync-stream records of a change event."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from cdc_support import (
    LSN,
    NEW_PHONE,
    OLD_PHONE,
    SOURCE_TS_MS,
    STUDENT_ID,
    TENANT,
    TX_ID,
    Registry,
    confluent_avro,
    delete,
    envelope_schema,
    event,
    insert,
    parsed,
    phone_update,
    snapshot_read,
    source_block,
    student,
)

from processors.cdc.changes import SOURCE, as_value, diff, full_row, source_of, sync_records
from processors.cdc.envelope import UNAVAILABLE, from_document, parse_value
from schemas.codec import SingleObjectCodec
from schemas.events import (
    CdcSource,
    ChangeOp,
    EntityChange,
    EntityState,
    FieldChange,
    decode_as,
    encode_event,
)

# --- as_value ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, True, False, 0, 12345, -7, 2.5, "", "+919876543210"])
def test_as_value_keeps_primitives(value: Any) -> None:
    result = as_value(value)

    assert result == value
    assert type(result) is type(value)


def test_as_value_turns_an_object_into_compact_sorted_json() -> None:
    assert as_value({"b": 1, "a": {"z": None, "y": [1, 2]}}) == '{"a":{"y":[1,2],"z":null},"b":1}'


def test_as_value_turns_an_array_into_compact_json_keeping_its_order() -> None:
    assert as_value([3, 1, "x", {"b": 2, "a": 1}]) == '[3,1,"x",{"a":1,"b":2}]'


def test_as_value_of_equal_objects_is_equal_whatever_the_key_order() -> None:
    assert as_value({"a": 1, "b": 2}) == as_value({"b": 2, "a": 1})


# --- diff --------------------------------------------------------------------------


def test_diff_lists_only_the_changed_field() -> None:
    changes = diff(student(), student(phone=NEW_PHONE))

    assert changes == [FieldChange(field="phone", old=OLD_PHONE, new=NEW_PHONE)]


def test_diff_follows_the_column_order_of_the_new_row() -> None:
    before = student()
    after = student(phone=NEW_PHONE, name="Rohan S. Sharma", notes="None")

    changes = diff(before, after)

    assert [c.field for c in changes] == ["name", "phone", "notes"]


def test_diff_of_identical_rows_is_empty() -> None:
    assert diff(student(), student()) == []
    assert diff(None, None) == []
    assert diff({}, {}) == []


@pytest.mark.parametrize("side", ["before", "after"])
def test_diff_never_counts_the_toast_placeholder_as_a_change(side: str) -> None:
    images = {"before": student(), "after": student(phone=NEW_PHONE)}
    images[side]["notes"] = UNAVAILABLE

    changes = diff(images["before"], images["after"])

    assert [c.field for c in changes] == ["phone"]


def test_diff_placeholder_on_both_sides_is_not_a_change() -> None:
    assert diff({"notes": UNAVAILABLE}, {"notes": UNAVAILABLE}) == []


def test_diff_column_only_in_the_new_row_is_a_change_from_null() -> None:
    changes = diff({"id": "1"}, {"id": "1", "nickname": "Ro"})

    assert changes == [FieldChange(field="nickname", old=None, new="Ro")]


def test_diff_column_only_in_the_old_row_is_a_change_to_null_listed_last() -> None:
    changes = diff({"legacy": "x", "id": "1", "phone": "1"}, {"id": "1", "phone": "2"})

    assert changes == [
        FieldChange(field="phone", old="1", new="2"),
        FieldChange(field="legacy", old="x", new=None),
    ]


def test_diff_null_to_value_and_value_to_null() -> None:
    before = {"id": "1", "email": None, "phone": OLD_PHONE}
    after = {"id": "1", "email": "a@example.com", "phone": None}

    assert diff(before, after) == [
        FieldChange(field="email", old=None, new="a@example.com"),
        FieldChange(field="phone", old=OLD_PHONE, new=None),
    ]


def test_diff_null_on_both_sides_is_not_a_change() -> None:
    assert diff({"id": "1", "email": None}, {"id": "1"}) == []


def test_diff_against_no_old_row_lists_every_non_null_column() -> None:
    changes = diff(None, {"id": "1", "name": "A", "grade": None})

    assert changes == [
        FieldChange(field="id", old=None, new="1"),
        FieldChange(field="name", old=None, new="A"),
    ]


def test_diff_against_no_new_row_lists_every_non_null_column_as_removed() -> None:
    changes = diff({"id": "1", "name": "A", "grade": None}, None)

    assert changes == [
        FieldChange(field="id", old="1", new=None),
        FieldChange(field="name", old="A", new=None),
    ]


def test_diff_renders_structured_values_as_json() -> None:
    changes = diff({"prefs": {"sms": True, "lang": "en"}}, {"prefs": {"sms": False, "lang": "en"}})

    assert changes == [
        FieldChange(field="prefs", old='{"lang":"en","sms":true}', new='{"lang":"en","sms":false}')
    ]


def test_diff_equal_structured_values_are_not_a_change() -> None:
    assert diff({"tags": ["a", "b"]}, {"tags": ["a", "b"]}) == []


# --- full_row ----------------------------------------------------------------------


def test_full_row_is_the_new_row() -> None:
    env = from_document(phone_update())

    assert full_row(env) == student(phone=NEW_PHONE)


def test_full_row_fills_the_placeholder_from_the_old_row() -> None:
    env = from_document(event("u", student(), student(phone=NEW_PHONE, notes=UNAVAILABLE)))

    row = full_row(env)

    assert row["notes"] == "Allergic to peanuts."
    assert row["phone"] == NEW_PHONE
    assert list(row) == list(student())


@pytest.mark.parametrize(
    "before",
    [
        None,
        student(notes=UNAVAILABLE),
        {k: v for k, v in student().items() if k != "notes"},
    ],
    ids=["no-old-row", "old-placeholder-too", "old-row-without-column"],
)
def test_full_row_drops_a_placeholder_it_cannot_fill(before: dict[str, Any] | None) -> None:
    op = "c" if before is None else "u"
    env = from_document(event(op, before, student(notes=UNAVAILABLE)))

    row = full_row(env)

    assert "notes" not in row
    assert UNAVAILABLE not in row.values()
    assert row["id"] == STUDENT_ID


def test_full_row_does_not_change_the_envelope() -> None:
    env = from_document(event("u", student(), student(notes=UNAVAILABLE)))

    full_row(env)

    assert env.after is not None
    assert env.after["notes"] == UNAVAILABLE


def test_full_row_keeps_a_null_column() -> None:
    env = from_document(event("u", student(), student(phone=None)))

    row = full_row(env)

    assert "phone" in row
    assert row["phone"] is None


# --- source_of ---------------------------------------------------------------------


def test_source_of_describes_where_the_change_came_from() -> None:
    src = source_of(from_document(phone_update()))

    assert src == CdcSource(
        db="school_erp",
        schema="public",
        table="students",
        lsn=LSN,
        tx_id=TX_ID,
        committed_at=datetime.fromtimestamp(SOURCE_TS_MS / 1000, UTC),
        snapshot=False,
    )
    assert src.schema_ == "public"


def test_source_of_a_snapshot_read() -> None:
    src = source_of(from_document(snapshot_read("first")))

    assert src.snapshot is True
    assert src.lsn == LSN


def test_source_of_without_optional_fields() -> None:
    doc = phone_update()
    doc["source"] = {"ts_ms": SOURCE_TS_MS}

    src = source_of(from_document(doc))

    assert src.db == ""
    assert src.schema_ == ""
    assert src.table == ""
    assert src.lsn is None
    assert src.tx_id is None


# --- sync_records ------------------------------------------------------------------


def test_update_yields_the_new_state_and_the_phone_change() -> None:
    sync = sync_records(from_document(phone_update()), TENANT, STUDENT_ID)

    assert sync.state is not None
    assert sync.state.entity == "students"
    assert sync.state.entity_id == STUDENT_ID
    assert sync.state.attributes == student(phone=NEW_PHONE)
    assert sync.state.source.lsn == LSN
    assert sync.state.source.snapshot is False
    assert sync.change is not None
    assert sync.change.op is ChangeOp.UPDATE
    assert sync.change.entity == "students"
    assert sync.change.entity_id == STUDENT_ID
    assert sync.change.changes == [FieldChange(field="phone", old=OLD_PHONE, new=NEW_PHONE)]
    assert sync.change.source == sync.state.source
    assert sync.changed_fields == frozenset({"phone"})
    assert sync.row == student(phone=NEW_PHONE)


def test_sync_records_headers_name_the_tenant_and_the_event_types() -> None:
    sync = sync_records(from_document(phone_update()), TENANT, STUDENT_ID)

    assert sync.state is not None
    assert sync.change is not None
    assert sync.state.header.event_type == "sync.entity.state" == EntityState.EVENT_TYPE
    assert sync.change.header.event_type == "sync.entity.changed" == EntityChange.EVENT_TYPE
    for header in (sync.state.header, sync.change.header):
        assert header.tenant == TENANT
        assert header.source == SOURCE == "cdc-consumer"
    assert sync.change.header.correlation_id == sync.state.header.correlation_id
    assert sync.state.key() == f"{TENANT}:{STUDENT_ID}"
    assert sync.change.key() == f"{TENANT}:{STUDENT_ID}"


def test_create_yields_state_and_a_change_of_every_set_column() -> None:
    row = student(notes=None)

    sync = sync_records(from_document(event("c", None, row)), TENANT, STUDENT_ID)

    assert sync.state is not None
    assert sync.state.attributes == row
    assert sync.change is not None
    assert sync.change.op is ChangeOp.CREATE
    assert [c.field for c in sync.change.changes] == [k for k, v in row.items() if v is not None]
    assert all(c.old is None for c in sync.change.changes)
    assert sync.changed_fields == frozenset(k for k, v in row.items() if v is not None)
    assert "notes" not in sync.changed_fields


def test_delete_yields_a_tombstone_and_every_field_going_to_null() -> None:
    sync = sync_records(from_document(delete()), TENANT, STUDENT_ID)

    assert sync.state is None
    assert sync.change is not None
    assert sync.change.op is ChangeOp.DELETE
    assert sync.change.entity_id == STUDENT_ID
    assert sync.change.changes == [
        FieldChange(field=k, old=v, new=None) for k, v in student().items()
    ]
    assert sync.changed_fields == frozenset(student())
    assert sync.change.header.event_type == EntityChange.EVENT_TYPE


def test_delete_ignores_an_after_image_if_one_is_sent() -> None:
    sync = sync_records(from_document(event("d", student(), student())), TENANT, STUDENT_ID)

    assert sync.state is None
    assert sync.change is not None
    assert all(c.new is None for c in sync.change.changes)


@pytest.mark.parametrize("marker", ["true", "first", "last", "last_in_data_collection"])
def test_snapshot_read_yields_only_the_state(marker: str) -> None:
    sync = sync_records(from_document(snapshot_read(marker)), TENANT, STUDENT_ID)

    assert sync.state is not None
    assert sync.state.attributes == student()
    assert sync.state.source.snapshot is True
    assert sync.change is None
    assert sync.changed_fields == frozenset()


def test_update_that_changes_nothing_yields_only_the_state() -> None:
    doc = event("u", student(), student(notes=UNAVAILABLE))

    sync = sync_records(from_document(doc), TENANT, STUDENT_ID)

    assert sync.state is not None
    assert sync.state.attributes["notes"] == "Allergic to peanuts."
    assert sync.change is None
    assert sync.changed_fields == frozenset()


def test_state_attributes_render_structured_columns_as_json() -> None:
    doc = event("u", student(), student(prefs={"sms": True, "lang": "hi"}))

    sync = sync_records(from_document(doc), TENANT, STUDENT_ID)

    assert sync.state is not None
    assert sync.state.attributes["prefs"] == '{"lang":"hi","sms":true}'
    assert sync.change is not None
    assert sync.change.changes == [
        FieldChange(field="prefs", old=None, new='{"lang":"hi","sms":true}')
    ]


def test_entity_is_the_table_and_entity_id_is_the_given_key() -> None:
    doc = event("u", {"id": 7, "phone": "1"}, {"id": 7, "phone": "2"}, table="guardians")

    sync = sync_records(from_document(doc), "lakeside", "7")

    assert sync.state is not None
    assert sync.state.entity == "guardians"
    assert sync.state.entity_id == "7"
    assert sync.state.header.tenant == "lakeside"
    assert sync.state.attributes == {"id": 7, "phone": "2"}


@pytest.mark.parametrize("doc", [phone_update(), insert(), delete(), snapshot_read()])
def test_sync_records_round_trip_through_their_avro_schemas(doc: dict[str, Any]) -> None:
    codec = SingleObjectCodec()
    sync = sync_records(from_document(doc), TENANT, STUDENT_ID)

    for record, model in ((sync.state, EntityState), (sync.change, EntityChange)):
        if record is not None:
            assert decode_as(codec, encode_event(codec, record), model) == record


def test_avro_decimal_column_becomes_a_sync_value() -> None:
    decimal_type = {
        "type": "bytes",
        "scale": 2,
        "precision": 10,
        "connect.name": "org.apache.kafka.connect.data.Decimal",
        "logicalType": "decimal",
    }
    fields = [{"name": "id", "type": "string"}, {"name": "amount", "type": decimal_type}]
    writer = parsed(envelope_schema("invoices", fields))
    before = {"id": "INV-1", "amount": Decimal("1000.00")}
    after = {"id": "INV-1", "amount": Decimal("1250.50")}
    record = {
        "before": before,
        "after": after,
        "source": source_block(table="invoices"),
        "op": "u",
        "ts_ms": SOURCE_TS_MS,
    }
    env = parse_value(confluent_avro(1, writer, record), Registry({1: writer}))
    assert env is not None

    sync = sync_records(env, TENANT, "INV-1")

    assert sync.state is not None
    assert Decimal(str(sync.state.attributes["amount"])) == Decimal("1250.50")


def test_state_and_change_are_distinct_events() -> None:
    sync = sync_records(from_document(phone_update()), TENANT, STUDENT_ID)

    assert sync.state is not None
    assert sync.change is not None
    assert sync.change.header.event_id != sync.state.header.event_id
