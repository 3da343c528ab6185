"""Shared helpers for the connector unit tests: tenants, commands, fake providers, fake sleep."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from hub.tenants import Tenant, TenantDirectory, demo_tenant_config, parse_tenants
from schemas.events import (
    CommandPayload,
    ConnectorCommand,
    CreatePaymentOrder,
    EventHeader,
    SendEmail,
    SendSms,
)

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
) -> ConnectorCommand:
    return ConnectorCommand(
        header=EventHeader.new(
            ConnectorCommand.EVENT_TYPE, tenant_id, source="test", correlation_id="corr-1"
        ),
        idempotency_key=key,
        provider=provider,
        payload=payload,
        context=context if context is not None else {"invoice_id": "inv-1"},
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
