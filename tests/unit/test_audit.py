"""core.audit's pure parts: the record builders (masking applied), the filter, the JSON row."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from core.audit import (
    AuditFilter,
    Exchange,
    audit_row,
    exchange_from_httpx,
    inbound_record,
    outbound_record,
    outcome_of_status,
)
from schemas.codec import SingleObjectCodec
from schemas.events import (
    AuditDirection,
    AuditOutcome,
    ConnectorCommand,
    EventHeader,
    ProviderCallAudit,
    decode_as,
    encode_event,
)

TOKEN = "0123456789abcdef0123456789abcdef"
AT = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
CAUSE = EventHeader(
    event_id="cmd-1",
    event_type=ConnectorCommand.EVENT_TYPE,
    tenant="greenwood",
    correlation_id="corr-1",
    occurred_at=AT,
    source="router",
)


def sms_exchange(status: int | None = 201) -> Exchange:
    return Exchange(
        method="POST",
        url="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?Token=abc",
        request_headers={
            "Authorization": "Basic QUMxOnRva2Vu",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        request_body=b"To=%2B919876543210&Body=card+4111111111111111+" + TOKEN.encode(),
        status=status,
        response_headers={"Content-Type": "application/json"} if status else {},
        response_body=b'{"sid": "SM1", "auth_token": "x", "body": "' + TOKEN.encode() + b'"}'
        if status
        else None,
        duration_ms=12.34567,
        at=AT,
    )


def test_an_outbound_record_is_masked_and_carries_the_flow() -> None:
    entry = outbound_record(
        CAUSE,
        sms_exchange(),
        provider="twilio",
        operation="sms.send",
        outcome=AuditOutcome.DELIVERED,
        attempt=2,
        source="connector-twilio",
        body_limit=4096,
        account="twilio-primary",
        idempotency_key="k-1",
        secrets=[TOKEN],
    )
    assert entry.header.tenant == "greenwood"
    assert entry.header.correlation_id == "corr-1"
    assert entry.header.causation_id == "cmd-1"
    assert entry.header.event_type == "hub.audit.provider_call"
    assert entry.header.source == "connector-twilio"
    assert entry.key() == "greenwood"
    assert entry.model_dump(exclude={"header"}) == {
        "provider": "twilio",
        "account": "twilio-primary",
        "operation": "sms.send",
        "direction": AuditDirection.OUTBOUND,
        "method": "POST",
        "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?Token=***",
        "http_status": 201,
        "duration_ms": 12.346,
        "attempt": 2,
        "outcome": AuditOutcome.DELIVERED,
        "error": None,
        "idempotency_key": "k-1",
        "provider_event_id": None,
        "request_headers": {
            "authorization": "***",
            "content-type": "application/x-www-form-urlencoded",
        },
        "request_body": "To=%2B919876543210&Body=card+************1111+***",
        "response_headers": {"content-type": "application/json"},
        "response_body": '{"sid":"SM1","auth_token":"***","body":"***"}',
        "at": datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC),
    }


def test_a_transport_error_has_no_status_and_no_answer() -> None:
    entry = outbound_record(
        CAUSE,
        sms_exchange(status=None),
        provider="twilio",
        operation="sms.send",
        outcome=AuditOutcome.ERROR,
        attempt=1,
        source="connector-twilio",
        body_limit=20,
        error=f"network error: ConnectError: refused for {TOKEN}",
        secrets=[TOKEN],
    )
    assert (entry.http_status, entry.response_body, entry.response_headers) == (None, None, {})
    assert entry.error == "network error: ConnectError: refused for ***"
    assert entry.request_body == "To=%2B919876543210&B…[truncated 29 chars]"


def test_an_inbound_record_keeps_the_webhook_flow_and_never_its_signature() -> None:
    body = b'{"event": "payment.captured", "payload": {"card": {"number": "4111111111111111"}}}'
    entry = inbound_record(
        "greenwood",
        Exchange(
            method="POST",
            url="http://ingress/webhooks/razorpay/greenwood",
            request_headers={
                "content-type": "application/json",
                "x-razorpay-signature": "f00d",
                "x-razorpay-event-id": "evt_1",
            },
            request_body=body,
            status=200,
            response_headers={"content-type": "application/json"},
            response_body=b'{"status":"accepted"}',
            duration_ms=3.0,
            at=AT,
        ),
        provider="razorpay",
        operation="payment.captured",
        outcome=AuditOutcome.ACCEPTED,
        source="webhook-ingress",
        body_limit=4096,
        correlation_id="corr-webhook",
        provider_event_id="evt_1",
    )
    assert entry.direction is AuditDirection.INBOUND
    assert (entry.header.correlation_id, entry.header.causation_id) == ("corr-webhook", None)
    assert entry.request_headers == {
        "content-type": "application/json",
        "x-razorpay-signature": "***",
        "x-razorpay-event-id": "evt_1",
    }
    assert entry.request_body == (
        '{"event":"payment.captured","payload":{"card":{"number":"************1111"}}}'
    )
    assert (entry.attempt, entry.provider_event_id, entry.idempotency_key) == (1, "evt_1", None)


def test_a_record_round_trips_through_its_avro_schema() -> None:
    entry = outbound_record(
        CAUSE,
        sms_exchange(),
        provider="twilio",
        operation="sms.send",
        outcome=AuditOutcome.RETRY,
        attempt=3,
        source="connector-twilio",
        body_limit=4096,
    )
    codec = SingleObjectCodec()
    assert decode_as(codec, encode_event(codec, entry), ProviderCallAudit) == entry


def test_exchange_from_httpx_takes_the_request_as_sent() -> None:
    request = httpx.Request("POST", "https://p.example/v1?a=1", content=b"x=1")
    response = httpx.Response(503, headers={"Retry-After": "2"}, content=b"busy", request=request)
    exchange = exchange_from_httpx(request, response, 5.0, AT)
    assert (exchange.method, exchange.url, exchange.status) == (
        "POST",
        "https://p.example/v1?a=1",
        503,
    )
    assert (exchange.request_body, exchange.response_body) == (b"x=1", b"busy")
    assert exchange.response_headers["retry-after"] == "2"
    unanswered = exchange_from_httpx(request, None, 5.0, AT)
    assert (unanswered.status, unanswered.response_body) == (None, None)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (None, AuditOutcome.ERROR),
        (200, AuditOutcome.DELIVERED),
        (204, AuditOutcome.DELIVERED),
        (429, AuditOutcome.RETRY),
        (503, AuditOutcome.RETRY),
        (404, AuditOutcome.REJECTED),
        (401, AuditOutcome.REJECTED),
    ],
)
def test_outcome_of_a_status(status: int | None, outcome: AuditOutcome) -> None:
    assert outcome_of_status(status) is outcome


def _entry(
    status: int | None, outcome: AuditOutcome, provider: str = "twilio"
) -> ProviderCallAudit:
    return outbound_record(
        CAUSE,
        sms_exchange(status),
        provider=provider,
        operation="sms.send",
        outcome=outcome,
        attempt=1,
        source="connector-twilio",
        body_limit=100,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, [True, True, True, True]),
        ("503", [False, True, False, False]),
        ("5xx", [False, True, True, False]),
        ("2xx", [True, False, False, False]),
        ("none", [False, False, False, True]),
        ("retry", [False, True, True, False]),
        ("ERROR", [False, False, False, True]),
    ],
)
def test_the_status_filter(status: str | None, expected: list[bool]) -> None:
    entries = [
        _entry(201, AuditOutcome.DELIVERED),
        _entry(503, AuditOutcome.RETRY),
        _entry(500, AuditOutcome.RETRY),
        _entry(None, AuditOutcome.ERROR),
    ]
    assert [AuditFilter(status=status).matches(e) for e in entries] == expected


def test_tenant_provider_and_since_filters() -> None:
    entry = _entry(201, AuditOutcome.DELIVERED)
    assert AuditFilter(tenant="greenwood", provider="twilio").matches(entry) is True
    assert AuditFilter(tenant="riverside").matches(entry) is False
    assert AuditFilter(provider="sendgrid").matches(entry) is False
    assert AuditFilter(since=datetime(2026, 11, 22, 10, tzinfo=UTC)).matches(entry) is True
    assert AuditFilter(since=datetime(2026, 11, 22, 11, tzinfo=UTC)).matches(entry) is False


def test_a_status_that_names_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="'teapot'"):
        AuditFilter(status="teapot")


def test_the_json_row() -> None:
    row = audit_row(_entry(503, AuditOutcome.RETRY))
    assert row["tenant"] == "greenwood"
    assert row["correlation_id"] == "corr-1"
    assert row["source"] == "connector-twilio"
    assert row["direction"] == "outbound"
    assert row["outcome"] == "retry"
    assert row["http_status"] == 503
    assert row["at"] == "2026-11-22T10:00:00.123000Z"
    assert "header" not in row
