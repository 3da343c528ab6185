"""Database changes drive cross-system sync: PostgreSQL -> Debezium -> CDC consumer -> systems.

Seed 000, use case 3: a teacher updates a student's phone; Google Workspace,
the mobile app backend and the SMS gateway's contacts are updated and the
parents get a push, within 5 seconds.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from support import TENANT, unique_phone

from core.kafka import read_to_end
from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import changes_topic, dlq_topic, state_topic
from hub import erp
from hub.stack import HubStack
from schemas.codec import SingleObjectCodec
from schemas.events import ChangeOp, DeadLetter, EntityChange, EntityState, decode_as
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

SYNC_PROVIDERS = ("gworkspace", "mobileapp", "smsgateway", "fcm")


def new_student(settings: Settings, **extra: Any) -> dict[str, Any]:
    sid = f"S{secrets.randbelow(10**9)}"
    row = {
        "id": sid,
        "name": "Rohan Sharma",
        "grade": "10",
        "section": "A",
        "email": f"student.{sid.lower()}@greenwood.school.example",
        "phone": unique_phone(),
        **extra,
    }
    erp.insert_student(erp.engine_for(settings.source_dsn), row)
    return row


def calls_for(
    sim: SimulatorClient, student: dict[str, Any], phone: str
) -> dict[str, list[dict[str, Any]]]:
    """Every call each sync target received that carries `phone` for this student."""
    sid = student["id"]
    return {
        "gworkspace": [
            r
            for r in sim.requests("gworkspace")
            if student["email"] in r["path"] and phone in str(r["body"])
        ],
        "mobileapp": [
            r
            for r in sim.requests("mobileapp")
            if f"/students/{sid}/" in r["path"] and r["body"].get("phone") == phone
        ],
        "smsgateway": [
            r for r in sim.requests("smsgateway", studentId=sid) if r["body"].get("phone") == phone
        ],
        "fcm": [
            r
            for r in sim.requests("fcm")
            if r["body"].get("message", {}).get("topic") == f"student-{sid}"
        ],
    }


def wait_calls(
    sim: SimulatorClient, student: dict[str, Any], phone: str, timeout: float = 15
) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    while True:
        calls = calls_for(sim, student, phone)
        if all(calls.values()) or time.monotonic() > deadline:
            return calls
        time.sleep(0.2)


def states(settings: Settings, table: str, key: str) -> list[bytes | None]:
    return [
        m.value()
        for m in read_to_end(settings, state_topic("erp", table))
        if m.key() == key.encode()
    ]


def test_a_phone_update_reaches_every_system_once_within_5_seconds(
    hub_settings: Settings, stack: HubStack, sim: SimulatorClient
) -> None:
    student = new_student(hub_settings)
    sid, old = student["id"], student["phone"]
    wait_calls(sim, student, old)  # the insert's own sync (mobile app, SMS contacts)
    new = unique_phone()
    with TopicWatcher(hub_settings, [changes_topic("erp", "students")]) as watch:
        committed = time.time()
        erp.update_student(erp.engine_for(hub_settings.source_dsn), sid, phone=new)
        calls = wait_calls(sim, student, new, timeout=10)
        change = watch.wait_for(
            EntityChange, lambda c: c.entity_id == sid and c.op is ChangeOp.UPDATE, timeout=10
        )
        watch.settle(2.0)
        updates = watch.find(EntityChange, lambda c: c.entity_id == sid and c.op is ChangeOp.UPDATE)
    assert {p: len(c) for p, c in calls_for(sim, student, new).items()} == dict.fromkeys(
        SYNC_PROVIDERS, 1
    )
    slowest = max(c[0]["received_at"] for c in calls.values()) - committed
    assert slowest < 5.0, f"the last system was updated {slowest:.1f}s after the commit"
    directory = calls["gworkspace"][0]
    assert directory["method"] == "PATCH"
    assert directory["body"]["phones"][0]["value"] == new
    assert calls["mobileapp"][0]["method"] == "PUT"
    assert (
        calls["fcm"][0]["body"]["message"]["notification"]["body"]
        == "Your contact number has been updated"
    )
    assert len(updates) == 1
    assert [(f.field, f.old, f.new) for f in change[0].changes if f.field == "phone"] == [
        ("phone", old, new)
    ]
    assert change[0].source.lsn is not None and change[0].header.tenant == TENANT
    latest = decode_as(
        SingleObjectCodec(), states(hub_settings, "students", f"{TENANT}:{sid}")[-1], EntityState
    )
    assert latest.attributes["phone"] == new


def test_an_insert_appears_and_a_delete_is_a_tombstone(
    hub_settings: Settings, stack: HubStack, sim: SimulatorClient
) -> None:
    student = new_student(hub_settings)
    key = f"{TENANT}:{student['id']}"
    deadline = time.monotonic() + 15
    while not states(hub_settings, "students", key) and time.monotonic() < deadline:
        time.sleep(0.3)
    first = decode_as(SingleObjectCodec(), states(hub_settings, "students", key)[0], EntityState)
    assert first.attributes["name"] == "Rohan Sharma" and first.source.snapshot is False

    erp.delete_students(erp.engine_for(hub_settings.source_dsn), [student["id"]])
    deadline = time.monotonic() + 15
    while states(hub_settings, "students", key)[-1] is not None and time.monotonic() < deadline:
        time.sleep(0.3)
    assert states(hub_settings, "students", key)[-1] is None


def test_the_snapshot_publishes_state_but_calls_no_system(
    hub_settings: Settings, stack: HubStack, sim: SimulatorClient
) -> None:
    seeded = erp.SEED_STUDENTS[0]
    key = f"{TENANT}:{seeded['id']}"
    deadline = time.monotonic() + 15
    while not states(hub_settings, "students", key) and time.monotonic() < deadline:
        time.sleep(0.3)
    state = decode_as(SingleObjectCodec(), states(hub_settings, "students", key)[0], EntityState)
    assert state.source.snapshot is True
    assert state.attributes["phone"] == seeded["phone"]
    assert not any(calls_for(sim, seeded, seeded["phone"]).values())
    assert [
        m
        for m in read_to_end(hub_settings, changes_topic("erp", "students"))
        if m.key() == key.encode()
    ] == []


def test_unchanged_large_values_and_new_columns_do_not_disturb_the_stream(
    hub_settings: Settings, stack: HubStack, sim: SimulatorClient
) -> None:
    notes = secrets.token_hex(8000)  # 16 kB of incompressible text: stored out of line (TOAST)
    student = new_student(hub_settings, notes=notes)
    engine = erp.engine_for(hub_settings.source_dsn)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE students ADD COLUMN IF NOT EXISTS nickname TEXT")
    new = unique_phone()
    with TopicWatcher(hub_settings, [changes_topic("erp", "students")]) as watch:
        with engine.begin() as conn:  # the ERP's code knows the new column; ours does not
            conn.exec_driver_sql(
                "UPDATE students SET phone = %s, nickname = %s WHERE id = %s",
                (new, "Ro", student["id"]),
            )
        change = watch.wait_for(
            EntityChange,
            lambda c: c.entity_id == student["id"] and c.op is ChangeOp.UPDATE,
            timeout=15,
        )[0]
    fields = {f.field for f in change.changes}
    assert "notes" not in fields, "an unchanged TOAST column is not a change"
    assert {"phone", "nickname"} <= fields
    latest = decode_as(
        SingleObjectCodec(),
        states(hub_settings, "students", f"{TENANT}:{student['id']}")[-1],
        EntityState,
    )
    assert latest.attributes["notes"] == notes
    assert latest.attributes["nickname"] == "Ro"


def test_a_consumer_killed_mid_stream_loses_nothing_and_calls_nobody_twice(
    hub_settings: Settings, stack: HubStack, sim: SimulatorClient
) -> None:
    student = new_student(hub_settings)
    engine = erp.engine_for(hub_settings.source_dsn)
    phones = [unique_phone() for _ in range(20)]
    consumer = stack.supervisor.services["cdc-consumer"]
    for n, phone in enumerate(phones):
        erp.update_student(engine, student["id"], phone=phone)
        if n == 8:
            assert consumer.proc is not None
            consumer.proc.kill()  # SIGKILL: no goodbye, an open transaction is abandoned
        time.sleep(0.1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not calls_for(sim, student, phones[-1])["smsgateway"]:
        time.sleep(0.5)
    time.sleep(2.0)
    assert consumer.restarts >= 1
    changes = [
        decode_as(SingleObjectCodec(), m.value(), EntityChange)
        for m in read_to_end(hub_settings, changes_topic("erp", "students"))
        if m.key() == f"{TENANT}:{student['id']}".encode()
    ]
    updates = [c for c in changes if c.op is ChangeOp.UPDATE]
    assert [next(f.new for f in c.changes if f.field == "phone") for c in updates] == phones
    for phone in phones:
        assert len(calls_for(sim, student, phone)["smsgateway"]) == 1, phone


def test_a_target_answering_503_does_not_delay_the_others(
    hub_settings: Settings, stack: HubStack, sim: SimulatorClient
) -> None:
    student = new_student(hub_settings)
    wait_calls(sim, student, student["phone"])
    new = unique_phone()
    sim.add_fault("mobileapp", status=503, times=1000, match={"phone": new})
    with TopicWatcher(hub_settings, [dlq_topic("connector-mobileapp")]) as watch:
        committed = time.time()
        erp.update_student(erp.engine_for(hub_settings.source_dsn), student["id"], phone=new)
        deadline = time.monotonic() + 10
        others: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline:
            others = {p: c for p, c in calls_for(sim, student, new).items() if p != "mobileapp"}
            if all(others.values()):
                break
            time.sleep(0.2)
        assert all(others.values()), others
        assert max(c[0]["received_at"] for c in others.values()) - committed < 5.0
        letter = watch.wait_for(
            DeadLetter,
            lambda d: (d.idempotency_key or "").startswith(
                f"sync:mobile-app:students:{student['id']}:"
            ),
            timeout=40,
        )[0]
    sim.clear_faults()
    assert letter.retryable and letter.provider == "mobileapp"
    assert all(r["response_status"] == 503 for r in calls_for(sim, student, new)["mobileapp"])


def test_the_source_resumes_after_a_crash_without_losing_or_repeating_a_change(
    hub_settings: Settings, stack: HubStack, sim: SimulatorClient
) -> None:
    student = new_student(hub_settings)
    wait_calls(sim, student, student["phone"])
    engine = erp.engine_for(hub_settings.source_dsn)
    before_crash, while_down = unique_phone(), unique_phone()
    source = stack.supervisor.services["cdc-source"]
    restarts = source.restarts
    erp.update_student(engine, student["id"], phone=before_crash)
    assert source.proc is not None
    source.proc.kill()  # its newest offsets were likely not flushed yet: Debezium will resend
    erp.update_student(engine, student["id"], phone=while_down)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not calls_for(sim, student, while_down)["smsgateway"]:
        time.sleep(0.5)
    time.sleep(3.0)
    assert source.restarts == restarts + 1
    for phone in (before_crash, while_down):
        calls = calls_for(sim, student, phone)
        once = ("gworkspace", "mobileapp", "smsgateway")
        assert {p: len(calls[p]) for p in once} == dict.fromkeys(once, 1), phone
    # A push names the student, not the number: one per change, two in all.
    assert len(calls_for(sim, student, while_down)["fcm"]) == 2
    changes = [
        decode_as(SingleObjectCodec(), m.value(), EntityChange)
        for m in read_to_end(hub_settings, changes_topic("erp", "students"))
        if m.key() == f"{TENANT}:{student['id']}".encode()
    ]
    phones = [
        next(f.new for f in c.changes if f.field == "phone")
        for c in changes
        if c.op is ChangeOp.UPDATE
    ]
    assert phones == [before_crash, while_down]
