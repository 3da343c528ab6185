"""CommandExecutor end to end, against the provider simulators (ASGI) or a scripted provider.

No Kafka and no real waiting: the retry sleep is a recorder that returns at once.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from connector_support import (
    BARE,
    PHONE,
    TENANT,
    ScriptedProvider,
    SleepRecorder,
    command,
    email,
    make_tenants,
    order,
    razorpay_order,
    refuse_connection,
    sms,
    tenant,
    twilio_message,
)
from starlette.applications import Starlette

from connectors.executor import CommandExecutor
from connectors.ledger import Ledger
from connectors.registry import PROVIDERS
from connectors.retry import RetryPolicy
from hub.settings import Settings
from hub.tenants import TenantDirectory, demo_tenant_config, parse_tenants
from schemas.events import ConnectorCommand, ConnectorResult, ResultStatus
from simulators import create_app
from simulators.state import Fault, RecordedRequest, SimState

WEBHOOKS = "http://ingress.test/webhooks/razorpay/{tenant}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tenants() -> TenantDirectory:
    return make_tenants()


@dataclass
class Harness:
    """One provider's executor over one HTTP transport, with its ledger and fake sleep."""

    provider: str
    tenants: TenantDirectory
    http: httpx.AsyncClient
    sleep: SleepRecorder
    ledger: Ledger

    def executor(self, ledger: Ledger | None = None) -> CommandExecutor:
        return CommandExecutor(
            PROVIDERS[self.provider],
            settings=Settings(),
            base_url=f"http://sim/{self.provider}",
            tenants=self.tenants,
            http=self.http,
            policy=RetryPolicy(),
            ledger=ledger if ledger is not None else self.ledger,
            sleep=self.sleep,
        )

    async def execute(self, cmd: ConnectorCommand) -> ConnectorResult:
        return await self.executor().execute(cmd)


class Simulator:
    """The provider simulators behind `httpx.ASGITransport`."""

    def __init__(self, tenants: TenantDirectory) -> None:
        self.state = SimState()
        self.app: Starlette = create_app(
            tenants,
            webhook_url_template=WEBHOOKS,
            webhook_transport=httpx.MockTransport(lambda _r: httpx.Response(200)),
            state=self.state,
        )

    def requests(self, provider: str) -> list[RecordedRequest]:
        return self.state.recorder.list(provider)

    def fail(self, provider: str, status: int, times: int, **extra: Any) -> None:
        self.state.faults.add(Fault(provider=provider, status=status, times=times, **extra))


@pytest.fixture
def sim(tenants: TenantDirectory) -> Simulator:
    return Simulator(tenants)


@pytest.fixture
async def sim_http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app)) as http:
        yield http


def harness(provider: str, tenants: TenantDirectory, http: httpx.AsyncClient) -> Harness:
    return Harness(provider, tenants, http, SleepRecorder(), Ledger())


def scripted_client(provider: ScriptedProvider) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=provider.transport())


def assert_answers(result: ConnectorResult, cmd: ConnectorCommand) -> None:
    """What every result carries over from its command."""
    assert result.command_id == cmd.command_id
    assert result.idempotency_key == cmd.idempotency_key
    assert result.provider == cmd.provider
    assert result.operation == cmd.operation
    assert result.context == cmd.context
    assert result.header.causation_id == cmd.header.event_id
    assert result.header.correlation_id == cmd.header.correlation_id
    assert result.header.tenant == cmd.header.tenant
    assert result.header.event_type == ConnectorResult.EVENT_TYPE
    assert result.header.source == f"connector-{cmd.provider}"
    assert result.key() == cmd.key()


# --- against the simulators ----------------------------------------------------


