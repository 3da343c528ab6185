"""Bulk sends: one template to many recipients, in batches, with a live report. No I/O.

A bulk arrives in parts (BulkSendRequest; producers split big ones so no record
outgrows Kafka's message size). Each recipient becomes a message of its own
(`<bulk id>:<index>`), QUEUED until its batch is released: the first batch at
once, each next one when none of the bulk's messages is still on its way to a
provider (IN_FLIGHT, or WAITING at a rate limit). So a bulk never floods a
provider past its limits, and a school's other messages are not stuck behind it.

The report is computed from the bulk's messages themselves (never a second
set of counters that could drift): sent, delivered, failed, pending, per
provider, the failures with their reasons, and how many were retried on the
alternate provider.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.topics import BULK_REPORTS
from processors.emit import Emit
from processors.message_flow import dispatch, render_into
from processors.messaging import (
    MessageState,
    MessageStatus,
    MessengerContext,
    finish,
    load,
    save,
    story,
)
from processors.state import Table
from processors.templates import TemplateError
from schemas.events import (
    BulkReport,
    BulkSendRequest,
    Channel,
    EventHeader,
    MessageStep,
    ProviderTally,
)

SOURCE = "messenger"
MAX_FAILURES_SHOWN = 100
ON_ITS_WAY = (MessageStatus.IN_FLIGHT, MessageStatus.WAITING)


class BulkState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bulk_id: str
    tenant: str
    channel: str
    template: str
    total: int
    batch_size: int
    accepted: int = 0
    released: int = 0  # recipients [0, released) were handed on
    parts_seen: list[int] = []
    complete: bool = False
    header: dict[str, Any] = {}


def bulk_key(tenant: str, bulk_id: str) -> str:
    return f"b:{tenant}:{bulk_id}"


def load_bulk(table: Table, tenant: str, bulk_id: str) -> BulkState | None:
    stored = table.get(bulk_key(tenant, bulk_id))
    return BulkState.model_validate(stored) if stored else None


def accept_part(
    table: Table, part: BulkSendRequest, ctx: MessengerContext, now: float
) -> list[Emit]:
    tenant = part.header.tenant
    bulk = load_bulk(table, tenant, part.bulk_id) or BulkState(
        bulk_id=part.bulk_id,
        tenant=tenant,
        channel=part.channel.value,
        template=part.template,
        total=part.total_recipients,
        batch_size=max(1, part.batch_size),
        header=part.header.model_dump(mode="json"),
    )
    if part.part in bulk.parts_seen:
        return []  # a part delivered twice
    emits: list[Emit] = []
    for offset, recipient in enumerate(part.recipients):
        index = part.first_index + offset
        state = MessageState(
            key=f"{part.bulk_id}:{index}",
            message_id=f"{part.bulk_id}:{index}",
            tenant=tenant,
            channel=part.channel,
            to=recipient.to,
            to_name=recipient.to_name,
            template=part.template,
            locale=part.locale,
            variables=dict(recipient.variables),
            bulk_id=part.bulk_id,
            bulk_index=index,
            reference=recipient.reference,
            status=MessageStatus.QUEUED,
            requested_at=now,
            header=part.header.model_dump(mode="json"),
        )
        try:
            render_into(state, ctx)
        except TemplateError as exc:
            # One row without its variable must not stop the other 499.
            finish(state, MessageStatus.REJECTED, now)
            emits.append(story(state, MessageStep.REJECTED, str(exc)))
        save(table, state)
    bulk.parts_seen.append(part.part)
    bulk.accepted += len(part.recipients)
    table.set(bulk_key(tenant, part.bulk_id), bulk.model_dump(mode="json"))
    return emits


def bulks(table: Table) -> list[BulkState]:
    return [
        BulkState.model_validate(v)
        for k, v in table.items()
        if k.startswith("b:") and isinstance(v, dict) and not v.get("complete")
    ]


def members(table: Table, bulk: BulkState) -> list[dict[str, Any]]:
    prefix = f"m:{bulk.tenant}:{bulk.bulk_id}:"
    return [v for k, v in table.items() if k.startswith(prefix) and isinstance(v, dict)]


def release(
    table: Table, bulk: BulkState, found: list[dict[str, Any]], ctx: MessengerContext, now: float
) -> list[Emit]:
    """The next batch, if none of the bulk's messages is still on its way."""
    if any(m.get("status") in ON_ITS_WAY for m in found):
        return []
    emits: list[Emit] = []
    start, end = bulk.released, min(bulk.total, bulk.released + bulk.batch_size)
    for index in range(start, end):
        state = load(table, bulk.tenant, f"{bulk.bulk_id}:{index}")
        if state is None:
            end = index  # its part has not arrived: the batch ends before the gap
            break
        if state.status is MessageStatus.QUEUED:
            emits += dispatch(table, state, ctx, now)
            save(table, state)
    bulk.released = end
    table.set(bulk_key(bulk.tenant, bulk.bulk_id), bulk.model_dump(mode="json"))
    return emits


