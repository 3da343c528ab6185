"""Each exchange a connector makes with its provider, to the audit trail.

The executor says which command's which try an exchange belongs to (`Try`);
this records it, masked, and never lets a failure to record fail the call.
The exchanges an auth flow makes on the way (an OAuth token request) are
seen through an httpx response hook and recorded under the try they served.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx
import structlog

from core.audit import AuditSink, exchange_from_httpx, outbound_record, outcome_of_status
from core.settings import Settings
from core.tenants import Tenant
from core.topics import connector_stage
from providers.base import Delivered, Outcome, Rejected
from schemas.events import AuditOutcome, ConnectorCommand

log = structlog.get_logger("connectors")

# What the audit trail calls an auth flow's token exchange.
TOKEN_OPERATION = "oauth.token"  # noqa: S105 - an operation's name


@dataclass(frozen=True)
class Try:
    """Which command's which try an exchange belongs to: what its audit record names."""

    command: ConnectorCommand
    tenant: Tenant
    attempt: int
    # When the exchange began: perf_counter() for its duration, the clock for its time.
    started: float = 0.0
    at: float = 0.0


InFlight = tuple[Try, httpx.Request]
# Where a request's start (perf counter, clock) is kept for the response hook.
_STARTED = "hub.audit.started"
# The try being sent in this task, and its API request (recorded by the executor itself).
_IN_FLIGHT: ContextVar[InFlight | None] = ContextVar("in_flight", default=None)


def account_label(of: Try) -> str | None:
    """The account the call used: the command's, or the provider's primary (None: none)."""
    primary = next(iter(of.tenant.accounts_for(of.command.provider)), None)
    return of.command.account or (primary.label if primary else None)


def audit_outcome(outcome: Outcome, answered: bool) -> AuditOutcome:
    if isinstance(outcome, Delivered):
        return AuditOutcome.DELIVERED
    if isinstance(outcome, Rejected):
        return AuditOutcome.REJECTED
    return AuditOutcome.RETRY if answered else AuditOutcome.ERROR


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class CallAuditor:
    def __init__(
        self, sink: AuditSink | None, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.sink = sink
        self.settings = settings
        self.clock = clock

    def watch(self, http: httpx.AsyncClient) -> None:
        if self.sink is not None:
            hooks = http.event_hooks
            http.event_hooks = {
                "request": [*hooks["request"], self.on_request],
                "response": [*hooks["response"], self.on_response],
            }

    async def on_request(self, request: httpx.Request) -> None:
        request.extensions[_STARTED] = (time.perf_counter(), self.clock())

    def begin(self, of: Try) -> Try:
        return replace(of, started=time.perf_counter(), at=self.clock())

    def sending(self, of: Try, request: httpx.Request) -> Token[InFlight | None]:
        return _IN_FLIGHT.set((of, request))

    def sent(self, token: Token[InFlight | None]) -> None:
        _IN_FLIGHT.reset(token)

    async def on_response(self, response: httpx.Response) -> None:
        current = _IN_FLIGHT.get()
        if current is None or response.request is current[1]:
            return  # not a try's, or the API call itself (the executor records that one)
        of, _api_request = current
        await response.aread()
        started, at = response.request.extensions.get(_STARTED, (time.perf_counter(), self.clock()))
        self.record(
            replace(of, started=started, at=at),
            response.request,
            response,
            outcome_of_status(response.status_code),
            None,
            operation=TOKEN_OPERATION,
        )

    def record(
        self,
        of: Try,
        request: httpx.Request,
        response: httpx.Response | None,
        outcome: AuditOutcome,
        error: str | None,
        *,
        lookup: bool = False,
        operation: str | None = None,
    ) -> None:
        """One exchange to the audit trail; a failure to record it never fails the call."""
        if self.sink is None:
            return
        command = of.command
        operation = operation or (f"{command.operation}.lookup" if lookup else command.operation)
        try:
            duration = (time.perf_counter() - of.started) * 1000
            entry = outbound_record(
                command.header,
                exchange_from_httpx(request, response, duration, _utc(of.at)),
                provider=command.provider,
                operation=operation,
                outcome=outcome,
                attempt=of.attempt,
                source=connector_stage(command.provider),
                body_limit=self.settings.audit_body_limit,
                account=account_label(of),
                idempotency_key=command.idempotency_key,
                error=error,
                secrets=of.tenant.secret_values(),
            )
            self.sink.record(entry)
        except Exception as exc:  # the audit trail is a record of the call, not a part of it
            log.warning("audit.not_recorded", error=f"{type(exc).__name__}: {exc}")
