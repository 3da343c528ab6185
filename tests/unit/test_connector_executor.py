"""CommandExecutor.attempt end to end, against the provider simulators (ASGI) or a scripted
provider: requests, in-process retries, permanent failures.

No Kafka and no real waiting: time is fake (sleeping records the wait and moves the clock).
Whether a command is sent at all is the ledger's call (test_connector_ledger.py); trying again
after a try that ended in doubt is in test_connector_in_doubt.py.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs

import httpx
import pytest
from connector_support import (
    BARE,
    PHONE,
    TENANT,
    FakeTime,
    LoseAnswers,
    ScriptedProvider,
    Simulator,
    assert_answers,
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
from tenant_accounts import primary

from catalog.tenant_file import demo_tenant_config, parse_tenants
from connectors.executor import CommandExecutor
from connectors.registry import adapter
from connectors.retry import RetryPolicy
from core.settings import Settings
from core.tenants import TenantDirectory
from providers.twilio import TwilioAccount
from schemas.events import ConnectorCommand, ConnectorResult, ResultStatus


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tenants() -> TenantDirectory:
    return make_tenants()  # slow (it makes keys); read-only, so shared


@dataclass
class Harness:
    """One provider's executor over one HTTP transport, on fake time."""

    provider: str
    tenants: TenantDirectory
    http: httpx.AsyncClient
    time: FakeTime

    def executor(self) -> CommandExecutor:
        return CommandExecutor(
            adapter(self.provider),
            settings=Settings(),
            base_url=f"http://sim/{self.provider}",
            tenants=self.tenants,
            http=self.http,
            policy=RetryPolicy(),
            sleep=self.time.sleep,
            clock=self.time.clock,
        )

    async def attempt(self, cmd: ConnectorCommand) -> ConnectorResult:
        return await self.executor().attempt(cmd)

    @property
    def waits(self) -> list[float]:
        return self.time.waits


@pytest.fixture
def sim(tenants: TenantDirectory) -> Simulator:
    return Simulator(tenants)


@pytest.fixture
async def sim_http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=sim.transport()) as http:
        yield http


def harness(provider: str, tenants: TenantDirectory, http: httpx.AsyncClient) -> Harness:
    return Harness(provider, tenants, http, FakeTime())


def scripted_client(provider: ScriptedProvider) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=provider.transport())


# --- against the simulators ----------------------------------------------------


