"""What every provider route shares: recording, faults, body parsing and auth helpers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from core.tenants import Tenant, TenantDirectory
from simulators.state import Fault, HeldResponse, RecordedRequest, SimState, lowercase_headers

if TYPE_CHECKING:
    from simulators.payments import CallbackSender, GatewaySim
    from simulators.razorpay_webhooks import WebhookSender
    from simulators.receipts import Receipts

M = TypeVar("M", bound=BaseModel)

# Bodies above this size are recorded as a placeholder, not parsed.
RECORD_BODY_LIMIT = 1024 * 1024
# Bodies above this size are not parsed at all (SendGrid's limit is 30 MB).
PARSE_BODY_LIMIT = 30 * 1024 * 1024
# A "timeout" fault without its own delay sleeps this long before answering 504.
DEFAULT_TIMEOUT_DELAY = 30.0
# A "hold" fault without its own delay sends its held answer after this long.
DEFAULT_HOLD_DELAY = 30.0
# How often a held answer looks for its release or its client's disconnect.
HOLD_POLL_SECONDS = 0.02

FORM_TYPE = "application/x-www-form-urlencoded"
# Headers that carry credentials: recorded as "***".
MASKED_HEADERS = ("authorization", "authkey", "apikey", "x-client-secret")


@dataclass
class SimContext:
    state: SimState
    tenants: TenantDirectory
    webhooks: WebhookSender
    # Payment gateways' simulators by provider name, and where their callbacks go.
    callbacks: CallbackSender
    gateways: dict[str, GatewaySim] = field(default_factory=dict)
    # Messaging simulators' delivery receipts (simulators.receipts); set by the app.
    receipts: Receipts = field(default=None)  # type: ignore[assignment]  # the app sets it

    def webhook_url(self, provider: str, tenant: str) -> str:
        """Where `provider` sends `tenant`'s webhooks by default (its dashboard setting)."""
        return self.callbacks.default_url(provider, tenant)

    def all_tenants(self) -> list[Tenant]:
        return [t for t in (self.tenants.get(i) for i in self.tenants.ids()) if t is not None]

    def accounts(self, provider: str, model: type[M]) -> Iterator[tuple[Tenant, M]]:
        """Every enabled account of `provider`, with its tenant."""
        for tenant in self.all_tenants():
            for account in tenant.accounts_for(provider):
                if isinstance(account.config, model):
                    yield tenant, account.config


@dataclass(frozen=True)
class Call:
    """One provider request after recording: the raw bytes, the parsed body, the tenant."""

    request: Request
    raw: bytes
    body: Any
    tenant: Tenant | None


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    # Tenant whose credentials the request carries (None when missing or wrong).
    authenticate: Callable[[SimContext, Headers], Tenant | None]
    # The provider's own error response for an HTTP status (used by faults).
    error_for_status: Callable[[int], Response]
    # Tenant whose credentials the parsed body carries (e.g. a signed JWT); when set,
    # it is asked after `authenticate` found no tenant in the headers.
    authenticate_body: Callable[[SimContext, Any], Tenant | None] | None = None
    # What to record instead of the parsed body (e.g. with a credential cut out).
    redact_body: Callable[[Any], Any] | None = None


Handler = Callable[[Call], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON, a form dict, or text; None for an empty body."""
    if not raw:
        return None
    if len(raw) > PARSE_BODY_LIMIT:
        return None
    text = raw.decode("utf-8", errors="replace")
    if content_type.split(";", maxsplit=1)[0].strip().lower() == FORM_TYPE:
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        return json.loads(text)
    except ValueError:
        return text


def json_payload(raw: bytes) -> Any:
    """The JSON value of a body (None when empty); ValueError when it is not JSON."""
    if not raw.strip():
        return None
    return json.loads(raw.decode("utf-8"))


def app_root(request: Request) -> str:
    """The path prefix the whole simulator app is served under ("" normally)."""
    return str(request.scope.get("app_root_path", request.scope.get("root_path", "")))


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def bearer_token(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def retry_after_value(seconds: float) -> str:
    """Whole seconds as an integer (RFC 9110); fractions kept for fast local tests."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


async def _answer_fault(fault: Fault, spec: ProviderSpec, call: Call, handler: Handler) -> Response:
    if fault.mode == "slow":
        await asyncio.sleep(fault.delay_seconds)
        return handler(call)
    if fault.mode == "timeout":
        delay = fault.delay_seconds if fault.delay_seconds > 0 else DEFAULT_TIMEOUT_DELAY
        await asyncio.sleep(delay)
        response = spec.error_for_status(504)
    else:
        response = spec.error_for_status(fault.status)
    if fault.retry_after is not None and math.isfinite(fault.retry_after):
        response.headers["Retry-After"] = retry_after_value(fault.retry_after)
    return response


async def _await_release(held: HeldResponse, request: Request) -> bool:
    """Wait for a release or the hold's deadline (True), or the client leaving (False)."""
    while not held.released.is_set() and time.time() < held.release_at:
        if await request.is_disconnected():
            return False
        await asyncio.sleep(HOLD_POLL_SECONDS)
    return True


async def _hold(
    state: SimState, fault: Fault, entry: RecordedRequest, call: Call, handler: Handler
) -> Response:
    """The provider acts now (message created, mail accepted); its answer waits.

    A client that disconnects meanwhile changes nothing: the effect stays, which
    is exactly the "provider acted, caller never heard" window tests want.
    """
    response = handler(call)
    delay = fault.delay_seconds if fault.delay_seconds > 0 else DEFAULT_HOLD_DELAY
    held = state.held.hold(entry, response.status_code, delay)
    try:
        if not await _await_release(held, call.request):
            entry.disconnected_at = time.time()
    finally:
        state.held.release(entry.id)  # no longer held, however it ended
    return response


def _record(ctx: SimContext, spec: ProviderSpec, call: Call) -> RecordedRequest:
    raw, request = call.raw, call.request
    recorded_body = call.body if len(raw) <= RECORD_BODY_LIMIT else f"<{len(raw)} bytes>"
    if spec.redact_body is not None:
        recorded_body = spec.redact_body(recorded_body)
    return ctx.state.recorder.record(
        provider=spec.name,
        method=request.method,
        path=request.url.path,
        headers=lowercase_headers(request.headers.items(), masked=MASKED_HEADERS),
        body=recorded_body,
        tenant=call.tenant.id if call.tenant else None,
        query=request.url.query,
    )


def provider_endpoint(
    ctx: SimContext, spec: ProviderSpec, handler: Handler, *, faultable: bool = True
) -> Endpoint:
    """Wrap a provider handler: record the request, apply a queued fault, record the answer."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        body = parse_body(raw, request.headers.get("content-type", ""))
        tenant = spec.authenticate(ctx, request.headers)
        if tenant is None and spec.authenticate_body is not None:
            tenant = spec.authenticate_body(ctx, body)
        call = Call(request=request, raw=raw, body=body, tenant=tenant)
        entry = _record(ctx, spec, call)
        fault = (
            ctx.state.faults.take(spec.name, body, request.method, tenant.id if tenant else None)
            if faultable
            else None
        )
        try:
            if fault is None:
                response = handler(call)
            elif fault.mode == "hold":
                response = await _hold(ctx.state, fault, entry, call, handler)
            else:
                response = await _answer_fault(fault, spec, call, handler)
        except Exception:
            entry.response_status = 500
            raise
        entry.response_status = response.status_code
        if entry.disconnected_at is None:
            entry.answered_at = time.time()
        return response

    return endpoint
