"""Bulk sends (processors.bulk): parts, batches released one after the other, the report."""

from __future__ import annotations

from messenger_support import TENANT, commands, context, receipt, result_of, steps, table

from processors import bulk, message_flow
from producers import bulk_parts
from schemas.events import BulkRecipient, Channel, ReceiptStatus

NOW = 1_800_000_000.0


def recipients(n: int) -> list[BulkRecipient]:
    return [
        BulkRecipient(
            to=f"+9198000{i:05d}", reference=f"STU-{i}", variables={"student_name": f"S{i}"}
        )
        for i in range(n)
    ]


def test_a_bulk_is_split_into_parts_that_name_their_place() -> None:
    parts = bulk_parts(TENANT, "attendance_alert", Channel.SMS, recipients(2500), part_size=1000)
    assert [(p.part, p.parts, p.first_index, len(p.recipients)) for p in parts] == [
        (1, 3, 0, 1000),
        (2, 3, 1000, 1000),
        (3, 3, 2000, 500),
    ]
    assert {p.bulk_id for p in parts} == {parts[0].bulk_id}
    assert {p.total_recipients for p in parts} == {2500}


def test_batches_go_out_one_after_the_other_and_the_report_counts_from_the_messages() -> None:
    t, ctx = table(), context()
    [part] = bulk_parts(TENANT, "attendance_alert", Channel.SMS, recipients(5), batch_size=2)
    assert bulk.accept_part(t, part, ctx, NOW) == []
    first, _ = bulk.tick(t, ctx, NOW + 1, set())
    batch1 = commands(first)
    assert [c.idempotency_key for c in batch1] == [f"{part.bulk_id}:0#1", f"{part.bulk_id}:1#1"]
    nothing, _ = bulk.tick(t, ctx, NOW + 2, set())
    assert commands(nothing) == []  # batch 1 is still on its way
    for n, command in enumerate(batch1):
        message_flow.on_result(t, result_of(command, ref=f"SM{n}"), ctx, NOW + 3)
    second, _ = bulk.tick(t, ctx, NOW + 4, set())
    assert [c.idempotency_key for c in commands(second)] == [
        f"{part.bulk_id}:2#1",
        f"{part.bulk_id}:3#1",
    ]
    [report] = [e.event for e in second if type(e.event).__name__ == "BulkReport"]
    assert (report.total, report.released, report.sent, report.pending) == (5, 4, 2, 5)


def test_a_row_without_its_variable_is_rejected_and_the_others_still_go() -> None:
    t, ctx = table(), context()
    people = recipients(3)
    people[1] = BulkRecipient(to="+919800099999", reference="STU-X", variables={})
    [part] = bulk_parts(TENANT, "attendance_alert", Channel.SMS, people, batch_size=10)
    rejected = bulk.accept_part(t, part, ctx, NOW)
    assert steps(rejected) == [
        ("REJECTED", "template 'attendance_alert' needs variable 'student_name'")
    ]
    released, _ = bulk.tick(t, ctx, NOW + 1, set())
    assert len(commands(released)) == 2
    [report] = [e.event for e in released if type(e.event).__name__ == "BulkReport"]
    assert (report.rejected, report.pending) == (1, 2)
    assert report.failures == ["+919800099999 (STU-X): not sent"]


def test_the_failed_are_retried_on_the_alternate_and_the_report_says_so() -> None:
    t, ctx = table(), context()
    [part] = bulk_parts(TENANT, "attendance_alert", Channel.SMS, recipients(2), batch_size=10)
    bulk.accept_part(t, part, ctx, NOW)
    released, _ = bulk.tick(t, ctx, NOW + 1, set())
    first, second = commands(released)
    message_flow.on_result(t, result_of(first, ref="SM0"), ctx, NOW + 2)
    message_flow.on_result(t, result_of(second, ref="SM1"), ctx, NOW + 2)
    message_flow.on_receipt(t, receipt("SM0", ReceiptStatus.DELIVERED), ctx, NOW + 3)
    [retry] = commands(
        message_flow.on_receipt(
            t, receipt("SM1", ReceiptStatus.UNDELIVERED, code="30005"), ctx, NOW + 3
        )
    )
    assert retry.account == "twilio-backup"
    message_flow.on_result(t, result_of(retry, ref="SM2"), ctx, NOW + 4)
    message_flow.on_receipt(
        t, receipt("SM2", ReceiptStatus.UNDELIVERED, code="30005"), ctx, NOW + 5
    )
    key = bulk.bulk_key(TENANT, part.bulk_id)
    emits, _ = bulk.tick(t, ctx, NOW + 6, {key})
    [report] = [e.event for e in emits if type(e.event).__name__ == "BulkReport"]
    assert (report.delivered, report.failed, report.pending, report.complete) == (1, 1, 0, True)
    assert report.retried_on_alternate == 1
    assert [(p.provider, p.sent, p.delivered, p.failed) for p in report.by_provider] == [
        ("twilio", 3, 1, 2)
    ]
    assert report.failures == ["+919800000001 (STU-1): undelivered 30005 [tried twilio → twilio]"]
