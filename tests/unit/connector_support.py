"""Shared helpers for the connector unit tests: tenants, commands, fake providers, fake time,
the provider simulators in process."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from starlette.applications import Starlette
from tenant_accounts import primary

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.tenants import Tenant, TenantDirectory
from providers.twilio import TwilioAccount
from schemas.events import (
    CommandPayload,
    ConnectorCommand,
    ConnectorResult,
    CreatePaymentOrder,
    EventHeader,
    SendEmail,
    SendSms,
)
from simulators import create_app
from simulators.state import Fault, RecordedRequest, SimState, StoredMail

TENANT = "t1"
BARE = "bare"  # a tenant with no provider accounts at all
PHONE = "+919876543210"


def make_tenants() -> TenantDirectory:
    raw = tomllib.loads(demo_tenant_config(TENANT, "School One"))
    raw["tenants"][BARE] = {"name": "No Accounts School"}
    return parse_tenants(raw)


def tenant(directory: TenantDirectory, tenant_id: str = TENANT) -> Tenant:
    found = directory.get(tenant_id)
    assert found is not None
    return found


def command(
    provider: str,
    payload: CommandPayload,
    *,
    tenant_id: str = TENANT,
    key: str = "key-1",
    context: dict[str, str] | None = None,
    ordering_key: str | None = None,
    ordering_version: int | None = None,
    account: str | None = None,
) -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(
            ConnectorCommand.EVENT_TYPE, tenant_id, source="test", correlation_id="corr-1"
        ),
        idempotency_key=key,
        provider=provider,
        account=account,
        payload=payload,
        context=context if context is not None else {"invoice_id": "inv-1"},
        ordering_key=ordering_key,
        ordering_version=ordering_version,
    )


def sms(to: str = PHONE, text: str = "Fee of Rs 1,500 received. Thank you.") -> SendSms:
    return SendSms(to=to, text=text)


def email(
    *,
    to: str = "parent@example.com",
    to_name: str | None = "Mrs. Sharma",
    html: str | None = "<p>Thank you</p>",
) -> SendEmail:
    return SendEmail(to=to, to_name=to_name, subject="Fee receipt", text="Thank you", html=html)


def order(notes: dict[str, str] | None = None, receipt: str = "rcpt-1") -> CreatePaymentOrder:
    return CreatePaymentOrder(
        amount_minor=150_000,
        currency="INR",
        receipt=receipt,
        notes=notes if notes is not None else {"invoice_id": "inv-1"},
    )


def twilio_message(sid: str = "SM0123456789abcdef0123456789abcdef") -> dict[str, Any]:
    return {"sid": sid, "status": "queued", "num_segments": "1", "to": PHONE}


def razorpay_order(order_id: str = "order_Abc123XYZ45678") -> dict[str, Any]:
    return {
        "id": order_id,
        "entity": "order",
        "amount": 150_000,
        "currency": "INR",
        "receipt": "rcpt-1",
        "status": "created",
    }


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("boom", request=request)


class SleepRecorder:
    """An injected `sleep` that returns at once and remembers every wait it was asked for."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class ScriptedProvider:
    """A provider behind `httpx.MockTransport`: answers from a script, the last step repeats.

    A step is a response, an exception to raise (e.g. a connect error) or a callable.
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        assert steps
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            # A fresh copy each time: one Response object cannot answer two requests.
            return httpx.Response(step.status_code, headers=step.headers, content=step.content)
        return step(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


class FakeTime:
    """A clock and a `sleep` for the executor: sleeping records the wait and moves the clock
    on by it, returning at once."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def ms_ago(self, seconds: float) -> int:
        """Epoch milliseconds `seconds` before now (an attempt's start, as the ledger keeps it)."""
        return round((self.now - seconds) * 1000)


WEBHOOKS = "http://ingress.test/webhooks/razorpay/{tenant}"


class Simulator:
    """The provider simulators behind `httpx.ASGITransport`, optionally on a fake clock."""

    def __init__(self, tenants: TenantDirectory, clock: Callable[[], float] | None = None) -> None:
        self.tenants = tenants
        self.state = SimState()
        if clock is not None:
            self.state.clock = clock
        self.app: Starlette = create_app(
            tenants,
            webhook_url_template=WEBHOOKS,
            webhook_transport=httpx.MockTransport(lambda _r: httpx.Response(200)),
            state=self.state,
        )

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    def requests(self, provider: str, method: str | None = None) -> list[RecordedRequest]:
        return self.state.recorder.list(provider, method=method)

    def fail(self, provider: str, status: int, times: int, **extra: Any) -> None:
        self.state.faults.add(Fault(provider=provider, status=status, times=times, **extra))

    def sms(self, tenant_id: str = TENANT) -> list[dict[str, Any]]:
        """The Twilio messages the tenant's account holds, oldest first."""
        account = primary(tenant(self.tenants, tenant_id), TwilioAccount)
        return [m.resource for m in self.state.sms.get(account.account_sid, [])]

    def mails(self, tenant_id: str = TENANT) -> list[StoredMail]:
        return list(self.state.mails.get(tenant_id, []))


class LoseAnswers(httpx.AsyncBaseTransport):
    """Forwards to `inner`, except that the first `times` requests with method `method` end
    in `error`: after the provider got them (`reached`: it acted, its answer was lost on
    the way back, as with a read timeout) or before (the provider never saw them)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        error: type[httpx.TransportError] = httpx.ReadTimeout,
        *,
        method: str = "POST",
        times: int = 1,
        reached: bool = True,
    ) -> None:
        self.inner = inner
        self.error = error
        self.method = method
        self.left = times
        self.reached = reached

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == self.method and self.left > 0:
            self.left -= 1
            if self.reached:
                response = await self.inner.handle_async_request(request)
                await response.aread()
                await response.aclose()
            raise self.error(f"lost: {request.method} {request.url.path}", request=request)
        return await self.inner.handle_async_request(request)


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
