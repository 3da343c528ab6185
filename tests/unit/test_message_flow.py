"""One message from request to its final state (processors.message_flow), no Kafka."""

from __future__ import annotations

import pytest
from messenger_support import (
    TENANT,
    Opened,
    commands,
    context,
    receipt,
    result_of,
    sms,
    steps,
    table,
)

from processors import message_flow
from processors.messaging import MessageStatus, load
from processors.templates import TemplateError
from schemas.events import ReceiptStatus, SendSms

NOW = 1_800_000_000.0


def test_a_request_becomes_one_command_to_the_first_account_with_its_own_key() -> None:
    t, ctx = table(), context()
    emits = message_flow.on_request(t, sms(), ctx, NOW)
    [command] = commands(emits)
    assert command.provider == "twilio"
    assert command.account == "twilio-primary"
    assert command.idempotency_key == "fee-paid:INV-1#1"
    assert command.context == {
        "message": "fee-paid:INV-1",
        "attempt": "1",
        "account": "twilio-primary",
        "failover": "next",
    }
    assert isinstance(command.payload, SendSms)
    assert command.payload.callback_url == f"https://hub.example/webhooks/twilio/{TENANT}"
    assert [s for s, _ in steps(emits)] == ["REQUESTED", "ROUTED"]


def test_the_same_request_twice_sends_once() -> None:
    t, ctx = table(), context()
    message_flow.on_request(t, sms(), ctx, NOW)
    assert message_flow.on_request(t, sms(), ctx, NOW + 1) == []


def test_accepted_then_delivered_receipt_is_delivered_by_the_primary() -> None:
    t, ctx = table(), context()
    [command] = commands(message_flow.on_request(t, sms(), ctx, NOW))
    sent = message_flow.on_result(t, result_of(command, ref="SM1"), ctx, NOW + 1)
    assert steps(sent) == [("SENT", "accepted; waiting for its receipt")]
    done = message_flow.on_receipt(t, receipt("SM1", ReceiptStatus.DELIVERED), ctx, NOW + 5)
    assert [s for s, _ in steps(done)] == ["RECEIPT", "DELIVERED"]
    state = load(t, TENANT, "fee-paid:INV-1")
    assert state is not None
    assert state.status is MessageStatus.DELIVERED
    assert [a.provider_ref for a in state.attempts] == ["SM1"]


def test_an_undelivered_receipt_resends_once_through_the_backup() -> None:
    t, ctx = table(), context()
    [first] = commands(message_flow.on_request(t, sms(), ctx, NOW))
    message_flow.on_result(t, result_of(first, ref="SM1"), ctx, NOW + 1)
    failed = receipt("SM1", ReceiptStatus.UNDELIVERED, code="30003")
    emits = message_flow.on_receipt(t, failed, ctx, NOW + 5)
    [second] = commands(emits)
    assert second.account == "twilio-backup"
    assert second.idempotency_key == "fee-paid:INV-1#2"
    assert "failover" not in second.context  # the last account: retry tiers if it fails
    assert steps(emits)[1] == ("FAILING_OVER", "receipt says undelivered (undelivered 30003)")


def test_undelivered_on_the_backup_too_is_a_final_failure_not_a_third_send() -> None:
    t, ctx = table(), context()
    [first] = commands(message_flow.on_request(t, sms(), ctx, NOW))
    message_flow.on_result(t, result_of(first, ref="SM1"), ctx, NOW + 1)
    [second] = commands(
        message_flow.on_receipt(t, receipt("SM1", ReceiptStatus.UNDELIVERED), ctx, NOW + 2)
    )
    message_flow.on_result(t, result_of(second, ref="SM2"), ctx, NOW + 3)
    emits = message_flow.on_receipt(t, receipt("SM2", ReceiptStatus.UNDELIVERED), ctx, NOW + 4)
    assert commands(emits) == []
    state = load(t, TENANT, "fee-paid:INV-1")
    assert state is not None
    assert state.status is MessageStatus.FAILED


def test_a_receipt_before_its_result_waits_for_the_link() -> None:
    t, ctx = table(), context()
    [command] = commands(message_flow.on_request(t, sms(), ctx, NOW))
    assert message_flow.on_receipt(t, receipt("SM9", ReceiptStatus.DELIVERED), ctx, NOW + 1) == []
    emits = message_flow.on_result(t, result_of(command, ref="SM9"), ctx, NOW + 2)
    assert [s for s, _ in steps(emits)] == ["SENT", "RECEIPT", "DELIVERED"]


