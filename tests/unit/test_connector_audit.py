"""Every HTTP exchange the executor has with a provider is audited: each try, each lookup,
masked. The real Twilio adapter behind httpx.MockTransport; no Kafka (the sink is a port,
its Kafka implementation is tested against the broker in tests/integration/test_audit_kafka.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

import providers
from connectors.executor import CommandExecutor
from connectors.retry import RetryPolicy
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from schemas.codec import SingleObjectCodec
from schemas.events import (
    AuditDirection,
    AuditOutcome,
    ConnectorCommand,
    EventHeader,
    ProviderCallAudit,
    ResultStatus,
    SendSms,
    encode_event,
)

AUTH_TOKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SID = "AC0123456789abcdef0123456789abcdef"
CARD = "4111111111111111"
PHONE = "+919876543210"
# A template that went wrong: the parent's card number and the account's token in the text.
TEXT = f"Paid by card {CARD}. Ref {AUTH_TOKEN}"
URL = f"http://sim/twilio/2010-04-01/Accounts/{SID}/Messages.json"
START = 1_750_000_000.0  # 2025-06-15T15:06:40Z
MASKED_FORM = "To=%2B919876543210&From=%2B15005550006&Body=Paid+by+card+************1111.+Ref+***"


class RecordingSink:
    def __init__(self) -> None:
        self.entries: list[ProviderCallAudit] = []

    def record(self, entry: ProviderCallAudit) -> None:
        self.entries.append(entry)

    def close(self) -> None:
        pass


class BrokenSink(RecordingSink):
    def record(self, entry: ProviderCallAudit) -> None:
        raise RuntimeError("audit topic unavailable")


class FakeTime:
    def __init__(self) -> None:
        self.now = START

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def tenants() -> TenantDirectory:
    twilio = providers.get("twilio")
    account = twilio.account_model(
        account_sid=SID, auth_token=AUTH_TOKEN, from_number="+15005550006"
    )
    primary = ProviderAccount(label="twilio-primary", provider="twilio", config=account)
    return TenantDirectory({"greenwood": Tenant(id="greenwood", accounts=(primary,))})


def command() -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(
            ConnectorCommand.EVENT_TYPE, "greenwood", source="router", correlation_id="corr-9"
        ),
        idempotency_key="k-1",
        provider="twilio",
        payload=SendSms(to=PHONE, text=TEXT),
    )


def created(request: httpx.Request) -> httpx.Response:
    form = parse_qs(request.content.decode())
    message = {"sid": "SM1", "status": "queued", "to": form["To"][0], "body": form["Body"][0]}
    return httpx.Response(201, json=message)


Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*steps: Handler | Exception) -> Handler:
    """Answers with each step in turn, the last one repeating."""
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        step = steps[min(len(calls), len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        return step(request)

    return handle


async def run(
    handler: Handler, sink: RecordingSink, attempts: int = 5
) -> tuple[ResultStatus, list[ProviderCallAudit]]:
    """One command through the executor on fake time: its status and the audit entries."""
    time = FakeTime()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        executor = CommandExecutor(
            providers.get("twilio").adapter,
            settings=Settings(),
            base_url="http://sim/twilio",
            tenants=tenants(),
            http=http,
            policy=RetryPolicy(attempts=attempts),
            sleep=time.sleep,
            clock=time.clock,
            audit=sink,
        )
        result = await executor.attempt(command())
    return result.status, sink.entries


def assert_nothing_secret(entries: list[ProviderCallAudit]) -> None:
    basic = base64.b64encode(f"{SID}:{AUTH_TOKEN}".encode()).decode()
    codec = SingleObjectCodec()
    for entry in entries:
        for stored in (entry.model_dump_json(), encode_event(codec, entry).decode("latin-1")):
            assert AUTH_TOKEN not in stored
            assert basic not in stored
            assert CARD not in stored


def brief(entry: ProviderCallAudit) -> tuple[object, ...]:
    return (
        entry.operation,
        entry.method,
        entry.http_status,
        entry.attempt,
        entry.outcome,
        entry.error,
    )


@pytest.mark.anyio
async def test_a_delivered_sms_is_one_masked_outbound_entry() -> None:
    status, entries = await run(created, RecordingSink())
    assert status is ResultStatus.DELIVERED
    [entry] = entries
    assert brief(entry) == ("sms.send", "POST", 201, 1, AuditOutcome.DELIVERED, None)
    assert entry.direction is AuditDirection.OUTBOUND
    assert (entry.provider, entry.account, entry.idempotency_key) == (
        "twilio",
        "twilio-primary",
        "k-1",
    )
    assert (entry.header.tenant, entry.header.correlation_id) == ("greenwood", "corr-9")
    assert entry.header.source == "connector-twilio"
    assert entry.url == URL
    assert entry.at == datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC)
    assert entry.duration_ms >= 0
    assert entry.request_headers["authorization"] == "***"
    assert entry.request_headers["content-type"] == "application/x-www-form-urlencoded"
    assert entry.request_body == MASKED_FORM
    assert json.loads(entry.response_body or "") == {
        "sid": "SM1",
        "status": "queued",
        "to": PHONE,
        "body": "Paid by card ************1111. Ref ***",
    }
    assert_nothing_secret(entries)


@pytest.mark.anyio
async def test_a_503_then_a_success_is_two_entries_attempt_1_and_2() -> None:
    busy = httpx.Response(503, json={"code": 20503, "message": "Service Unavailable"})
    status, entries = await run(scripted(lambda _r: busy, created), RecordingSink())
    assert status is ResultStatus.DELIVERED
    assert [brief(e) for e in entries] == [
        ("sms.send", "POST", 503, 1, AuditOutcome.RETRY, "Service Unavailable"),
        ("sms.send", "POST", 201, 2, AuditOutcome.DELIVERED, None),
    ]
    assert entries[0].response_body == '{"code":20503,"message":"Service Unavailable"}'
    # The second try left after the first backoff (1 s) on the executor's clock.
    assert [e.at for e in entries] == [
        datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC),
        datetime(2025, 6, 15, 15, 6, 41, tzinfo=UTC),
    ]
    assert [e.request_body for e in entries] == [MASKED_FORM, MASKED_FORM]
    assert_nothing_secret(entries)


@pytest.mark.anyio
async def test_transport_errors_are_entries_without_a_status_or_an_answer() -> None:
    refused = httpx.ConnectError(f"connection refused to {URL}")
    status, entries = await run(scripted(refused), RecordingSink(), attempts=2)
    assert status is ResultStatus.FAILED
    error = f"network error: ConnectError: connection refused to {URL}"
    assert [brief(e) for e in entries] == [
        ("sms.send", "POST", None, 1, AuditOutcome.ERROR, error),
        ("sms.send", "POST", None, 2, AuditOutcome.ERROR, error),
    ]
    assert [(e.response_body, e.response_headers) for e in entries] == [(None, {}), (None, {})]
    assert entries[0].request_headers["authorization"] == "***"
    assert_nothing_secret(entries)


@pytest.mark.anyio
async def test_a_lookup_after_a_lost_answer_is_audited_with_the_try_it_preceded() -> None:
    def listed(request: httpx.Request) -> httpx.Response:
        message = {
            "sid": "SM1",
            "status": "sent",
            "to": PHONE,
            "body": TEXT,
            "date_created": "Sun, 15 Jun 2025 15:06:40 +0000",
        }
        return httpx.Response(200, json={"messages": [message], "next_page_uri": None})

    lost = httpx.ReadTimeout("answer lost")
    status, entries = await run(scripted(lost, listed), RecordingSink())
    assert status is ResultStatus.DELIVERED
    assert [brief(e) for e in entries] == [
        (
            "sms.send",
            "POST",
            None,
            1,
            AuditOutcome.ERROR,
            "network error after sending: ReadTimeout: answer lost",
        ),
        ("sms.send.lookup", "GET", 200, 2, AuditOutcome.DELIVERED, None),
    ]
    assert entries[1].url == (
        f"{URL}?To=%2B919876543210&From=%2B15005550006&DateSent%3E=2025-06-14&PageSize=50"
    )
    assert entries[1].request_body == ""
    assert_nothing_secret(entries)


@pytest.mark.anyio
async def test_an_audit_sink_that_fails_never_fails_the_call() -> None:
    status, entries = await run(created, BrokenSink())
    assert (status, entries) == (ResultStatus.DELIVERED, [])
