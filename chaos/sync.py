"""Database changes as the ERP makes them, and what each system received.

Students are inserted and their phones changed, each change a committed
transaction; Debezium captures them, the CDC consumer turns them into
commands, the connectors call the four systems. Every phone value is used
once, so a value at a target names the change it came from.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from chaos.check import Tally
from chaos.env import Environment
from hub import erp

TARGETS = ("gworkspace", "mobileapp", "smsgateway")


@dataclass
class Student:
    id: str
    email: str
    phones: list[str] = field(default_factory=list)  # in the order they were committed


class SyncTraffic:
    def __init__(self, env: Environment, count: int) -> None:
        self.env = env
        self.engine = erp.engine_for(env.settings.source_dsn)
        tag = secrets.token_hex(3)
        self.run = secrets.randbelow(900) + 100
        self.students = [
            Student(f"C{tag}{i:04d}", f"s{i}.{tag}@{env.settings.cdc_tenant}.school.example")
            for i in range(count)
        ]
        self._next = 0

    def _phone(self) -> str:
        self._next += 1
        return f"+918{self.run:03d}{self._next:06d}"

    def insert_all(self) -> None:
        for student in self.students:
            phone = self._phone()
            erp.insert_student(
                self.engine,
                {"id": student.id, "name": "Chaos Student", "email": student.email, "phone": phone},
            )
            student.phones.append(phone)

    def update_round(self, rate: float) -> None:
        for student in self.students:
            tick = time.monotonic()
            phone = self._phone()
            erp.update_student(self.engine, student.id, phone=phone)
            student.phones.append(phone)
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - tick)))

    def bulk_round(self) -> None:
        """Every student's phone changed in ONE database transaction (a bulk update)."""
        phones = {student.id: self._phone() for student in self.students}
        with self.engine.begin() as conn:
            for student_id, phone in phones.items():
                conn.execute(
                    erp.students.update().where(erp.students.c.id == student_id).values(phone=phone)
                )
        for student in self.students:
            student.phones.append(phones[student.id])


def _applied(requests: list[dict[str, Any]], student: Student) -> dict[str, list[str]]:
    """Phone values each target accepted for this student, in arrival order."""
    seen: dict[str, list[str]] = {t: [] for t in TARGETS}
    for r in requests:
        if r.get("response_status") not in (200, 201, 202) or r.get("method") == "GET":
            continue
        raw = r.get("body")
        body: dict[str, Any] = raw if isinstance(raw, dict) else {}
        provider = r["provider"]
        if provider == "gworkspace" and student.email in r["path"]:
            phones = body.get("phones") or [{}]
            seen["gworkspace"].append(str(phones[0].get("value")))
        elif provider == "mobileapp" and f"/students/{student.id}/" in r["path"]:
            seen["mobileapp"].append(str(body.get("phone")))
        elif provider == "smsgateway" and body.get("studentId") == student.id:
            seen["smsgateway"].append(str(body.get("phone")))
    return seen


def judge_sync(env: Environment, students: list[Student]) -> Tally:
    requests = env.sim.requests()
    pushes = _notifications(requests)
    tally = Tally()
    for student in students:
        applied = _applied(requests, student)
        for target, values in applied.items():
            expected = student.phones if target != "gworkspace" else student.phones[1:]
            _judge_target(tally, f"{target} {student.id}", values, expected)
        changes = len(student.phones) - 1  # the updates; the insert sends no push
        if pushes[student.id] > changes:
            tally.duplicated += pushes[student.id] - changes
        if pushes[student.id] < changes:
            tally.lost += changes - pushes[student.id]
            tally.notes.append(f"push {student.id}: {pushes[student.id]}/{changes}")
    return tally


def _notifications(requests: list[dict[str, Any]]) -> Counter[str]:
    """Push notifications a parent's device shows, per student: sends with the same tag
    (FCM's android.notification.tag / apns-collapse-id) replace each other."""
    shown: set[tuple[str, str]] = set()
    for r in requests:
        if r["provider"] != "fcm" or r.get("response_status") != 200:
            continue
        message = (r.get("body") or {}).get("message") or {}
        tag = str(((message.get("android") or {}).get("notification") or {}).get("tag"))
        shown.add((str((message.get("data") or {}).get("student_id")), tag))
    return Counter(student for student, _tag in shown)


def _judge_target(tally: Tally, what: str, values: list[str], expected: list[str]) -> None:
    position = {phone: i for i, phone in enumerate(expected)}
    counts = Counter(values)
    tally.duplicated += sum(n - 1 for n in counts.values() if n > 1)
    order = [position.get(v, -1) for v in values]
    tally.out_of_order += sum(1 for a, b in pairwise(order) if b < a)
    if not values or values[-1] != expected[-1]:
        tally.lost += 1
        if len(tally.notes) < 8:
            tally.notes.append(f"{what}: got {values}, expected to end with {expected[-1]}")


def wait_for_sync(env: Environment, students: list[Student], timeout: float) -> Tally:
    deadline = time.monotonic() + timeout
    tally = judge_sync(env, students)
    while tally.lost and time.monotonic() < deadline:
        time.sleep(2.0)
        tally = judge_sync(env, students)
    return tally