def report(bulk: BulkState, found: list[dict[str, Any]]) -> BulkReport:
    statuses = Counter(m.get("status") for m in found)
    tallies: dict[str, dict[str, int]] = {}
    failures, retried = [], 0
    for message in sorted(found, key=lambda m: m.get("bulk_index") or 0):
        attempts = message.get("attempts") or []
        retried += 1 if len(attempts) > 1 else 0
        for attempt in attempts:
            tally = tallies.setdefault(
                attempt["provider"], {"sent": 0, "delivered": 0, "failed": 0, "cost_minor": 0}
            )
            status = attempt.get("status")
            tally["sent"] += 1 if status in ("sent", "delivered", "undelivered") else 0
            tally["delivered"] += 1 if status == "delivered" else 0
            tally["failed"] += 1 if status in ("failed", "undelivered") else 0
            tally["cost_minor"] += int(attempt.get("cost_minor") or 0)
        if message.get("status") in (MessageStatus.FAILED, MessageStatus.REJECTED):
            failures.append(_failure(message))
    final = sum(statuses[s] for s in ("DELIVERED", "ACCEPTED", "FAILED", "REJECTED"))
    header = EventHeader.model_validate(bulk.header).caused(BulkReport.EVENT_TYPE, source=SOURCE)
    return BulkReport(
        header=header,
        bulk_id=bulk.bulk_id,
        channel=Channel(bulk.channel),
        template=bulk.template,
        total=bulk.total,
        accepted=bulk.accepted,
        released=bulk.released,
        sent=statuses["SENT"] + statuses["ACCEPTED"],
        delivered=statuses["DELIVERED"],
        failed=statuses["FAILED"],
        rejected=statuses["REJECTED"],
        pending=bulk.total - final,
        retried_on_alternate=retried,
        by_provider=[ProviderTally(provider=p, **t) for p, t in sorted(tallies.items())],
        failures=failures[:MAX_FAILURES_SHOWN],
        complete=final >= bulk.total,
    )


def _failure(message: dict[str, Any]) -> str:
    attempts = message.get("attempts") or []
    last = attempts[-1].get("error") or attempts[-1].get("status") if attempts else "not sent"
    reference = f" ({message['reference']})" if message.get("reference") else ""
    tried = " → ".join(a["provider"] for a in attempts)
    return f"{message.get('to')}{reference}: {last}" + (f" [tried {tried}]" if tried else "")


def tick(
    table: Table, ctx: MessengerContext, now: float, dirty: set[str]
) -> tuple[list[Emit], set[str]]:
    """Release batches; a report for every bulk that changed (`dirty`: bulk keys).
    Returns the emits and the bulk keys still to watch."""
    emits: list[Emit] = []
    for bulk in bulks(table):
        found = members(table, bulk)
        released = release(table, bulk, found, ctx, now)
        key = bulk_key(bulk.tenant, bulk.bulk_id)
        if released:
            emits += released
            found = members(table, bulk)
        if released or key in dirty:
            done = report(bulk, found)
            emits.append(Emit(BULK_REPORTS, done))
            if done.complete:
                bulk.complete = True
                table.set(key, bulk.model_dump(mode="json"))
    return emits, set()
