"""Seed 000, use case 3, played against a running hub: a teacher changes a student's phone.

PostgreSQL -> Debezium -> the CDC consumer -> Google Workspace, the mobile app
backend, the SMS gateway's contacts, and a push to the parents. Each step is
timed from the database commit, by the simulators' own receipt times.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import changes_topic
from hub import erp
from hub.demo import Step, StoryFailedError
from schemas.events import ChangeOp, EntityChange
from simulators.client import SimulatorClient

STUDENT = erp.SEED_STUDENTS[0]


def _matches(
    provider: str, request: dict[str, Any], student_id: str, email: str, phone: str
) -> bool:
    body = request.get("body") or {}
    if provider == "gworkspace":
        return email in request["path"] and phone in str(body)
    if provider == "mobileapp":
        return f"/students/{student_id}/" in request["path"] and body.get("phone") == phone
    if provider == "smsgateway":
        return body.get("studentId") == student_id and body.get("phone") == phone
    topic = body.get("message", {}).get("topic")
    return bool(topic == f"student-{student_id}")


SYSTEMS = {
    "gworkspace": "Google Workspace directory updated",
    "mobileapp": "Mobile app profile updated",
    "smsgateway": "SMS gateway contact updated",
    "fcm": "Parents notified by push",
}


class PhoneSyncStory:
    def __init__(
        self,
        settings: Settings,
        sim: SimulatorClient,
        report: Callable[[Step], None] = lambda _s: None,
        timeout: float = 20.0,
    ) -> None:
        self.settings = settings
        self.sim = sim
        self.report = report
        self.timeout = timeout
        self.steps: list[Step] = []

    def _step(self, title: str, detail: str, latency_ms: float) -> None:
        step = Step(title, detail, latency_ms)
        self.steps.append(step)
        self.report(step)

    def play(self) -> list[Step]:
        sid, email = STUDENT["id"], STUDENT["email"]
        phone = f"+9199{secrets.randbelow(10**8):08d}"
        engine = erp.engine_for(self.settings.source_dsn)
        source = self.settings.cdc_source_name
        with TopicWatcher(self.settings, [changes_topic(source, "students")]) as watch:
            started = time.perf_counter()
            committed = time.time()
            erp.update_student(engine, sid, phone=phone)
            self._step(
                "Teacher updated the phone in the ERP (PostgreSQL)",
                f"student {sid}: phone -> {phone} (an UPDATE, committed)",
                (time.perf_counter() - started) * 1000,
            )
            change = watch.wait_for(
                EntityChange,
                lambda c: (
                    c.entity_id == sid
                    and c.op is ChangeOp.UPDATE
                    and any(f.new == phone for f in c.changes)
                ),
                timeout=self.timeout,
            )[0]
            self._step(
                "Debezium captured it; the CDC consumer published the change",
                f"lsn {change.source.lsn}: "
                + ", ".join(
                    f"{f.field} {f.old} -> {f.new}"
                    for f in change.changes
                    if f.field != "updated_at"
                ),
                (change.header.occurred_at.timestamp() - committed) * 1000,
            )
        self._await_systems(sid, email, phone, committed)
        return self.steps

    def _await_systems(self, sid: str, email: str, phone: str, committed: float) -> None:
        pending = dict(SYSTEMS)
        deadline = time.monotonic() + self.timeout
        while pending and time.monotonic() < deadline:
            for provider in list(pending):
                hits = [
                    r
                    for r in self.sim.requests(provider)
                    if _matches(provider, r, sid, email, phone)
                ]
                if hits:
                    arrived = hits[0]["received_at"] - committed
                    self._step(
                        pending.pop(provider),
                        f"{hits[0]['method']} {hits[0]['path']}",
                        arrived * 1000,
                    )
            time.sleep(0.1)
        if pending:
            raise StoryFailedError(f"not updated within {self.timeout:.0f}s: {', '.join(pending)}")