@pytest.mark.anyio
async def test_sms_delivered_through_the_simulator(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("twilio", tenants, sim_http)
    payload = sms()
    cmd = command("twilio", payload, context={"invoice_id": "inv-7", "purpose": "receipt"})
    result = await h.attempt(cmd)
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref is not None
    assert result.provider_ref.startswith("SM")
    assert result.http_status == 201
    assert result.attempts == 1
    assert result.duplicate is False
    assert result.details["status"] == "queued"
    assert "found_by" not in result.details
    assert float(result.details["latency_ms"]) >= 0
    assert_answers(result, cmd)
    [received] = sim.requests("twilio")
    t1 = tenant(tenants)
    assert received.tenant == TENANT
    assert received.response_status == 201
    assert received.body == {
        "To": PHONE,
        "From": primary(t1, TwilioAccount).from_number,
        "Body": payload.text,
    }
    assert [m["sid"] for m in sim.sms()] == [result.provider_ref]
    assert h.waits == []


@pytest.mark.anyio
async def test_attempt_sends_whenever_asked_the_ledger_decides_whether_to_ask(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("twilio", tenants, sim_http)
    cmd = command("twilio", sms(), key="fee-receipt-1")
    first = await h.attempt(cmd)
    again = await h.attempt(cmd)
    assert (first.duplicate, again.duplicate) == (False, False)
    assert first.provider_ref != again.provider_ref
    assert len(sim.requests("twilio")) == 2
    assert len(sim.sms()) == 2


@pytest.mark.anyio
async def test_two_503s_then_delivered(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 503, times=2)
    h = harness("twilio", tenants, sim_http)
    result = await h.attempt(command("twilio", sms()))
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 3
    assert result.http_status == 201
    received = sim.requests("twilio")
    assert [r.response_status for r in received] == [503, 503, 201]
    assert {r.method for r in received} == {"POST"}  # a 503 is an answer: nothing to look up
    assert len({str(r.body) for r in received}) == 1  # the same request every time
    assert len(sim.sms()) == 1
    assert h.waits == [1.0, 2.0]


@pytest.mark.anyio
async def test_invalid_number_is_rejected_after_one_request(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("twilio", tenants, sim_http)
    cmd = command("twilio", sms(to="12345"))
    result = await h.attempt(cmd)
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert result.http_status == 400
    assert result.error_code == "21211"
    assert result.error_message is not None
    assert "12345" in result.error_message
    assert result.attempts == 1
    assert_answers(result, cmd)
    assert len(sim.requests("twilio")) == 1
    assert h.waits == []


@pytest.mark.anyio
async def test_always_503_fails_retryable_after_five_requests(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 503, times=50)
    h = harness("twilio", tenants, sim_http)
    result = await h.attempt(command("twilio", sms()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.http_status == 503
    assert result.error_code == "20500"
    assert result.attempts == 5
    assert len(sim.requests("twilio")) == 5
    assert sim.sms() == []
    assert h.waits == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.anyio
async def test_a_failed_command_can_be_attempted_again(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 503, times=5)
    h = harness("twilio", tenants, sim_http)
    cmd = command("twilio", sms())
    failed = await h.attempt(cmd)
    retried = await h.attempt(cmd)
    assert failed.status is ResultStatus.FAILED
    assert retried.status is ResultStatus.DELIVERED
    assert retried.attempts == 1
    assert len(sim.requests("twilio")) == 6
    assert len(sim.sms()) == 1


@pytest.mark.anyio
async def test_retry_after_from_the_provider_is_the_wait(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 429, times=1, retry_after=3.0)
    h = harness("twilio", tenants, sim_http)
    result = await h.attempt(command("twilio", sms()))
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 2
    assert h.waits == [3.0]


@pytest.mark.anyio
async def test_a_long_retry_after_is_capped(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    sim.fail("twilio", 429, times=1, retry_after=600.0)
    h = harness("twilio", tenants, sim_http)
    result = await h.attempt(command("twilio", sms()))
    assert result.status is ResultStatus.DELIVERED
    assert h.waits == [60.0]  # Settings().retry_after_cap_seconds


@pytest.mark.anyio
async def test_wrong_credentials_are_rejected(sim: Simulator, sim_http: httpx.AsyncClient) -> None:
    # The hub's tenant config has other secrets than the provider knows.
    hub_tenants = parse_tenants(tomllib.loads(demo_tenant_config(TENANT)))
    h = harness("twilio", hub_tenants, sim_http)
    result = await h.attempt(command("twilio", sms()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert (result.http_status, result.error_code) == (401, "20003")
    assert result.attempts == 1
    assert len(sim.requests("twilio")) == 1
    assert h.waits == []


@pytest.mark.anyio
async def test_payment_order_created_through_the_simulator(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("razorpay", tenants, sim_http)
    cmd = command("razorpay", order(receipt="inv-1-r1"))
    result = await h.attempt(cmd)
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref is not None
    assert result.provider_ref.startswith("order_")
    assert result.details["order_id"] == result.provider_ref
    assert result.details["receipt"] == "inv-1-r1"
    assert result.details["amount"] == "150000"
    assert_answers(result, cmd)
    assert sim.state.orders[result.provider_ref].tenant == TENANT


@pytest.mark.anyio
async def test_payment_order_resent_after_a_crash_returns_the_same_order(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    # A worker died between Razorpay's answer and recording it: the next worker finds only
    # the intent and, Razorpay having no lookup, sends again (Send(in_doubt=True)). The
    # receipt is Razorpay's idempotency key: the same order comes back.
    cmd = command("razorpay", order(receipt="inv-1-r1"))
    first = await harness("razorpay", tenants, sim_http).attempt(cmd)
    again = await harness("razorpay", tenants, sim_http).attempt(cmd)
    assert again.status is ResultStatus.DELIVERED
    assert again.provider_ref == first.provider_ref
    assert len(sim.requests("razorpay")) == 2
    assert len(sim.state.orders) == 1


@pytest.mark.anyio
async def test_email_sent_through_the_simulator(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("sendgrid", tenants, sim_http)
    cmd = command("sendgrid", email(), key="mail-1")
    result = await h.attempt(cmd)
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
    [mail] = sim.mails()
    assert mail.unique_args["idempotency_key"] == "mail-1"


@pytest.mark.anyio
async def test_invalid_email_is_rejected_with_the_field(
    tenants: TenantDirectory, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    h = harness("sendgrid", tenants, sim_http)
    result = await h.attempt(command("sendgrid", email(to="not-an-address")))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert result.http_status == 400
    assert result.error_code == "field:personalizations.0.to.0.email"
    assert len(sim.requests("sendgrid")) == 1


@pytest.mark.anyio
async def test_razorpay_read_timeout_is_resent_and_the_receipt_dedups_it(
    tenants: TenantDirectory, sim: Simulator
) -> None:
    # Razorpay cannot be asked (no lookup): a try in doubt is sent again at once.
    transport = LoseAnswers(sim.transport(), httpx.ReadTimeout, reached=True)
    async with httpx.AsyncClient(transport=transport) as http:
        h = harness("razorpay", tenants, http)
        result = await h.attempt(command("razorpay", order(receipt="inv-2-r1")))
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 2
    assert [r.method for r in sim.requests("razorpay")] == ["POST", "POST"]
    [only] = sim.state.orders.values()
    assert result.provider_ref == only.id
    assert h.waits == [1.0]


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
        result = await h.attempt(command("twilio", sms()))
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == "SMdone"
    assert result.attempts == 3
    assert len(provider.requests) == 3
    assert len({r.content for r in provider.requests}) == 1
    assert h.waits == [1.0, 2.0]


@pytest.mark.anyio
async def test_scripted_400_is_failed_not_retryable(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider(
        [httpx.Response(400, json={"code": 21211, "message": "Invalid 'To' Phone Number"})]
    )
    async with scripted_client(provider) as http:
        h = harness("twilio", tenants, http)
        result = await h.attempt(command("twilio", sms()))
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
        result = await h.attempt(command("razorpay", order()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.http_status == 503
    assert result.attempts == 5
    assert len(provider.requests) == 5
    assert h.waits == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.anyio
async def test_an_order_another_gateway_can_take_gets_fewer_tries(
    tenants: TenantDirectory,
) -> None:
    # processors.fees marks it: the parent waits on the checkout while we retry.
    provider = ScriptedProvider([httpx.Response(503, text="upstream down")])
    failover = command("razorpay", order()).model_copy(update={"context": {"failover": "next"}})
    async with scripted_client(provider) as http:
        h = harness("razorpay", tenants, http)
        result = await h.attempt(failover)
    assert (result.status, result.retryable, result.attempts) == (ResultStatus.FAILED, True, 2)
    assert len(provider.requests) == 2
    assert h.waits == [1.0]


@pytest.mark.anyio
async def test_network_error_is_retried(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider(
        [refuse_connection, httpx.Response(200, json=razorpay_order("order_after_blip"))]
    )
    async with scripted_client(provider) as http:
        h = harness("razorpay", tenants, http)
        result = await h.attempt(command("razorpay", order()))
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == "order_after_blip"
    assert result.attempts == 2
    assert len(provider.requests) == 2
    assert h.waits == [1.0]


@pytest.mark.anyio
async def test_persistent_network_error_is_failed_retryable(tenants: TenantDirectory) -> None:
    provider = ScriptedProvider([refuse_connection])
    async with scripted_client(provider) as http:
        h = harness("sendgrid", tenants, http)
        result = await h.attempt(command("sendgrid", email()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.http_status is None
    assert result.error_message is not None
    assert "ConnectError" in result.error_message
    assert "after sending" not in result.error_message
    assert result.attempts == 5
    # Never connected: nothing to ask SendGrid about, every try is a send.
    assert [r.method for r in provider.requests] == ["POST"] * 5
    assert h.waits == [1.0, 2.0, 4.0, 8.0]


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
            "has no enabled twilio account",
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
        result = await h.attempt(cmd)
    assert result.status is ResultStatus.FAILED
    assert result.retryable is False
    assert result.attempts == 0
    assert result.http_status is None
    assert result.error_message is not None
    assert message in result.error_message
    assert_answers(result, cmd)
    assert provider.requests == []
    assert h.waits == []


def test_sent_form_matches_the_command() -> None:
    """Sanity check of the request a scripted provider sees (sync, via asyncio.run)."""
    tenants = make_tenants()
    provider = ScriptedProvider([httpx.Response(201, json=twilio_message())])

    async def run() -> ConnectorResult:
        async with scripted_client(provider) as http:
            return await harness("twilio", tenants, http).attempt(command("twilio", sms()))

    result = asyncio.run(run())
    assert result.status is ResultStatus.DELIVERED
    [request] = provider.requests
    assert request.url.path.endswith("/Messages.json")
    assert parse_qs(request.content.decode())["To"] == [PHONE]
