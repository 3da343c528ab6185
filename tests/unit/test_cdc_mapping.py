"""processors.cdc.mapping: the declarative sync mapping and the commands a change causes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cdc_support import EMAIL, LSN, NAME, NEW_PHONE, STUDENT_ID, TENANT, student

from processors.cdc.mapping import (
    DEFAULT_MAPPING,
    Change,
    MappingError,
    Target,
    commands_for,
    load_mapping,
    render,
)
from schemas.events import (
    EventHeader,
    SendPush,
    UpdateAppProfile,
    UpdateDirectoryUser,
    UpdateSmsContact,
)

POSITION = str(LSN)

# --- render ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "row", "expected"),
    [
        ("{phone}", {"phone": NEW_PHONE}, NEW_PHONE),
        ("{phone}", {"phone": None}, None),
        ("{phone}", {}, None),
        ("{id}", {"id": 12345}, "12345"),
        ("{ratio}", {"ratio": 2.5}, "2.5"),
        ("{active}", {"active": True}, "True"),
        ("student-{id}", {"id": "12345"}, "student-12345"),
        ("student-{id}", {"id": 12345}, "student-12345"),
        ("student-{id}", {"id": None}, "student-"),
        ("student-{id}", {}, "student-"),
        ("{name} <{email}>", {"name": NAME, "email": None}, f"{NAME} <>"),
        ("{name} <{email}>", {"name": NAME, "email": EMAIL}, f"{NAME} <{EMAIL}>"),
        ("{phone}{phone}", {"phone": None}, ""),
        (
            "Your contact number has been updated",
            {"phone": "1"},
            "Your contact number has been updated",
        ),
        ("", {}, ""),
    ],
)
def test_render(template: str, row: dict[str, Any], expected: str | None) -> None:
    assert render(template, row) == expected


# --- load_mapping ------------------------------------------------------------------


def test_default_mapping_has_the_four_student_phone_targets() -> None:
    targets = {t.name: t for t in load_mapping()}

    assert list(targets) == ["google-directory", "mobile-app", "sms-contacts", "parent-push"]
    assert {n: (t.provider, t.operation) for n, t in targets.items()} == {
        "google-directory": ("gworkspace", "directory.update_user"),
        "mobile-app": ("mobileapp", "app.update_profile"),
        "sms-contacts": ("smsgateway", "contacts.update"),
        "parent-push": ("fcm", "push.send"),
    }
    assert all(t.entity == "students" for t in targets.values())
    assert targets["google-directory"].ops == frozenset({"update"})
    assert targets["parent-push"].ops == frozenset({"update"})
    assert targets["mobile-app"].ops == frozenset({"create", "update"})
    assert targets["sms-contacts"].ops == frozenset({"create", "update"})
    assert targets["mobile-app"].when_changed == frozenset({"phone", "email", "name"})
    for name in ("google-directory", "sms-contacts", "parent-push"):
        assert targets[name].when_changed == frozenset({"phone"})


def test_default_mapping_field_templates() -> None:
    targets = {t.name: t for t in load_mapping(DEFAULT_MAPPING)}

    assert targets["google-directory"].fields == {
        "user_email": "{email}",
        "mobile_phone": "{phone}",
    }
    assert targets["mobile-app"].fields == {
        "student_id": "{id}",
        "profile": {"name": "{name}", "phone": "{phone}", "email": "{email}"},
    }
    assert targets["sms-contacts"].fields == {"student_id": "{id}", "phone": "{phone}"}
    assert targets["parent-push"].fields["topic"] == "student-{id}"
    assert targets["parent-push"].fields["body"] == "Your contact number has been updated"
    assert targets["parent-push"].fields["data"] == {"student_id": "{id}"}


GOOD_TARGET = """
[[targets]]
name = "{name}"
entity = "students"
provider = "{provider}"
operation = "{operation}"
when_changed = ["phone"]
[targets.fields]
student_id = "{{id}}"
{field} = "{{phone}}"
"""


def mapping_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sync_mapping.toml"
    path.write_text(text)
    return path


def target_toml(
    name: str = "sms",
    provider: str = "smsgateway",
    operation: str = "contacts.update",
    field: str = "phone",
) -> str:
    return GOOD_TARGET.format(name=name, provider=provider, operation=operation, field=field)


def test_load_mapping_reads_a_custom_file_with_default_ops(tmp_path: Path) -> None:
    (target,) = load_mapping(mapping_file(tmp_path, target_toml()))

    assert target == Target(
        name="sms",
        entity="students",
        provider="smsgateway",
        operation="contacts.update",
        ops=frozenset({"create", "update"}),
        when_changed=frozenset({"phone"}),
        fields={"student_id": "{id}", "phone": "{phone}"},
    )


def test_load_mapping_of_a_file_without_targets_is_empty(tmp_path: Path) -> None:
    assert load_mapping(mapping_file(tmp_path, "# nothing to sync\n")) == []


def test_load_mapping_rejects_an_unknown_provider(tmp_path: Path) -> None:
    path = mapping_file(tmp_path, target_toml(provider="carrierpigeon"))

    with pytest.raises(MappingError, match="sms: unknown provider 'carrierpigeon'"):
        load_mapping(path)


def test_load_mapping_rejects_an_unknown_operation_and_names_the_choices(tmp_path: Path) -> None:
    path = mapping_file(tmp_path, target_toml(operation="contacts.upsert"))

    with pytest.raises(MappingError, match=r"unknown operation 'contacts\.upsert'") as err:
        load_mapping(path)

    for operation in (
        "directory.update_user",
        "app.update_profile",
        "contacts.update",
        "push.send",
    ):
        assert operation in str(err.value)


def test_load_mapping_rejects_a_payload_field_the_operation_does_not_have(tmp_path: Path) -> None:
    path = mapping_file(tmp_path, target_toml(field="mobile"))

    with pytest.raises(MappingError, match=r"sms: contacts.update has no field\(s\) \['mobile'\]"):
        load_mapping(path)


@pytest.mark.parametrize("key", ["entity", "provider", "operation", "when_changed", "fields"])
def test_load_mapping_rejects_a_target_missing_a_key(tmp_path: Path, key: str) -> None:
    lines = [
        line
        for line in target_toml().splitlines()
        if not line.startswith(f"{key} =") and not (key == "fields" and "fields" in line)
    ]
    if key == "fields":  # drop the [targets.fields] table's entries too
        lines = [line for line in lines if "{" not in line]
    path = mapping_file(tmp_path, "\n".join(lines))

    with pytest.raises(MappingError, match=f"sync target sms has no '{key}'"):
        load_mapping(path)


def test_load_mapping_rejects_a_target_without_a_name(tmp_path: Path) -> None:
    text = "\n".join(line for line in target_toml().splitlines() if not line.startswith("name ="))

    with pytest.raises(MappingError, match=r"sync target \? has no 'name'"):
        load_mapping(mapping_file(tmp_path, text))


def test_load_mapping_rejects_duplicate_target_names(tmp_path: Path) -> None:
    path = mapping_file(tmp_path, target_toml() + target_toml(provider="twilio"))

    with pytest.raises(MappingError, match="target names must be unique"):
        load_mapping(path)


def test_load_mapping_accepts_distinct_target_names(tmp_path: Path) -> None:
    path = mapping_file(tmp_path, target_toml("a") + target_toml("b"))

    assert [t.name for t in load_mapping(path)] == ["a", "b"]


def test_load_mapping_rejects_invalid_toml(tmp_path: Path) -> None:
    path = mapping_file(tmp_path, "[[targets]\nname = sms\n")

    with pytest.raises(MappingError, match="cannot read the sync mapping"):
        load_mapping(path)


def test_load_mapping_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read the sync mapping"):
        load_mapping(tmp_path / "absent.toml")


# --- Target.applies ----------------------------------------------------------------


@pytest.fixture(scope="module")
def targets() -> list[Target]:
    return load_mapping()


def by_name(targets: list[Target], name: str) -> Target:
    return next(t for t in targets if t.name == name)


PHONE = frozenset({"phone"})


@pytest.mark.parametrize(
    ("entity", "op", "changed", "expected"),
    [
        ("students", "u", PHONE, True),
        ("students", "update", PHONE, True),
        ("students", "u", frozenset({"grade", "phone"}), True),
        ("students", "c", PHONE, False),  # update only
        ("students", "d", PHONE, False),
        ("students", "r", PHONE, False),
        ("guardians", "u", PHONE, False),
        ("students", "u", frozenset({"email"}), False),
        ("students", "u", frozenset(), False),
    ],
)
def test_google_directory_applies(
    targets: list[Target], entity: str, op: str, changed: frozenset[str], expected: bool
) -> None:
    assert by_name(targets, "google-directory").applies(entity, op, changed) is expected


@pytest.mark.parametrize(
    ("op", "changed", "expected"),
    [
        ("c", frozenset({"name"}), True),
        ("u", frozenset({"email"}), True),
        ("create", frozenset({"phone"}), True),
        ("d", frozenset({"phone"}), False),
        ("u", frozenset({"grade"}), False),
    ],
)
def test_mobile_app_applies(
    targets: list[Target], op: str, changed: frozenset[str], expected: bool
) -> None:
    assert by_name(targets, "mobile-app").applies("students", op, changed) is expected


# --- commands_for ------------------------------------------------------------------


def cause() -> EventHeader:
    return EventHeader.new("sync.entity.changed", TENANT, source="cdc-consumer")


def change(
    op: str = "u",
    changed: frozenset[str] = PHONE,
    row: dict[str, Any] | None = None,
    position: str = POSITION,
    entity: str = "students",
    header: EventHeader | None = None,
) -> Change:
    return Change(
        TENANT,
        entity,
        STUDENT_ID,
        op,
        changed,
        student(phone=NEW_PHONE) if row is None else row,
        position,
        header or cause(),
    )


def test_phone_update_yields_one_command_per_system(targets: list[Target]) -> None:
    commands = commands_for(change(), targets)

    assert [c.provider for c in commands] == ["gworkspace", "mobileapp", "smsgateway", "fcm"]
    assert [c.operation for c in commands] == [
        "directory.update_user",
        "app.update_profile",
        "contacts.update",
        "push.send",
    ]


def test_phone_update_payloads(targets: list[Target]) -> None:
    directory, app, sms, push = (c.payload for c in commands_for(change(), targets))

    assert directory == UpdateDirectoryUser(user_email=EMAIL, mobile_phone=NEW_PHONE)
    assert app == UpdateAppProfile(
        student_id=STUDENT_ID, profile={"name": NAME, "phone": NEW_PHONE, "email": EMAIL}
    )
    assert sms == UpdateSmsContact(student_id=STUDENT_ID, phone=NEW_PHONE)
    assert isinstance(push, SendPush)
    assert push.topic == f"student-{STUDENT_ID}"
    assert push.body == "Your contact number has been updated"
    assert push.title == "Contact details updated"
    assert push.data == {"student_id": STUDENT_ID}


def test_phone_update_keys_and_context(targets: list[Target]) -> None:
    commands = commands_for(change(), targets)

    assert [c.idempotency_key for c in commands] == [
        f"sync:{name}:students:{STUDENT_ID}:{POSITION}"
        for name in ("google-directory", "mobile-app", "sms-contacts", "parent-push")
    ]
    assert {c.ordering_key for c in commands} == {f"students:{STUDENT_ID}"}
    assert {c.key() for c in commands} == {f"{TENANT}:students:{STUDENT_ID}"}
    assert commands[0].context == {
        "target": "google-directory",
        "entity": "students",
        "entity_id": STUDENT_ID,
        "position": POSITION,
    }
    assert len({c.command_id for c in commands}) == 4


def test_the_same_position_yields_the_same_idempotency_keys(targets: list[Target]) -> None:
    first = commands_for(change(), targets)
    replayed = commands_for(change(), targets)
    later = commands_for(change(position=str(LSN + 88)), targets)

    assert [c.idempotency_key for c in replayed] == [c.idempotency_key for c in first]
    assert {c.command_id for c in replayed}.isdisjoint(c.command_id for c in first)
    keys_later = [c.idempotency_key for c in later]
    assert all(k.endswith(f":{LSN + 88}") for k in keys_later)
    assert set(keys_later).isdisjoint(c.idempotency_key for c in first)


def test_commands_are_caused_by_the_change(targets: list[Target]) -> None:
    header = cause()

    commands = commands_for(change(header=header), targets)

    for command in commands:
        assert command.header.tenant == TENANT
        assert command.header.correlation_id == header.correlation_id
        assert command.header.causation_id == header.event_id
        assert command.header.event_id != header.event_id
        assert command.header.event_type == f"connector.{command.operation}"
        assert command.header.source == "cdc-consumer"


def test_create_yields_only_the_app_profile_and_the_sms_contact(targets: list[Target]) -> None:
    row = student()
    created = change("c", frozenset(k for k, v in row.items() if v is not None), row)

    commands = commands_for(created, targets)

    assert [c.context["target"] for c in commands] == ["mobile-app", "sms-contacts"]
    assert [c.provider for c in commands] == ["mobileapp", "smsgateway"]


def test_name_change_yields_only_the_app_profile(targets: list[Target]) -> None:
    commands = commands_for(change(changed=frozenset({"name"})), targets)

    assert [c.provider for c in commands] == ["mobileapp"]


@pytest.mark.parametrize("fields", [{"grade"}, {"section", "notes", "updated_at"}, set()])
def test_change_of_unmapped_fields_yields_nothing(targets: list[Target], fields: set[str]) -> None:
    assert commands_for(change(changed=frozenset(fields)), targets) == []


def test_change_of_another_entity_yields_nothing(targets: list[Target]) -> None:
    guardian = {"id": "G1", "student_id": STUDENT_ID, "phone": NEW_PHONE, "email": EMAIL}

    assert commands_for(change(entity="guardians", row=guardian), targets) == []


@pytest.mark.parametrize("op", ["r", "d"])
def test_snapshot_read_and_delete_yield_nothing(targets: list[Target], op: str) -> None:
    assert commands_for(change(op, frozenset({"phone", "name", "email"})), targets) == []


def test_row_that_cannot_fill_a_required_field_is_a_mapping_error(targets: list[Target]) -> None:
    removed = change(row=student(phone=None))

    with pytest.raises(MappingError, match=r"sms-contacts: the row does not fill contacts.update"):
        commands_for(removed, targets)


def test_row_without_an_email_cannot_update_the_directory(targets: list[Target]) -> None:
    with pytest.raises(MappingError, match=r"google-directory.*user_email"):
        commands_for(change(row=student(email=None)), targets)


def test_no_targets_no_commands() -> None:
    assert commands_for(change(), []) == []
