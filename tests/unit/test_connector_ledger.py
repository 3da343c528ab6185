"""The idempotency ledger, and the ConnectorResult built for each outcome."""

from __future__ import annotations

from connector_support import command, sms

from connectors.base import Delivered, Rejected, RetryLater
from connectors.executor import duplicate_of, result_for
from connectors.ledger import Ledger
from connectors.retry import Attempted
from schemas.events import ConnectorResult, EventHeader, ResultStatus


def result(
    key: str, status: ResultStatus = ResultStatus.DELIVERED, ref: str | None = "SM1"
) -> ConnectorResult:
    return ConnectorResult(
        header=EventHeader.new(ConnectorResult.EVENT_TYPE, "t1", source="test"),
        command_id=f"cmd-{key}-{ref}",
        idempotency_key=key,
        provider="twilio",
        operation="sms.send",
        status=status,
        provider_ref=ref if status is ResultStatus.DELIVERED else None,
        attempts=1,
    )


def test_empty_ledger_knows_nothing() -> None:
    ledger = Ledger()
    assert len(ledger) == 0
    assert ledger.delivered("k") is None


def test_delivered_result_is_remembered() -> None:
    ledger = Ledger()
    delivered = result("k1")
    ledger.remember(delivered)
    assert ledger.delivered("k1") == delivered
    assert ledger.delivered("k2") is None
    assert len(ledger) == 1


def test_failed_result_is_not_remembered() -> None:
    ledger = Ledger()
    ledger.remember(result("k1", ResultStatus.FAILED))
    assert ledger.delivered("k1") is None
    assert len(ledger) == 0


def test_first_delivery_wins() -> None:
    ledger = Ledger()
    first, second = result("k1", ref="SM-first"), result("k1", ref="SM-second")
    ledger.remember(first)
    ledger.remember(second)
    found = ledger.delivered("k1")
    assert found is not None
    assert found.provider_ref == "SM-first"
    assert len(ledger) == 1


def test_failure_after_delivery_does_not_erase_it() -> None:
    ledger = Ledger()
    ledger.remember(result("k1", ref="SM-ok"))
    ledger.remember(result("k1", ResultStatus.FAILED))
    found = ledger.delivered("k1")
    assert found is not None
    assert found.provider_ref == "SM-ok"


def test_remember_all_counts_every_result_but_keeps_only_deliveries() -> None:
    ledger = Ledger()
    results = [
        result("a", ref="SM-a1"),
        result("b", ResultStatus.FAILED),
        result("a", ref="SM-a2"),
        result("c", ref="SM-c"),
    ]
    assert ledger.remember_all(iter(results)) == 4
    assert len(ledger) == 2
    assert ledger.delivered("b") is None
    a = ledger.delivered("a")
    assert a is not None
    assert a.provider_ref == "SM-a1"


def test_remember_all_of_nothing() -> None:
    assert Ledger().remember_all([]) == 0


# --- result_for / duplicate_of -------------------------------------------------


def test_result_for_delivery() -> None:
    cmd = command("twilio", sms(), key="k-9", context={"invoice_id": "inv-9"})
    attempted = Attempted(Delivered("SMabc", 201, {"status": "queued"}), 3)
    built = result_for(cmd, attempted, 12.34)
    assert built.status is ResultStatus.DELIVERED
    assert built.provider_ref == "SMabc"
    assert built.http_status == 201
    assert built.attempts == 3
    assert built.details == {"status": "queued", "latency_ms": "12.3"}
    assert built.idempotency_key == "k-9"
    assert built.command_id == cmd.command_id
    assert built.provider == "twilio"
    assert built.operation == "sms.send"
    assert built.context == {"invoice_id": "inv-9"}
    assert built.duplicate is False
    assert built.error_message is None
    assert built.header.event_type == ConnectorResult.EVENT_TYPE
    assert built.header.causation_id == cmd.header.event_id
    assert built.header.correlation_id == cmd.header.correlation_id
    assert built.header.tenant == cmd.header.tenant
    assert built.header.source == "connector-twilio"
    assert built.header.event_id != cmd.header.event_id
    assert built.key() == cmd.key()


def test_result_for_retryable_failure() -> None:
    cmd = command("twilio", sms())
    built = result_for(cmd, Attempted(RetryLater("Service Unavailable", 503, "20500"), 5), 1.0)
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
    cmd = command("twilio", sms())
    built = result_for(cmd, Attempted(Rejected("bad number", 400, "21211"), 1), 1.0)
    assert built.status is ResultStatus.FAILED
    assert built.retryable is False
    assert (built.http_status, built.error_code, built.error_message) == (
        400,
        "21211",
        "bad number",
    )


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
