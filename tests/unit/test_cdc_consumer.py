"""processors.cdc.consumer: replay detection and one change event -> the records to write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cdc_support import (
    EMAIL,
    LSN,
    NEW_PHONE,
    OLD_PHONE,
    SOURCE,
    STUDENT_ID,
    TENANT,
    FakeMessage,
    Registry,
    as_json,
    avro_row,
    confluent_avro,
    delete,
    envelope_schema,
    event,
    insert,
    key_bytes,
    message,
    parsed,
    phone_update,
    schema_wrapped,
    snapshot_read,
    student,
)

from core.kafka import Record, header_value
from processors.cdc.consumer import CdcTranslator, Replays
from processors.cdc.envelope import EnvelopeError, from_document
from processors.cdc.mapping import MappingError, load_mapping
from schemas.codec import SingleObjectCodec
from schemas.events import (
    ChangeOp,
    ConnectorCommand,
    EntityChange,
    EntityState,
    FieldChange,
    SendPush,
    UpdateSmsContact,
    decode_as,
)

STATE_TOPIC = "sync.erp.students.state.v1"
CHANGES_TOPIC = "sync.erp.students.changes.v1"
COMMAND_TOPICS = [
    "connector.gworkspace.commands.v1",
    "connector.mobileapp.commands.v1",
    "connector.smsgateway.commands.v1",
    "connector.fcm.commands.v1",
]
ROW_KEY = f"{TENANT}:{STUDENT_ID}"

# --- Replays -----------------------------------------------------------------------


def env(doc: dict[str, Any]) -> Any:
    return from_document(doc)


ROW = f"students:{STUDENT_ID}"


def test_replays_nothing_is_seen_before_anything_is_applied() -> None:
    assert Replays().seen(ROW, env(phone_update())) is False


def test_replays_an_applied_lsn_is_seen_again() -> None:
    replays = Replays()
    replays.mark(ROW, env(phone_update()))

    assert replays.seen(ROW, env(phone_update())) is True
    assert replays.seen(ROW, env(phone_update(lsn=LSN - 1))) is True
    assert replays.seen(ROW, env(delete(lsn=LSN - 500))) is True
    assert replays.seen(ROW, env(phone_update(lsn=LSN + 1))) is False


def test_replays_remembers_the_newest_lsn() -> None:
    replays = Replays()
    replays.mark(ROW, env(phone_update(lsn=100)))
    replays.mark(ROW, env(phone_update(lsn=200)))

    assert replays.applied == {ROW: 200}
    assert replays.seen(ROW, env(phone_update(lsn=150))) is True
    assert replays.seen(ROW, env(phone_update(lsn=201))) is False


@pytest.mark.parametrize("marker", ["true", "first", "last", "last_in_data_collection"])
def test_replays_a_snapshot_read_is_never_seen(marker: str) -> None:
    replays = Replays()
    replays.mark(ROW, env(phone_update(lsn=LSN + 1000)))
    read = env(snapshot_read(marker))

    assert replays.seen(ROW, read) is False
    replays.mark(ROW, read)
    assert replays.seen(ROW, read) is False
    assert replays.applied == {ROW: LSN + 1000}


def test_replays_an_event_without_an_lsn_is_never_seen_nor_marked() -> None:
    replays = Replays()
    replays.mark(ROW, env(phone_update(lsn=LSN)))
    lsnless = env(phone_update(lsn=None))

    assert replays.seen(ROW, lsnless) is False
    replays.mark(ROW, lsnless)
    assert replays.applied == {ROW: LSN}


def test_replays_rows_are_independent() -> None:
    replays = Replays()
    replays.mark(ROW, env(phone_update(lsn=500)))

    assert replays.seen("students:99999", env(phone_update(lsn=100))) is False
    assert replays.seen("guardians:12345", env(phone_update(lsn=100))) is False
    assert replays.seen(ROW, env(phone_update(lsn=100))) is True


# --- CdcTranslator -----------------------------------------------------------------


@pytest.fixture
def codec() -> SingleObjectCodec:
    return SingleObjectCodec()


@pytest.fixture
def translator(codec: SingleObjectCodec) -> CdcTranslator:
    return CdcTranslator(TENANT, SOURCE, load_mapping(), codec)


def test_phone_update_yields_state_change_and_four_commands(translator: CdcTranslator) -> None:
    records = translator.records(message(phone_update()))

    assert [r.topic for r in records] == [STATE_TOPIC, CHANGES_TOPIC, *COMMAND_TOPICS]
    assert records[0].key == ROW_KEY
    assert records[1].key == ROW_KEY
    assert all(r.value is not None for r in records)


def test_phone_update_state_record(translator: CdcTranslator, codec: SingleObjectCodec) -> None:
    state_record = translator.records(message(phone_update()))[0]

    state = decode_as(codec, state_record.value, EntityState)
    assert state.entity == "students"
    assert state.entity_id == STUDENT_ID
    assert state.header.tenant == TENANT
    assert state.attributes == student(phone=NEW_PHONE)
    assert state.source.lsn == LSN
    assert state.source.snapshot is False
    assert header_value(state_record.headers, "event_type") == "sync.entity.state"
    assert header_value(state_record.headers, "tenant") == TENANT


def test_phone_update_change_record(translator: CdcTranslator, codec: SingleObjectCodec) -> None:
    change_record = translator.records(message(phone_update()))[1]

    change = decode_as(codec, change_record.value, EntityChange)
    assert change.op is ChangeOp.UPDATE
    assert change.entity == "students"
    assert change.entity_id == STUDENT_ID
    assert change.changes == [FieldChange(field="phone", old=OLD_PHONE, new=NEW_PHONE)]
    assert header_value(change_record.headers, "event_type") == "sync.entity.changed"


def test_phone_update_command_records(translator: CdcTranslator, codec: SingleObjectCodec) -> None:
    records = translator.records(message(phone_update()))
    change = decode_as(codec, records[1].value, EntityChange)

    commands = [decode_as(codec, r.value, ConnectorCommand) for r in records[2:]]

    assert [c.provider for c in commands] == ["gworkspace", "mobileapp", "smsgateway", "fcm"]
    assert all(c.idempotency_key.endswith(f":students:{STUDENT_ID}:{LSN}") for c in commands)
    assert {c.ordering_key for c in commands} == {f"students:{STUDENT_ID}"}
    assert {r.key for r in records[2:]} == {f"{TENANT}:students:{STUDENT_ID}"}
    assert all(c.header.causation_id == change.header.event_id for c in commands)
    assert all(c.header.correlation_id == change.header.correlation_id for c in commands)
    assert commands[0].payload.model_dump() == {"user_email": EMAIL, "mobile_phone": NEW_PHONE}
    assert commands[2].payload == UpdateSmsContact(student_id=STUDENT_ID, phone=NEW_PHONE)
    push = commands[3].payload
    assert isinstance(push, SendPush)
    assert push.topic == f"student-{STUDENT_ID}"
    assert push.body == "Your contact number has been updated"


def test_schema_wrapped_event_yields_the_same_records(translator: CdcTranslator) -> None:
    records = translator.records(message(schema_wrapped(phone_update())))

    assert [r.topic for r in records] == [STATE_TOPIC, CHANGES_TOPIC, *COMMAND_TOPICS]


def test_create_yields_state_change_and_the_create_commands(
    translator: CdcTranslator, codec: SingleObjectCodec
) -> None:
    records = translator.records(message(insert()))

    assert [r.topic for r in records] == [
        STATE_TOPIC,
        CHANGES_TOPIC,
        "connector.mobileapp.commands.v1",
        "connector.smsgateway.commands.v1",
    ]
    assert decode_as(codec, records[1].value, EntityChange).op is ChangeOp.CREATE


@pytest.mark.parametrize("marker", ["true", "first", "last_in_data_collection"])
def test_snapshot_read_yields_only_the_state(
    translator: CdcTranslator, codec: SingleObjectCodec, marker: str
) -> None:
    records = translator.records(message(snapshot_read(marker)))

    assert [r.topic for r in records] == [STATE_TOPIC]
    state = decode_as(codec, records[0].value, EntityState)
    assert state.source.snapshot is True
    assert state.attributes == student()


def test_snapshot_read_of_the_same_row_twice_yields_the_state_twice(
    translator: CdcTranslator,
) -> None:
    first = translator.records(message(snapshot_read()))
    second = translator.records(message(snapshot_read()))

    assert [r.topic for r in first] == [r.topic for r in second] == [STATE_TOPIC]


def test_delete_yields_a_tombstone_and_a_change(
    translator: CdcTranslator, codec: SingleObjectCodec
) -> None:
    records = translator.records(message(delete()))

    assert len(records) == 2
    assert records[0] == Record(STATE_TOPIC, ROW_KEY, None, [])
    assert records[1].topic == CHANGES_TOPIC
    assert records[1].key == ROW_KEY
    change = decode_as(codec, records[1].value, EntityChange)
    assert change.op is ChangeOp.DELETE
    assert all(c.new is None for c in change.changes)
    assert {c.field for c in change.changes} == set(student())


def test_update_that_changes_nothing_yields_only_the_state(translator: CdcTranslator) -> None:
    doc = event("u", student(), student(notes="__debezium_unavailable_value"))

    assert [r.topic for r in translator.records(message(doc))] == [STATE_TOPIC]


def test_update_of_an_unmapped_column_yields_no_commands(translator: CdcTranslator) -> None:
    doc = event("u", student(), student(grade="11"))

    assert [r.topic for r in translator.records(message(doc))] == [STATE_TOPIC, CHANGES_TOPIC]


def test_another_table_goes_to_its_own_topics_without_commands(
    translator: CdcTranslator,
) -> None:
    guardian = {"id": "G1", "student_id": STUDENT_ID, "phone": OLD_PHONE}
    doc = event("u", guardian, {**guardian, "phone": NEW_PHONE}, table="guardians")

    records = translator.records(message(doc, "G1"))

    assert [r.topic for r in records] == [
        "sync.erp.guardians.state.v1",
        "sync.erp.guardians.changes.v1",
    ]
    assert records[0].key == f"{TENANT}:G1"


def test_debezium_tombstone_yields_nothing(translator: CdcTranslator) -> None:
    assert translator.records(FakeMessage(None, key_bytes())) == []


def test_the_same_event_twice_is_a_replay(translator: CdcTranslator) -> None:
    assert len(translator.records(message(phone_update()))) == 6

    assert translator.records(message(phone_update())) == []
    assert translator.records(message(delete(lsn=LSN - 10))) == []


def test_a_newer_change_of_the_row_after_a_replay_is_translated(
    translator: CdcTranslator,
) -> None:
    translator.records(message(phone_update()))
    translator.records(message(phone_update()))

    later = event("u", student(phone=NEW_PHONE), student(phone=OLD_PHONE), lsn=LSN + 64)

    assert len(translator.records(message(later))) == 6


def test_the_same_lsn_on_another_row_is_not_a_replay(translator: CdcTranslator) -> None:
    translator.records(message(phone_update()))

    other = event("u", student(id="777"), student(id="777", phone=NEW_PHONE))
    records = translator.records(message(other, "777"))

    assert len(records) == 6
    assert records[0].key == f"{TENANT}:777"


def test_a_restarted_translator_gives_a_replayed_change_the_same_idempotency_keys(
    codec: SingleObjectCodec,
) -> None:
    def keys(translator: CdcTranslator) -> list[str]:
        records = translator.records(message(phone_update()))
        return [decode_as(codec, r.value, ConnectorCommand).idempotency_key for r in records[2:]]

    first = keys(CdcTranslator(TENANT, SOURCE, load_mapping(), codec))
    again = keys(CdcTranslator(TENANT, SOURCE, load_mapping(), codec))

    assert len(first) == 4
    assert again == first


def test_translator_reads_confluent_avro_with_its_schema_lookup(codec: SingleObjectCodec) -> None:
    writer = parsed(envelope_schema())
    registry = Registry({9: writer})
    translator = CdcTranslator(TENANT, SOURCE, load_mapping(), codec, registry)
    doc = phone_update()
    record = {**doc, "before": avro_row(doc["before"]), "after": avro_row(doc["after"])}

    records = translator.records(FakeMessage(confluent_avro(9, writer, record), key_bytes()))

    assert registry.asked == [9]
    assert [r.topic for r in records] == [STATE_TOPIC, CHANGES_TOPIC, *COMMAND_TOPICS]


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b'{"op": "u"',
        as_json({**phone_update(), "op": "x"}),
        as_json({**phone_update(), "source": None}),
        as_json({**phone_update(), "after": None}),
        as_json(event("d", None, None)),
        as_json(["u"]),
    ],
)
def test_malformed_event_raises_an_envelope_error(translator: CdcTranslator, value: bytes) -> None:
    with pytest.raises(EnvelopeError):
        translator.records(FakeMessage(value, key_bytes()))


def test_event_without_a_key_raises_an_envelope_error(translator: CdcTranslator) -> None:
    with pytest.raises(EnvelopeError, match="without a key"):
        translator.records(FakeMessage(as_json(phone_update()), None))


def test_a_failed_event_is_not_marked_applied(translator: CdcTranslator) -> None:
    removed = event("u", student(), student(phone=None))

    with pytest.raises(MappingError, match="sms-contacts"):
        translator.records(message(removed))

    assert translator.replays.applied == {}
    with pytest.raises(MappingError):
        translator.records(message(removed))


DELETE_TARGET = """
[[targets]]
name = "parent-push-removed"
entity = "students"
provider = "fcm"
operation = "push.send"
ops = ["delete"]
when_changed = ["id"]
[targets.fields]
topic = "student-{id}"
title = "Student record removed"
body = "{name} was removed from the school's records"
[targets.fields.data]
student_id = "{id}"
"""


def test_a_delete_target_renders_the_deleted_row(tmp_path: Path, codec: SingleObjectCodec) -> None:
    path = tmp_path / "sync_mapping.toml"
    path.write_text(DELETE_TARGET)
    translator = CdcTranslator(TENANT, SOURCE, load_mapping(path), codec)

    records = translator.records(message(delete()))

    assert [r.topic for r in records] == [
        STATE_TOPIC,
        CHANGES_TOPIC,
        "connector.fcm.commands.v1",
    ]
    push = decode_as(codec, records[2].value, ConnectorCommand).payload
    assert isinstance(push, SendPush)
    assert push.topic == f"student-{STUDENT_ID}"
    assert push.data == {"student_id": STUDENT_ID}