def test_a_retryable_failure_fails_over_and_the_breaker_open_reason_is_said() -> None:
    t, ctx = table(), context()
    [command] = commands(message_flow.on_request(t, sms(), ctx, NOW))
    failed = result_of(
        command, ok=False, retryable=True, code="circuit_open", message="circuit open"
    )
    emits = message_flow.on_result(t, failed, ctx, NOW + 1)
    [backup] = commands(emits)
    assert backup.account == "twilio-backup"
    assert steps(emits)[1] == ("FAILING_OVER", "breaker open: circuit open [circuit_open]")


def test_an_invalid_number_is_not_failed_over() -> None:
    t, ctx = table(), context()
    [command] = commands(message_flow.on_request(t, sms(), ctx, NOW))
    refused = result_of(command, ok=False, code="21211", message="Invalid 'To' Phone Number")
    emits = message_flow.on_result(t, refused, ctx, NOW + 1)
    assert commands(emits) == []
    assert steps(emits)[-1] == ("FAILED", "twilio refused it: Invalid 'To' Phone Number [21211]")


def test_an_open_breaker_routes_to_the_backup_without_trying_the_primary() -> None:
    t = table()
    ctx = context(opened=Opened({(TENANT, "twilio", "twilio-primary")}))
    [command] = commands(message_flow.on_request(t, sms(), ctx, NOW))
    assert command.account == "twilio-backup"
    assert command.context["failover"] == "next"  # the primary is still there, last


def test_no_receipt_within_the_deadline_resends_through_the_backup_once() -> None:
    t, ctx = table(), context(deadline=600)
    [first] = commands(message_flow.on_request(t, sms(), ctx, NOW))
    message_flow.on_result(t, result_of(first, ref="SM1"), ctx, NOW + 1)
    assert message_flow.tick(t, ctx, NOW + 600) == []
    emits = message_flow.tick(t, ctx, NOW + 601)
    [second] = commands(emits)
    assert second.account == "twilio-backup"
    assert ("FAILING_OVER", "no receipt within 600s") in steps(emits)
    assert commands(message_flow.tick(t, ctx, NOW + 2000)) == []


def test_over_the_per_recipient_limit_a_message_waits_and_is_sent_when_the_hour_allows() -> None:
    t, ctx = table(), context()  # the policy allows 3 an hour to one number
    for n in range(3):
        assert commands(message_flow.on_request(t, sms(key=f"k{n}"), ctx, NOW + n))
    held = message_flow.on_request(t, sms(key="k3"), ctx, NOW + 10)
    assert commands(held) == []
    assert steps(held)[-1] == (
        "WAITING",
        "at most 3 messages an hour to one recipient: waits 3590.0s",
    )
    assert commands(message_flow.tick(t, ctx, NOW + 3599)) == []
    [released] = commands(message_flow.tick(t, ctx, NOW + 3600))
    assert released.idempotency_key == "k3#1"


def test_a_template_is_rendered_in_the_asked_locale_with_its_dlt_ids() -> None:
    t, ctx = table(), context()
    request = sms(
        template="attendance_alert", variables={"student_name": "Asha"}, locale="hi", text=""
    )
    [command] = commands(message_flow.on_request(t, request, ctx, NOW))
    assert isinstance(command.payload, SendSms)
    assert command.payload.text == "प्रिय अभिभावक, Asha आज अनुपस्थित था।"
    assert command.payload.dlt_template_id == "1107161234567890999"  # the Hindi text's own
    assert command.payload.dlt_entity_id == "1101161234567890123"


@pytest.mark.parametrize(
    ("template", "variables", "error"),
    [
        ("attendance_alert", {}, "template 'attendance_alert' needs variable 'student_name'"),
        ("no_such", {}, "no template 'no_such'"),
    ],
)
def test_a_request_that_cannot_be_rendered_is_refused_before_any_command(
    template: str, variables: dict[str, str], error: str
) -> None:
    t, ctx = table(), context()
    with pytest.raises(TemplateError, match=error):
        message_flow.on_request(t, sms(template=template, variables=variables, text=""), ctx, NOW)
    assert load(t, TENANT, "fee-paid:INV-1") is None
