"""The connector's ledger (pure): what to do with a command record, what to write once it ran,
and the ConnectorResult built for each outcome."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from connector_support import command, sms

from connectors.executor import duplicate_of, found, result_for, superseded
from connectors.ledger import (
    AnswerDuplicate,
    EntryState,
    LedgerEntry,
    LedgerWrite,
    LookUp,
    OrderMark,
    Send,
    Skip,
    Supersede,
    decide,
    entry_key,
    intent,
    ledger_record,
    mark_key,
    outcome,
)
from connectors.retry import Attempted
from providers.base import Delivered, Rejected, RetryLater
from providers.lookup import Found
from schemas.events import ConnectorCommand, ConnectorResult, ResultStatus

AT = 1_750_000_000_000  # when the attempt (or the outcome) was recorded, epoch ms
LATER = AT + 60_000
ROW = "student-42"


def cmd(
    key: str = "key-1", *, version: int | None = None, ordering_key: str | None = ROW
) -> ConnectorCommand:
    if version is None:
        ordering_key = None
    return command("twilio", sms(), key=key, ordering_key=ordering_key, ordering_version=version)


def delivered(c: ConnectorCommand, ref: str = "SMold") -> ConnectorResult:
    return result_for(c, Attempted(Delivered(ref, 201, {"status": "queued"}), 1), 3.0)


def failed(c: ConnectorCommand) -> ConnectorResult:
    return result_for(c, Attempted(RetryLater("Service Unavailable", 503, "20500"), 5), 3.0)


def entry(
    state: EntryState,
    *,
    partition: int = 0,
    offset: int = 7,
    result: ConnectorResult | None = None,
) -> LedgerEntry:
    return LedgerEntry(
        state=state,
        command_id="cmd-earlier",
        partition=partition,
        offset=offset,
        at_ms=AT,
        result=None if result is None else result.model_dump(mode="json"),
    )


def mark(version: int, key: str = "other-key") -> OrderMark:
    return OrderMark(version=version, idempotency_key=key)


# --- keys ------------------------------------------------------------------------


def test_entry_key_is_per_tenant_and_idempotency_key() -> None:
    assert entry_key(cmd("fee-receipt-9")) == "k:t1:fee-receipt-9"


def test_mark_key_is_per_tenant_and_ordering_key_when_versioned() -> None:
    assert mark_key(cmd(version=3)) == "o:t1:student-42"
    assert mark_key(cmd()) is None
    only_key = command("twilio", sms(), ordering_key=ROW)  # a key without a version
    assert mark_key(only_key) is None


# --- decide ------------------------------------------------------------------------


def test_no_entry_is_sent() -> None:
    decision = decide(None, None, cmd(), 0, 7, can_look_up=True)
    assert decision == Send(in_doubt=False)


def test_intent_is_looked_up_from_when_the_attempt_began() -> None:
    decision = decide(entry(EntryState.INTENT), None, cmd(), 0, 8, can_look_up=True)
    assert decision == LookUp(since_ms=AT)


def test_intent_of_this_very_record_is_looked_up_not_skipped() -> None:
    # The worker died mid-call: the intent names the record that comes back.
    decision = decide(entry(EntryState.INTENT, offset=7), None, cmd(), 0, 7, can_look_up=True)
    assert decision == LookUp(since_ms=AT)


def test_intent_without_lookups_is_sent_in_doubt() -> None:
    decision = decide(entry(EntryState.INTENT), None, cmd(), 0, 8, can_look_up=False)
    assert decision == Send(in_doubt=True)


@pytest.mark.parametrize("state", [EntryState.DELIVERED, EntryState.FAILED, EntryState.SUPERSEDED])
def test_final_entry_of_this_very_record_is_skipped(state: EntryState) -> None:
    result = delivered(cmd()) if state is EntryState.DELIVERED else None
    final = entry(state, partition=2, offset=41, result=result)
    assert decide(final, None, cmd(), 2, 41, can_look_up=True) == Skip()


def test_same_offset_on_another_partition_is_not_this_record() -> None:
    final = entry(EntryState.FAILED, partition=1, offset=41)
    assert decide(final, None, cmd(), 2, 41, can_look_up=True) == Send()


def test_delivered_by_another_record_answers_with_the_earlier_result() -> None:
    earlier = delivered(cmd(), ref="SMfirst")
    decision = decide(
        entry(EntryState.DELIVERED, offset=7, result=earlier), None, cmd(), 0, 9, can_look_up=True
    )
    assert isinstance(decision, AnswerDuplicate)
    assert decision.earlier == earlier
    assert decision.earlier.provider_ref == "SMfirst"


def test_failed_by_another_record_is_sent_again() -> None:
    decision = decide(entry(EntryState.FAILED, offset=7), None, cmd(), 0, 9, can_look_up=True)
    assert decision == Send(in_doubt=False)


def test_older_version_than_the_mark_is_superseded() -> None:
    decision = decide(None, mark(12), cmd(version=11), 0, 9, can_look_up=True)
    assert decision == Supersede(newer_version=12)


@pytest.mark.parametrize("version", [12, 13])
def test_equal_or_newer_version_is_not_superseded(version: int) -> None:
    decision = decide(None, mark(12), cmd(version=version), 0, 9, can_look_up=True)
    assert decision == Send()


def test_mark_is_ignored_for_a_command_without_version() -> None:
    decision = decide(None, mark(12), cmd(), 0, 9, can_look_up=True)
    assert decision == Send()


def test_older_version_with_an_intent_is_superseded_not_looked_up() -> None:
    decision = decide(entry(EntryState.INTENT), mark(12), cmd(version=11), 0, 9, can_look_up=True)
    assert decision == Supersede(newer_version=12)


def test_this_records_own_outcome_is_skipped_even_when_superseded_since() -> None:
    final = entry(EntryState.DELIVERED, offset=9, result=delivered(cmd(version=11)))
    assert decide(final, mark(12), cmd(version=11), 0, 9, can_look_up=True) == Skip()


def test_a_delivered_duplicate_is_answered_even_when_superseded_since() -> None:
    earlier = delivered(cmd(version=11), ref="SMv11")
    final = entry(EntryState.DELIVERED, offset=7, result=earlier)
    decision = decide(final, mark(12), cmd(version=11), 0, 9, can_look_up=True)
    assert decision == AnswerDuplicate(earlier)


# --- intent ------------------------------------------------------------------------


def test_intent_writes_an_intent_entry_with_when_it_began() -> None:
    c = cmd("k-7")
    write = intent(c, 2, 41, AT)
    assert write == LedgerWrite(
        2,
        "k:t1:k-7",
        {
            "state": "intent",
            "command_id": c.command_id,
            "partition": 2,
            "offset": 41,
            "at_ms": AT,
            "result": None,
            "in_doubt_since": None,
        },
    )


# --- outcome -------------------------------------------------------------------------


def test_a_failure_in_doubt_stays_in_doubt_and_is_looked_up_on_its_next_try() -> None:
    c = cmd("k-7")
    failed = ConnectorResult(
        header=c.header,
        command_id=c.command_id,
        idempotency_key="k-7",
        provider="twilio",
        operation="sms.send",
        status=ResultStatus.FAILED,
        retryable=True,
        attempts=5,
        details={"in_doubt_since_ms": str(AT)},
    )
    [write] = outcome(c, failed, 1, 30, now_ms=LATER, mark=None)
    entry = entry_of(write)
    assert (entry.state, entry.in_doubt_since) == (EntryState.FAILED, AT)
    assert decide(entry, None, c, 1, 99, can_look_up=True) == LookUp(since_ms=AT)
    assert decide(entry, None, c, 1, 99, can_look_up=False) == Send(in_doubt=True)
    assert decide(entry, None, c, 1, 30, can_look_up=True) == Skip()  # this very record


def entry_of(write: LedgerWrite) -> LedgerEntry:
    return LedgerEntry.model_validate(write.value)


def test_delivered_outcome_keeps_the_result() -> None:
    c = cmd("k-7")
    result = delivered(c, ref="SMnew")
    [write] = outcome(c, result, 1, 30, now_ms=LATER, mark=None)
    assert (write.partition, write.key) == (1, "k:t1:k-7")
    written = entry_of(write)
    assert written.state is EntryState.DELIVERED
    assert (written.command_id, written.partition, written.offset) == (c.command_id, 1, 30)
    assert written.at_ms == LATER
    assert written.result is not None
    assert ConnectorResult.model_validate(written.result) == result


def test_delivered_outcome_writes_the_order_mark_when_there_is_none() -> None:
    c = cmd("k-7", version=12)
    writes = outcome(c, delivered(c), 1, 30, now_ms=LATER, mark=None)
    assert [w.key for w in writes] == ["k:t1:k-7", "o:t1:student-42"]
    assert writes[1] == LedgerWrite(
        1, "o:t1:student-42", {"version": 12, "idempotency_key": "k-7", "at_ms": LATER}
    )


def test_delivered_outcome_moves_an_older_mark_on() -> None:
    c = cmd("k-7", version=12)
    writes = outcome(c, delivered(c), 1, 30, now_ms=LATER, mark=mark(11))
    assert writes[1].value == {"version": 12, "idempotency_key": "k-7", "at_ms": LATER}


@pytest.mark.parametrize("newer", [12, 20])
def test_delivered_outcome_leaves_an_equal_or_newer_mark(newer: int) -> None:
    c = cmd("k-7", version=12)
    writes = outcome(c, delivered(c), 1, 30, now_ms=LATER, mark=mark(newer))
    assert [w.key for w in writes] == ["k:t1:k-7"]


def test_no_mark_without_ordering_key_or_version() -> None:
    plain = cmd("k-7")
    assert len(outcome(plain, delivered(plain), 1, 30, now_ms=LATER, mark=None)) == 1
    no_version = command("twilio", sms(), key="k-8", ordering_key=ROW)
    assert len(outcome(no_version, delivered(no_version), 1, 30, now_ms=LATER, mark=None)) == 1
    no_key = command("twilio", sms(), key="k-9", ordering_version=5)
    assert len(outcome(no_key, delivered(no_key), 1, 30, now_ms=LATER, mark=None)) == 1


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(failed, id="retryable"),
        pytest.param(
            lambda c: result_for(c, Attempted(Rejected("bad number", 400, "21211"), 1), 1.0),
            id="permanent",
        ),
    ],
)
def test_failed_outcome_writes_failed_without_result_nor_mark(
    result: Callable[[ConnectorCommand], ConnectorResult],
) -> None:
    c = cmd("k-7", version=12)
    [write] = outcome(c, result(c), 1, 30, now_ms=LATER, mark=None)
    written = entry_of(write)
    assert written.state is EntryState.FAILED
    assert written.result is None
    assert (written.partition, written.offset, written.at_ms) == (1, 30, LATER)


def test_superseded_outcome_writes_superseded_without_mark() -> None:
    c = cmd("k-7", version=11)
    [write] = outcome(c, superseded(c, 12), 1, 30, now_ms=LATER, mark=mark(12))
    written = entry_of(write)
    assert written.state is EntryState.SUPERSEDED
    assert written.result is None


def test_outcome_read_back_answers_the_next_record_and_skips_its_own() -> None:
    c = cmd("k-7")
    result = delivered(c, ref="SMonce")
    [write] = outcome(c, result, 1, 30, now_ms=LATER, mark=None)
    written = entry_of(write)
    assert decide(written, None, c, 1, 30, can_look_up=True) == Skip()
    again = decide(written, None, cmd("k-7"), 1, 31, can_look_up=True)
    assert again == AnswerDuplicate(result)


# --- ledger_record ----------------------------------------------------------------------


def test_ledger_record_sits_on_the_writes_partition_keyed_by_its_key() -> None:
    c = cmd("k-7")
    record = ledger_record("connector.twilio.ledger.v1", intent(c, 2, 41, AT))
    assert record.topic == "connector.twilio.ledger.v1"
    assert record.partition == 2
    assert record.key == b"k:t1:k-7"
    assert record.headers == []
    assert record.value is not None
    assert json.loads(record.value) == {
        "state": "intent",
        "command_id": c.command_id,
        "partition": 2,
        "offset": 41,
        "at_ms": AT,
        "result": None,
        "in_doubt_since": None,
    }


# --- result_for / duplicate_of / superseded / found -------------------------------------


def test_result_for_delivery() -> None:
    c = command("twilio", sms(), key="k-9", context={"invoice_id": "inv-9"})
    attempted = Attempted(Delivered("SMabc", 201, {"status": "queued"}), 3)
    built = result_for(c, attempted, 12.34)
    assert built.status is ResultStatus.DELIVERED
    assert built.provider_ref == "SMabc"
    assert built.http_status == 201
    assert built.attempts == 3
    assert built.details == {"status": "queued", "latency_ms": "12.3"}
    assert built.idempotency_key == "k-9"
    assert built.command_id == c.command_id
    assert built.provider == "twilio"
    assert built.operation == "sms.send"
    assert built.context == {"invoice_id": "inv-9"}
    assert built.duplicate is False
    assert built.error_message is None
    assert built.header.event_type == ConnectorResult.EVENT_TYPE
    assert built.header.causation_id == c.header.event_id
    assert built.header.correlation_id == c.header.correlation_id
    assert built.header.tenant == c.header.tenant
    assert built.header.source == "connector-twilio"
    assert built.header.event_id != c.header.event_id
    assert built.key() == c.key()


def test_result_for_retryable_failure() -> None:
    built = failed(cmd())
    assert built.status is ResultStatus.FAILED
    assert built.retryable is True
    assert (built.http_status, built.error_code, built.error_message) == (
        503,
        "20500",
        "Service Unavailable",
    )
    assert built.attempts == 5
    assert built.provider_ref is None


def test_result_for_permanent_failure() -> None:
    built = result_for(cmd(), Attempted(Rejected("bad number", 400, "21211"), 1), 1.0)
    assert built.status is ResultStatus.FAILED
    assert built.retryable is False
    assert (built.http_status, built.error_code, built.error_message) == (
        400,
        "21211",
        "bad number",
    )


def test_result_carries_the_ordering_key() -> None:
    c = cmd(version=4)
    assert result_for(c, Attempted(Delivered("SM1", 201), 1), 1.0).ordering_key == ROW


def test_duplicate_of_answers_the_new_command_from_the_earlier_delivery() -> None:
    first = command("twilio", sms(), key="k1", context={"attempt": "first"})
    earlier = result_for(first, Attempted(Delivered("SMabc", 201), 2), 5.0)
    again = command("twilio", sms(), key="k1", context={"attempt": "again"})
    dup = duplicate_of(again, earlier)
    assert dup.duplicate is True
    assert dup.attempts == 0
    assert dup.status is ResultStatus.DELIVERED
    assert dup.provider_ref == "SMabc"
    assert dup.idempotency_key == "k1"
    assert dup.command_id == again.command_id
    assert dup.context == {"attempt": "again"}
    assert dup.header.causation_id == again.header.event_id
    assert dup.header.event_id != earlier.header.event_id
    assert earlier.duplicate is False  # the ledger's copy is untouched


def test_superseded_names_both_versions_and_is_not_sent() -> None:
    c = cmd("k-7", version=11)
    built = superseded(c, 12)
    assert built.status is ResultStatus.SUPERSEDED
    assert built.attempts == 0
    assert built.provider_ref is None
    assert built.retryable is False
    assert built.command_id == c.command_id
    assert built.error_message == (
        "not sent: version 12 of student-42 was delivered before this version 11"
    )


def test_found_is_a_delivery_by_lookup() -> None:
    c = cmd("k-7")
    built = found(c, Found("SMseen", {"status": "delivered"}))
    assert built.status is ResultStatus.DELIVERED
    assert built.provider_ref == "SMseen"
    assert built.attempts == 0
    assert built.details == {"status": "delivered", "found_by": "lookup"}
    assert built.header.causation_id == c.header.event_id