@pytest.mark.anyio
async def test_sms_delivered_through_the_simulator(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("twilio", tenants, sim_http)
    cmd = command("twilio", sms(), context={"invoice_id": "inv-7", "purpose": "receipt"})
    result = await h.execute(cmd)
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref is not None
    assert result.provider_ref.startswith("SM")
    assert result.http_status == 201
    assert result.attempts == 1
    assert result.duplicate is False
    assert result.details["status"] == "queued"
    assert float(result.details["latency_ms"]) >= 0
    assert_answers(result, cmd)
    [received] = sim.requests("twilio")
    t1 = tenant(tenants)
    assert t1.twilio is not None
    assert received.tenant == TENANT
    assert received.response_status == 201
    assert received.body == {"To": PHONE, "From": t1.twilio.from_number, "Body": cmd.payload.text}
    assert h.sleep.waits == []


@pytest.mark.anyio
async def test_same_command_twice_is_sent_once(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("twilio", tenants, sim_http)
    cmd = command("twilio", sms(), key="fee-receipt-1")
    first = await h.execute(cmd)
    again = await h.execute(cmd)
    assert first.status is ResultStatus.DELIVERED
    assert again.status is ResultStatus.DELIVERED
    assert again.duplicate is True
    assert again.attempts == 0
    assert again.provider_ref == first.provider_ref
    assert again.idempotency_key == cmd.idempotency_key
    assert_answers(again, cmd)
    assert again.header.event_id != first.header.event_id
    assert len(sim.requests("twilio")) == 1


@pytest.mark.anyio
async def test_redelivered_command_with_same_key_is_not_resent(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("twilio", tenants, sim_http)
    first = await h.execute(command("twilio", sms(), key="k-1", context={"try": "1"}))
    second_cmd = command("twilio", sms(), key="k-1", context={"try": "2"})
    second = await h.execute(second_cmd)
    other = await h.execute(command("twilio", sms(), key="k-2"))
    assert second.duplicate is True
    assert second.provider_ref == first.provider_ref
    assert second.command_id == second_cmd.command_id
    assert second.context == {"try": "2"}
    assert other.duplicate is False
    assert other.provider_ref != first.provider_ref
    assert len(sim.requests("twilio")) == 2


@pytest.mark.anyio
async def test_two_503s_then_delivered(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 503, times=2)
    h = harness("twilio", tenants, sim_http)
    result = await h.execute(command("twilio", sms()))
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 3
    assert result.http_status == 201
    received = sim.requests("twilio")
    assert [r.response_status for r in received] == [503, 503, 201]
    assert len({str(r.body) for r in received}) == 1  # the same request every time
    assert h.sleep.waits == [1.0, 2.0]


@pytest.mark.anyio
async def test_invalid_number_is_rejected_after_one_request(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("twilio", tenants, sim_http)
    cmd = command("twilio", sms(to="12345"))
    result = await h.execute(cmd)
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert result.http_status == 400
    assert result.error_code == "21211"
    assert result.error_message is not None
    assert "12345" in result.error_message
    assert result.attempts == 1
    assert_answers(result, cmd)
    assert len(sim.requests("twilio")) == 1
    assert h.sleep.waits == []


@pytest.mark.anyio
async def test_always_503_fails_retryable_after_five_requests(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 503, times=50)
    h = harness("twilio", tenants, sim_http)
    result = await h.execute(command("twilio", sms()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.http_status == 503
    assert result.error_code == "20500"
    assert result.attempts == 5
    assert len(sim.requests("twilio")) == 5
    assert h.sleep.waits == [1.0, 2.0, 4.0, 8.0]
    assert len(h.ledger) == 0


@pytest.mark.anyio
async def test_failed_command_is_not_remembered_and_can_be_sent_again(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 503, times=5)
    h = harness("twilio", tenants, sim_http)
    cmd = command("twilio", sms())
    failed = await h.execute(cmd)
    retried = await h.execute(cmd)
    assert failed.status is ResultStatus.FAILED
    assert retried.status is ResultStatus.DELIVERED
    assert retried.duplicate is False
    assert len(sim.requests("twilio")) == 6


@pytest.mark.anyio
async def test_retry_after_from_the_provider_is_the_wait(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 429, times=1, retry_after=3.0)
    h = harness("twilio", tenants, sim_http)
    result = await h.execute(command("twilio", sms()))
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 2
    assert h.sleep.waits == [3.0]


@pytest.mark.anyio
async def test_wrong_credentials_are_rejected(sim: Simulator, sim_http: httpx.AsyncClient) -> None:
    # The hub's tenant config has other secrets than the provider knows.
    hub_tenants = parse_tenants(tomllib.loads(demo_tenant_config(TENANT)))
    h = harness("twilio", hub_tenants, sim_http)
    result = await h.execute(command("twilio", sms()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert (result.http_status, result.error_code) == (401, "20003")
    assert result.attempts == 1
    assert len(sim.requests("twilio")) == 1


@pytest.mark.anyio
async def test_payment_order_created_through_the_simulator(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("razorpay", tenants, sim_http)
    cmd = command("razorpay", order(receipt="inv-1-r1"))
    result = await h.execute(cmd)
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref is not None
    assert result.provider_ref.startswith("order_")
    assert result.details["order_id"] == result.provider_ref
    assert result.details["receipt"] == "inv-1-r1"
    assert result.details["amount"] == "150000"
    assert_answers(result, cmd)
    assert sim.state.orders[result.provider_ref].tenant == TENANT


@pytest.mark.anyio
async def test_payment_order_resent_after_lost_ledger_returns_the_same_order(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    # A crash between the provider's answer and the result reaching Kafka: the ledger
    # forgot, so the order is sent again, and Razorpay's unique receipt dedups it.
    h = harness("razorpay", tenants, sim_http)
    cmd = command("razorpay", order(receipt="inv-1-r1"))
    first = await h.executor(Ledger()).execute(cmd)
    again = await h.executor(Ledger()).execute(cmd)
    assert again.duplicate is False
    assert again.provider_ref == first.provider_ref
    assert len(sim.requests("razorpay")) == 2
    assert len(sim.state.orders) == 1


@pytest.mark.anyio
async def test_email_sent_through_the_simulator(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("sendgrid", tenants, sim_http)
    cmd = command("sendgrid", email(), key="mail-1")
    result = await h.execute(cmd)
    assert result.status is ResultStatus.DELIVERED
    assert result.http_status == 202
    assert result.provider_ref
    assert result.details["message_id"] == result.provider_ref
    assert_answers(result, cmd)
    [received] = sim.requests("sendgrid")
    assert received.body["custom_args"] == {
        "idempotency_key": "mail-1",
        "command_id": cmd.command_id,
    }


@pytest.mark.anyio
async def test_invalid_email_is_rejected_with_the_field(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("sendgrid", tenants, sim_http)
    result = await h.execute(command("sendgrid", email(to="not-an-address")))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert result.http_status == 400
    assert result.error_code == "field:personalizations.0.to.0.email"
    assert len(sim.requests("sendgrid")) == 1


# --- against a scripted provider -------------------------------------------------


@pytest.mark.anyio
async def test_scripted_503_503_201(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider(
        [
            httpx.Response(503, json={"code": 20500, "message": "Service Unavailable"}),
            httpx.Response(503, json={"code": 20500, "message": "Service Unavailable"}),
            httpx.Response(201, json=twilio_message("SMdone")),
        ]
    )
    async with scripted_client(provider) as http:
        h = harness("twilio", tenants, http)
        result = await h.execute(command("twilio", sms()))
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == "SMdone"
    assert result.attempts == 3
    assert len(provider.requests) == 3
    assert len({r.content for r in provider.requests}) == 1
    assert h.sleep.waits == [1.0, 2.0]


@pytest.mark.anyio
async def test_scripted_duplicate_reaches_the_provider_once(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider([httpx.Response(201, json=twilio_message("SMonce"))])
    async with scripted_client(provider) as http:
        h = harness("twilio", tenants, http)
        cmd = command("twilio", sms())
        first = await h.execute(cmd)
        again = await h.execute(cmd)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.provider_ref == "SMonce"
    assert len(provider.requests) == 1


@pytest.mark.anyio
async def test_scripted_400_is_failed_not_retryable(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider(
        [httpx.Response(400, json={"code": 21211, "message": "Invalid 'To' Phone Number"})]
    )
    async with scripted_client(provider) as http:
        h = harness("twilio", tenants, http)
        result = await h.execute(command("twilio", sms()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert (result.http_status, result.error_code) == (400, "21211")
    assert result.error_message == "Invalid 'To' Phone Number"
    assert result.attempts == 1
    assert len(provider.requests) == 1


@pytest.mark.anyio
async def test_scripted_always_503_is_failed_retryable(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider([httpx.Response(503, text="upstream down")])
    async with scripted_client(provider) as http:
        h = harness("razorpay", tenants, http)
        result = await h.execute(command("razorpay", order()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.http_status == 503
    assert result.attempts == 5
    assert len(provider.requests) == 5
    assert h.sleep.waits == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.anyio
async def test_network_error_is_retried(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider(
        [refuse_connection, httpx.Response(200, json=razorpay_order("order_after_blip"))]
    )
    async with scripted_client(provider) as http:
        h = harness("razorpay", tenants, http)
        result = await h.execute(command("razorpay", order()))
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == "order_after_blip"
    assert result.attempts == 2
    assert len(provider.requests) == 2
    assert h.sleep.waits == [1.0]


@pytest.mark.anyio
async def test_persistent_network_error_is_failed_retryable(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider([refuse_connection])
    async with scripted_client(provider) as http:
        h = harness("sendgrid", tenants, http)
        result = await h.execute(command("sendgrid", email()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.http_status is None
    assert result.error_message is not None
    assert "ConnectError" in result.error_message
    assert result.attempts == 5
    assert len(provider.requests) == 5


@pytest.mark.anyio
async def test_read_timeout_is_retried(tenants: TenantDirectory) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    provider = ScriptedProvider([slow, httpx.Response(202, headers={"X-Message-Id": "m-1"})])
    async with scripted_client(provider) as http:
        h = harness("sendgrid", tenants, http)
        result = await h.execute(command("sendgrid", email()))
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == "m-1"
    assert result.attempts == 2


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the provider must not be called: {request.url}")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("provider_name", "cmd", "message"),
    [
        pytest.param(
            "twilio",
            command("twilio", sms(), tenant_id="nobody"),
            "unknown tenant 'nobody'",
            id="unknown-tenant",
        ),
        pytest.param(
            "twilio",
            command("twilio", email()),
            "twilio cannot do email.send",
            id="email-to-twilio",
        ),
        pytest.param(
            "sendgrid",
            command("sendgrid", sms()),
            "sendgrid cannot do sms.send",
            id="sms-to-sendgrid",
        ),
        pytest.param(
            "razorpay",
            command("razorpay", sms()),
            "razorpay cannot do sms.send",
            id="sms-to-razorpay",
        ),
        pytest.param(
            "twilio",
            command("twilio", sms(), tenant_id=BARE),
            "has no Twilio account",
            id="missing-credentials",
        ),
    ],
)
async def test_permanent_failures_without_any_request(
    tenants: TenantDirectory, provider_name: str, cmd: ConnectorCommand, message: str
) -> None:
    provider = ScriptedProvider([never_called])
    async with scripted_client(provider) as http:
        h = harness(provider_name, tenants, http)
        result = await h.execute(cmd)
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert result.attempts == 0
    assert result.http_status is None
    assert result.error_message is not None
    assert message in result.error_message
    assert_answers(result, cmd)
    assert provider.requests == []
    assert h.sleep.waits == []
    assert len(h.ledger) == 0


@pytest.mark.anyio
async def test_ledger_entry_from_another_worker_prevents_the_send(
    tenants: TenantDirectory,
) -> None:
    # A restored ledger (from the results topic) answers without calling the provider.
    provider = ScriptedProvider([never_called])
    cmd = command("twilio", sms(), key="restored-key")
    restored = Ledger()
    earlier = ConnectorResult(
        header=cmd.header.caused(ConnectorResult.EVENT_TYPE, source="connector-twilio"),
        command_id="older-command",
        idempotency_key="restored-key",
        provider="twilio",
        operation="sms.send",
        status=ResultStatus.DELIVERED,
        provider_ref="SMold",
        http_status=201,
        attempts=1,
    )
    restored.remember(earlier)
    async with scripted_client(provider) as http:
        h = harness("twilio", tenants, http)
        result = await h.executor(restored).execute(cmd)
    assert result.duplicate is True
    assert result.provider_ref == "SMold"
    assert result.command_id == cmd.command_id
    assert provider.requests == []


def test_sent_form_matches_the_command() -> None:
    """Sanity check of the request a scripted provider sees (sync, via asyncio.run)."""
    tenants = make_tenants()
    provider = ScriptedProvider([httpx.Response(201, json=twilio_message())])

    async def run() -> ConnectorResult:
        async with scripted_client(provider) as http:
            return await harness("twilio", tenants, http).execute(command("twilio", sms()))

    result = asyncio.run(run())
    assert result.status is ResultStatus.DELIVERED
    [request] = provider.requests
    assert request.url.path.endswith("/Messages.json")
    assert parse_qs(request.content.decode())["To"] == [PHONE]
