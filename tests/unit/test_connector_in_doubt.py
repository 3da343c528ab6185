"""Attempts in doubt: a try whose request may have reached the provider (read timeout, a
connection dropped after sending) is not simply sent again. Within `attempt`, the next try
asks the provider first; `look_up` asks about a crashed worker's attempt, once the
provider's answer is conclusive. Against the simulators, on fake time shared with them.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from connector_support import (
    BARE,
    TENANT,
    FakeTime,
    LoseAnswers,
    Simulator,
    assert_answers,
    command,
    email,
    make_tenants,
    order,
    sms,
)

from catalog.tenant_file import demo_tenant_config, parse_tenants
from connectors.executor import CommandExecutor, duplicate_of, in_doubt_failure
from connectors.ledger import (
    AnswerDuplicate,
    LedgerEntry,
    LookUp,
    Send,
    decide,
    intent,
    outcome,
)
from connectors.registry import adapter
from connectors.retry import RetryPolicy
from core.settings import Settings
from core.tenants import TenantDirectory
from providers.base import RetryLater
from providers.lookup import Found, NotFound, lookup_refused
from schemas.events import ResultStatus


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tenants() -> TenantDirectory:
    return make_tenants()  # slow (it makes keys); read-only, so shared


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def sim(tenants: TenantDirectory, time: FakeTime) -> Simulator:
    return Simulator(tenants, clock=time.clock)


@dataclass
class Setup:
    tenants: TenantDirectory
    time: FakeTime
    settings: Settings = field(default_factory=Settings)

    def executor(self, provider: str, http: httpx.AsyncClient) -> CommandExecutor:
        return CommandExecutor(
            adapter(provider),
            settings=self.settings,
            base_url=f"http://sim/{provider}",
            tenants=self.tenants,
            http=http,
            policy=RetryPolicy(),
            sleep=self.time.sleep,
            clock=self.time.clock,
        )


@pytest.fixture
def setup(tenants: TenantDirectory, time: FakeTime) -> Setup:
    return Setup(tenants, time)


@pytest.fixture
async def sim_http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=sim.transport()) as http:
        yield http


def methods(sim: Simulator, provider: str) -> list[str]:
    return [r.method for r in sim.requests(provider)]


# --- within attempt ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("lost", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError])
async def test_twilio_try_in_doubt_that_happened_is_found_not_sent_again(
    setup: Setup, sim: Simulator, lost: type[httpx.TransportError]
) -> None:
    async with httpx.AsyncClient(transport=LoseAnswers(sim.transport(), lost)) as http:
        cmd = command("twilio", sms())
        result = await setup.executor("twilio", http).attempt(cmd)
    [message] = sim.sms()  # the first request created it; nothing created a second
    assert result.status is ResultStatus.DELIVERED
    assert result.details["found_by"] == "lookup"
    assert result.provider_ref == message["sid"]
    assert result.attempts == 2
    assert_answers(result, cmd)
    sent = methods(sim, "twilio")
    assert sent[0] == "POST"
    assert sent.count("POST") == 1
    assert "GET" in sent
    # The backoff, then the rest of a whole HTTP timeout (5 + 15 s) since the lost send:
    # a request still queued at the provider would show up only then.
    assert setup.time.waits == [1.0, 19.0]


@pytest.mark.anyio
async def test_twilio_try_in_doubt_that_never_arrived_is_sent_after_the_lookup(
    setup: Setup, sim: Simulator
) -> None:
    transport = LoseAnswers(sim.transport(), httpx.ReadTimeout, reached=False)
    async with httpx.AsyncClient(transport=transport) as http:
        result = await setup.executor("twilio", http).attempt(command("twilio", sms()))
    [message] = sim.sms()
    assert result.status is ResultStatus.DELIVERED
    assert result.provider_ref == message["sid"]
    assert result.http_status == 201
    assert "found_by" not in result.details
    assert result.attempts == 2
    sent = methods(sim, "twilio")
    assert sent[-1] == "POST"
    assert sent.count("POST") == 1  # the lost try never got there
    assert sent.count("GET") >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("unsent", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_a_try_that_never_connected_is_retried_without_a_lookup(
    setup: Setup, sim: Simulator, unsent: type[httpx.TransportError]
) -> None:
    transport = LoseAnswers(sim.transport(), unsent, reached=False)
    async with httpx.AsyncClient(transport=transport) as http:
        result = await setup.executor("twilio", http).attempt(command("twilio", sms()))
    assert result.status is ResultStatus.DELIVERED
    assert result.attempts == 2
    assert "found_by" not in result.details
    assert methods(sim, "twilio") == ["POST"]  # the second try, sent straight away
    assert len(sim.sms()) == 1
    assert setup.time.waits == [1.0]


@pytest.mark.anyio
async def test_twilio_lookup_that_cannot_tell_is_not_sent_blind(
    setup: Setup, sim: Simulator
) -> None:
    sim.fail("twilio", 503, times=50, method="GET")  # the message list is down
    async with httpx.AsyncClient(transport=LoseAnswers(sim.transport())) as http:
        result = await setup.executor("twilio", http).attempt(command("twilio", sms()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.attempts == 5
    assert methods(sim, "twilio") == ["POST", "GET", "GET", "GET", "GET"]
    assert len(sim.sms()) == 1


@pytest.mark.anyio
async def test_sendgrid_try_in_doubt_is_not_resent_before_its_feed_settles(
    setup: Setup, sim: Simulator
) -> None:
    # SendGrid's activity feed is conclusive only 600 s after a send: no in-process wait is
    # that long, so every later try answers "in doubt" instead of sending.
    async with httpx.AsyncClient(transport=LoseAnswers(sim.transport())) as http:
        result = await setup.executor("sendgrid", http).attempt(command("sendgrid", email()))
    assert result.status is ResultStatus.FAILED
    assert result.retryable is True
    assert result.attempts == 5
    assert result.error_message is not None
    assert "in doubt" in result.error_message
    assert methods(sim, "sendgrid") == ["POST"]
    assert len(sim.mails()) == 1
    # 1 s backoff, then Retry-After of the remaining settle time, capped at 60 s.
    assert setup.time.waits == [1.0, 60.0, 60.0, 60.0]


@pytest.mark.anyio
async def test_sendgrid_try_in_doubt_with_a_short_settle_is_found(
    tenants: TenantDirectory, time: FakeTime, sim: Simulator
) -> None:
    setup = Setup(tenants, time, Settings(lookup_settle_seconds={"sendgrid": 5.0}))
    async with httpx.AsyncClient(transport=LoseAnswers(sim.transport())) as http:
        cmd = command("sendgrid", email(), key="mail-9")
        result = await setup.executor("sendgrid", http).attempt(cmd)
    [mail] = sim.mails()
    assert result.status is ResultStatus.DELIVERED
    assert result.details["found_by"] == "lookup"
    assert result.provider_ref == mail.msg_id
    assert methods(sim, "sendgrid") == ["POST", "GET"]
    # The backoff, then the rest of the in-flight margin (5 + 15 s; longer than the 5 s
    # settle) since the send.
    assert time.waits == [1.0, 19.0]


# --- look_up: a crashed worker's intent ---------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "later",
    [
        pytest.param(25.0, id="past-the-20s-in-flight-margin"),
        pytest.param(3600.0, id="an-hour-later-from-a-retry-tier"),
    ],
)
async def test_look_up_finds_an_intent_that_reached_the_provider(
    setup: Setup, sim: Simulator, sim_http: httpx.AsyncClient, later: float
) -> None:
    cmd = command("twilio", sms())
    since = setup.time.ms_ago(0)
    await setup.executor("twilio", sim_http).attempt(cmd)  # the crashed worker's attempt
    setup.time.now += later
    answer = await setup.executor("twilio", sim_http).look_up(cmd, since)
    [message] = sim.sms()
    assert answer == Found(message["sid"], {"status": "delivered"})
    assert setup.time.waits == []
    assert methods(sim, "twilio").count("POST") == 1


@pytest.mark.anyio
async def test_look_up_of_an_intent_that_never_arrived_is_not_found(
    setup: Setup, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    # Another command's message to the same number is no trace of this one.
    await setup.executor("twilio", sim_http).attempt(command("twilio", sms(text="Other text")))
    since = setup.time.ms_ago(0)
    setup.time.now += 25
    answer = await setup.executor("twilio", sim_http).look_up(command("twilio", sms()), since)
    assert answer == NotFound()
    assert setup.time.waits == []
    assert methods(sim, "twilio")[0] == "POST"
    assert set(methods(sim, "twilio")[1:]) == {"GET"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("settings", "slept"),
    [
        pytest.param(Settings(), 15.0, id="5+15s-minus-5s"),
        pytest.param(Settings(http_connect_timeout=2.0, http_read_timeout=10.0), 7.0, id="2+10s"),
    ],
)
async def test_look_up_waits_out_the_in_flight_margin_first(
    tenants: TenantDirectory,
    time: FakeTime,
    sim: Simulator,
    sim_http: httpx.AsyncClient,
    settings: Settings,
    slept: float,
) -> None:
    # The crashed worker's request may still be on its way for a whole HTTP timeout.
    setup = Setup(tenants, time, settings)
    answer = await setup.executor("twilio", sim_http).look_up(
        command("twilio", sms()), time.ms_ago(5)
    )
    assert time.waits == [pytest.approx(slept)]
    assert answer == NotFound()
    assert sim.requests("twilio")  # asked only after waiting


@pytest.mark.anyio
async def test_look_up_sleeps_up_to_30_seconds(
    tenants: TenantDirectory, time: FakeTime, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    setup = Setup(tenants, time, Settings(lookup_settle_seconds={"twilio": 30.0}))
    answer = await setup.executor("twilio", sim_http).look_up(
        command("twilio", sms()), time.ms_ago(0)
    )
    assert time.waits == [30.0]
    assert answer == NotFound()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("provider", "settings", "ago", "wait"),
    [
        pytest.param("twilio", Settings(http_read_timeout=40.0), 0.0, 45.0, id="long-timeouts"),
        pytest.param("twilio", Settings(lookup_settle_seconds={"twilio": 31.0}), 0.0, 31.0),
        pytest.param("sendgrid", Settings(), 10.0, 590.0, id="sendgrid-feed-600s"),
    ],
)
async def test_look_up_beyond_30_seconds_asks_again_later_without_sleeping(
    tenants: TenantDirectory,
    time: FakeTime,
    sim: Simulator,
    sim_http: httpx.AsyncClient,
    provider: str,
    settings: Settings,
    ago: float,
    wait: float,
) -> None:
    cmd = command(provider, sms() if provider == "twilio" else email())
    setup = Setup(tenants, time, settings)
    answer = await setup.executor(provider, sim_http).look_up(cmd, time.ms_ago(ago))
    assert isinstance(answer, RetryLater)
    assert answer.retry_after == pytest.approx(wait)
    assert time.waits == []
    assert sim.requests(provider) == []


@pytest.mark.anyio
async def test_sendgrid_look_up_uses_the_settle_time_from_the_settings(
    tenants: TenantDirectory, time: FakeTime, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    setup = Setup(tenants, time, Settings(lookup_settle_seconds={"sendgrid": 25.0}))
    cmd = command("sendgrid", email(), key="mail-7")
    since = time.ms_ago(0)
    sent = await setup.executor("sendgrid", sim_http).attempt(cmd)
    answer = await setup.executor("sendgrid", sim_http).look_up(cmd, since)
    # max(25 s settle, 20 s in flight) since the attempt; 600 s would be RetryLater.
    assert time.waits == [25.0]
    assert isinstance(answer, Found)
    assert answer.details["message_id"] == sent.provider_ref
    [query] = sim.requests("sendgrid", method="GET")
    params = parse_qs(urlsplit(f"?{query.query}").query)
    assert params["query"] == ["unique_args['idempotency_key']=\"mail-7\""]


@pytest.mark.anyio
async def test_look_up_refused_by_the_provider_is_retry_later(
    time: FakeTime, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    # The hub's credentials are not the ones the provider knows: 401 on the query.
    hub_tenants = parse_tenants(tomllib.loads(demo_tenant_config(TENANT)))
    setup = Setup(hub_tenants, time)
    answer = await setup.executor("twilio", sim_http).look_up(
        command("twilio", sms()), time.ms_ago(60)
    )
    assert isinstance(answer, RetryLater)
    assert answer.http_status == 401
    assert lookup_refused(answer)
    assert [r.response_status for r in sim.requests("twilio")] == [401]


@pytest.mark.anyio
async def test_look_up_that_cannot_connect_is_retry_later(setup: Setup, sim: Simulator) -> None:
    transport = LoseAnswers(sim.transport(), httpx.ConnectError, method="GET", reached=False)
    async with httpx.AsyncClient(transport=transport) as http:
        answer = await setup.executor("twilio", http).look_up(
            command("twilio", sms()), setup.time.ms_ago(60)
        )
    assert isinstance(answer, RetryLater)
    assert answer.reason.startswith("lookup failed: ConnectError")
    assert not lookup_refused(answer)


@pytest.mark.anyio
@pytest.mark.parametrize("tenant_id", ["nobody", BARE])
async def test_look_up_without_tenant_or_account_is_not_found_without_asking(
    setup: Setup, sim: Simulator, sim_http: httpx.AsyncClient, tenant_id: str
) -> None:
    cmd = command("twilio", sms(), tenant_id=tenant_id)
    answer = await setup.executor("twilio", sim_http).look_up(cmd, setup.time.ms_ago(60))
    assert answer == NotFound()
    assert sim.requests("twilio") == []


@pytest.mark.anyio
async def test_which_providers_can_be_asked(setup: Setup, sim_http: httpx.AsyncClient) -> None:
    assert setup.executor("twilio", sim_http).can_look_up
    assert setup.executor("sendgrid", sim_http).can_look_up
    assert not setup.executor("razorpay", sim_http).can_look_up


# --- with the ledger ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_delivered_key_is_answered_from_the_ledger_not_sent_again(
    setup: Setup, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    first_cmd = command("twilio", sms(), key="k-1", context={"try": "1"})
    first = await setup.executor("twilio", sim_http).attempt(first_cmd)
    [write] = outcome(first_cmd, first, 0, 10, now_ms=setup.time.ms_ago(0), mark=None)
    entry = LedgerEntry.model_validate(write.value)
    again_cmd = command("twilio", sms(), key="k-1", context={"try": "2"})
    decision = decide(entry, None, again_cmd, 0, 11, can_look_up=True)
    assert isinstance(decision, AnswerDuplicate)
    again = duplicate_of(again_cmd, decision.earlier)
    assert again.duplicate is True
    assert again.attempts == 0
    assert again.provider_ref == first.provider_ref
    assert again.context == {"try": "2"}
    assert_answers(again, again_cmd)
    assert again.header.event_id != first.header.event_id
    assert len(sim.requests("twilio")) == 1


@pytest.mark.anyio
async def test_razorpay_intent_is_sent_in_doubt_and_deduplicated_by_the_receipt(
    setup: Setup, sim: Simulator, sim_http: httpx.AsyncClient
) -> None:
    cmd = command("razorpay", order(receipt="inv-3-r1"))
    ex = setup.executor("razorpay", sim_http)
    left = LedgerEntry.model_validate(intent(cmd, 0, 10, setup.time.ms_ago(0)).value)
    first = await ex.attempt(cmd)  # ... and the worker died before recording it
    decision = decide(left, None, cmd, 0, 10, can_look_up=ex.can_look_up)
    assert decision == Send(in_doubt=True)
    again = await ex.attempt(cmd)
    assert again.provider_ref == first.provider_ref
    assert len(sim.state.orders) == 1


# --- product bug: a failure in doubt forgets the doubt ------------------------------------
#
# An attempt that ends FAILED while still in doubt (its first try reached the provider and
# the answer was lost, and the provider could not tell yet) is written to the ledger as a
# plain FAILED entry, replacing the intent. When the retry tier brings the command back,
# decide() sees "failed by another record" and answers Send(): the provider is not asked,
# and the mail goes out a second time.
@pytest.mark.anyio
async def test_an_in_doubt_failure_is_looked_up_when_its_retry_tier_brings_it_back(
    setup: Setup, sim: Simulator
) -> None:
    cmd = command("sendgrid", email(), key="mail-doubt")
    async with httpx.AsyncClient(transport=LoseAnswers(sim.transport())) as http:
        ex = setup.executor("sendgrid", http)
        began = setup.time.ms_ago(0)
        # The worker: intent (offset 10), then the attempt, whose first try reached SendGrid.
        assert decide(None, None, cmd, 0, 10, can_look_up=ex.can_look_up) == Send()
        left = intent(cmd, 0, 10, began)
        failed = await ex.attempt(cmd)
        assert (failed.status, failed.retryable) == (ResultStatus.FAILED, True)
        [write] = outcome(cmd, failed, 0, 10, now_ms=setup.time.ms_ago(0), mark=None)
        assert write.key == left.key  # the outcome replaces the intent
        # An hour later (SendGrid's feed long settled) the tier's copy arrives at offset 57,
        # and the worker does what the ledger decides.
        setup.time.now += 3600
        entry = LedgerEntry.model_validate(write.value)
        decision = decide(entry, None, cmd, 0, 57, can_look_up=ex.can_look_up)
        if isinstance(decision, LookUp):
            answer = await ex.look_up(cmd, decision.since_ms)
            if isinstance(answer, NotFound):
                await ex.attempt(cmd)
        elif isinstance(decision, Send):
            await ex.attempt(cmd)
    assert (type(decision).__name__, len(sim.mails())) == ("LookUp", 1)
    assert isinstance(decision, LookUp)
    assert decision.since_ms <= began


def test_a_crashed_attempt_the_provider_could_not_confirm_stays_in_doubt() -> None:
    # The worker died mid-call; its successor looks up, SendGrid cannot tell yet (600 s),
    # and the worker records in_doubt_failure, which the retry tier brings back.
    began = 1_750_000_000_000
    cmd = command("sendgrid", email(), key="mail-crash")
    left = LedgerEntry.model_validate(intent(cmd, 0, 10, began).value)
    assert decide(left, None, cmd, 0, 10, can_look_up=True) == LookUp(since_ms=began)
    result = in_doubt_failure(cmd, "in doubt: sendgrid can tell only 600s after it", began)
    [write] = outcome(cmd, result, 0, 10, now_ms=began + 1_000, mark=None)
    entry = LedgerEntry.model_validate(write.value)
    again = decide(entry, None, cmd, 0, 57, can_look_up=True)
    assert isinstance(again, LookUp), again
    assert again.since_ms <= began
