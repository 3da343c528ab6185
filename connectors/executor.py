"""Carry out one connector command against its provider: request, retries, lookups. No Kafka.

Whether a command is sent at all is the ledger's decision (connectors.ledger);
this module makes the call the decision asks for:

- `attempt`: send, with the in-process retries (1-2-4-8 s). When a try ends
  in doubt (a read timeout, a connection dropped after the request left) and
  the provider can be asked, the next try first asks whether the last one
  happened, and only sends if it did not.
- `look_up`: ask the provider whether an earlier attempt (a crashed worker's)
  happened, waiting first until its answer is conclusive (SendGrid's
  activity feed lags behind its sends).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from connectors.call_audit import CallAuditor, Try, audit_outcome
from connectors.ledger import IN_DOUBT_SINCE
from connectors.retry import Attempted, RetryPolicy, Sleep, with_retries
from core.audit import AuditSink, outcome_of_status
from core.guarded_http import DESTINATION_REFUSED, DestinationRefusedError
from core.masking import mask_text
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from core.topics import connector_stage
from providers.base import (
    AuthError,
    Delivered,
    MissingCredentialsError,
    Outcome,
    ProviderAdapter,
    Rejected,
    RetryLater,
)
from providers.lookup import Found, NextPage, NotFound, supports_lookup
from providers.payments import UnsupportedOperationError
from schemas.events import AuditOutcome, ConnectorCommand, ConnectorResult, ResultStatus

log = structlog.get_logger("connectors")

MAX_LOOKUP_PAGES = 20
# Longer waits for a provider's records to settle are not spent holding a key's
# commands in process: the command goes to a retry tier and asks again then.
MAX_SETTLE_WAIT = 30.0
# Before the request left: sending again cannot make it happen twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

Checked = Found | NotFound | RetryLater


def _base(command: ConnectorCommand, attempts: int) -> dict[str, Any]:
    return {
        "header": command.header.caused(
            ConnectorResult.EVENT_TYPE, source=connector_stage(command.provider)
        ),
        "command_id": command.command_id,
        "idempotency_key": command.idempotency_key,
        "provider": command.provider,
        "operation": command.operation,
        "attempts": attempts,
        "context": command.context,
        "ordering_key": command.ordering_key,
    }


def _masked(text: str | None) -> str | None:
    return None if text is None else mask_text(text)


def _masked_details(details: Mapping[str, str]) -> dict[str, str]:
    # By value only: a key naming a secret here (Paytm's txn_token) is what the payer's
    # checkout needs, not a credential of the tenant's.
    return {key: mask_text(value) for key, value in details.items()}


def result_for(
    command: ConnectorCommand,
    attempted: Attempted,
    latency_ms: float,
    in_doubt_since_ms: float | None = None,
) -> ConnectorResult:
    """`in_doubt_since_ms`: a try that may have reached the provider was never confirmed
    either way; a failure keeps it (the ledger then looks it up before a resend).

    What the provider said is masked (core.masking): a provider may quote the request,
    credentials included, in its error, and a result goes on into the ledger, retry
    headers and dead letters, which no log processor masks."""
    outcome = attempted.outcome
    base = _base(command, attempted.attempts)
    if isinstance(outcome, Delivered):
        return ConnectorResult(
            **base,
            status=ResultStatus.DELIVERED,
            provider_ref=_masked(outcome.provider_ref),
            http_status=outcome.http_status,
            details={**_masked_details(outcome.details), "latency_ms": f"{latency_ms:.1f}"},
        )
    doubt = {IN_DOUBT_SINCE: str(int(in_doubt_since_ms))} if in_doubt_since_ms else {}
    return ConnectorResult(
        **base,
        status=ResultStatus.FAILED,
        retryable=isinstance(outcome, RetryLater),
        http_status=outcome.http_status,
        error_code=_masked(outcome.error_code),
        error_message=_masked(outcome.reason),
        details=doubt,
    )


def duplicate_of(command: ConnectorCommand, earlier: ConnectorResult) -> ConnectorResult:
    return earlier.model_copy(
        update={
            "header": command.header.caused(
                ConnectorResult.EVENT_TYPE, source=connector_stage(command.provider)
            ),
            "command_id": command.command_id,
            "attempts": 0,
            "duplicate": True,
            "context": command.context,
            "ordering_key": command.ordering_key,
        }
    )


def superseded(command: ConnectorCommand, newer_version: int) -> ConnectorResult:
    return ConnectorResult(
        **_base(command, 0),
        status=ResultStatus.SUPERSEDED,
        error_message=(
            f"not sent: version {newer_version} of {command.ordering_key} was delivered "
            f"before this version {command.ordering_version}"
        ),
    )


def found(command: ConnectorCommand, trace: Found) -> ConnectorResult:
    """An in-doubt attempt the provider confirms it carried out."""
    return ConnectorResult(
        **_base(command, 0),
        status=ResultStatus.DELIVERED,
        provider_ref=_masked(trace.provider_ref),
        details={**_masked_details(trace.details), "found_by": "lookup"},
    )


def in_doubt_failure(command: ConnectorCommand, reason: str, since_ms: int) -> ConnectorResult:
    """An attempt in doubt the provider could not confirm either way: retried later,
    still in doubt (its ledger entry keeps when the doubt began)."""
    return ConnectorResult(
        header=command.header.caused(
            ConnectorResult.EVENT_TYPE, source=connector_stage(command.provider)
        ),
        command_id=command.command_id,
        idempotency_key=command.idempotency_key,
        provider=command.provider,
        operation=command.operation,
        status=ResultStatus.FAILED,
        retryable=True,
        error_message=_masked(reason),
        attempts=0,
        details={IN_DOUBT_SINCE: str(since_ms)},
        context=command.context,
        ordering_key=command.ordering_key,
    )


CIRCUIT_OPEN = "circuit_open"


def circuit_open(command: ConnectorCommand, reason: str) -> ConnectorResult:
    """Not sent: the account's circuit breaker is open (core.breaker). Retryable: the
    messenger sends it through the backup, or a retry tier brings it back later."""
    return ConnectorResult(
        **_base(command, 0),
        status=ResultStatus.FAILED,
        retryable=True,
        error_code=CIRCUIT_OPEN,
        error_message=reason,
    )


def _utc(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class CommandExecutor:
    def __init__(
        self,
        adapter: ProviderAdapter[Any],
        *,
        settings: Settings,
        base_url: str,
        tenants: TenantDirectory,
        http: httpx.AsyncClient,
        policy: RetryPolicy,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        audit: AuditSink | None = None,
    ) -> None:
        self.adapter = adapter
        self.settings = settings
        self.base_url = base_url
        self.tenants = tenants
        self.http = http
        self.policy = policy
        self.sleep = sleep
        self.clock = clock
        # Every exchange with the provider, each try and lookup (and an auth flow's own).
        self.auditor = CallAuditor(audit, settings, clock)
        self.auditor.watch(http)

    @property
    def can_look_up(self) -> bool:
        return supports_lookup(self.adapter)

    async def attempt(self, command: ConnectorCommand) -> ConnectorResult:
        started = time.perf_counter()
        attempted, doubt_since = await self._attempt(command)
        latency = (time.perf_counter() - started) * 1000
        result = result_for(command, attempted, latency, doubt_since)
        self._log(result)
        return result

    async def _attempt(self, command: ConnectorCommand) -> tuple[Attempted, float | None]:
        """The outcome, and since when a try is in doubt (None: none is)."""
        tenant = self.tenants.get(command.header.tenant)
        if tenant is None:
            return Attempted(Rejected(f"unknown tenant {command.header.tenant!r}"), 0), None
        if not isinstance(command.payload, self.adapter.payload_type):
            rejected = Rejected(f"{self.adapter.name} cannot do {command.operation}")
            return Attempted(rejected, 0), None
        try:
            request = self.adapter.build_request(command, command.payload, tenant, self.base_url)
            auth = self.adapter.auth(tenant, self.settings, command.account)
        except (MissingCredentialsError, UnsupportedOperationError) as exc:
            return Attempted(Rejected(str(exc)), 0), None
        doubt_since: float | None = None
        tries = 0

        async def one_try() -> Outcome:
            nonlocal doubt_since, tries
            tries += 1
            if doubt_since is not None and self.can_look_up:
                # The timed-out request may still be queued at the provider: its absence
                # counts only a whole HTTP timeout after it was sent (as for a crash).
                in_flight = self.settings.http_connect_timeout + self.settings.http_read_timeout
                checked = await self._check(command, tenant, doubt_since, in_flight, attempt=tries)
                if isinstance(checked, Found):
                    return Delivered(checked.provider_ref, 200, {"found_by": "lookup"})
                if isinstance(checked, RetryLater):
                    return checked  # cannot tell: sending now could send twice
            sent_at = self.clock() * 1000
            outcome = await self._send(request, auth, Try(command, tenant, tries))
            if isinstance(outcome, RetryLater) and outcome.in_doubt:
                doubt_since = doubt_since or sent_at
            return outcome

        attempted = await with_retries(one_try, self._policy_for(command), self.sleep)
        resolved = isinstance(attempted.outcome, Delivered)
        return attempted, None if resolved else doubt_since

    def _policy_for(self, command: ConnectorCommand) -> RetryPolicy:
        if command.context.get("failover") != "next":
            return self.policy
        # Another gateway can take this order (processors.fees): fewer tries here.
        attempts = max(1, min(self.policy.attempts, self.settings.failover_attempts))
        return dataclasses.replace(self.policy, attempts=attempts)

    async def _send(self, request: httpx.Request, auth: httpx.Auth | None, of: Try) -> Outcome:
        of = self.auditor.begin(of)
        response: httpx.Response | None = None
        outcome: Outcome
        in_flight = self.auditor.sending(of, request)
        try:
            response = await self.http.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except AuthError as exc:
            # The provider's token endpoint refused the credentials: no retry fixes that.
            outcome = Rejected(f"authentication failed: {exc}")
        except DestinationRefusedError as exc:
            # The tenant's account names an address the hub may not call (SSRF guard):
            # permanent until the account changes; nothing was connected to.
            outcome = Rejected(f"destination refused: {exc}", None, DESTINATION_REFUSED)
        except _NOT_SENT as exc:
            outcome = RetryLater(f"network error: {type(exc).__name__}: {exc}".rstrip(": "))
        except httpx.TransportError as exc:
            outcome = RetryLater(
                f"network error after sending: {type(exc).__name__}: {exc}".rstrip(": "),
                in_doubt=True,
            )
        else:
            outcome = self.adapter.classify(response)
            if isinstance(outcome, RetryLater):
                log.info(
                    "provider.retryable",
                    status=outcome.http_status,
                    reason=outcome.reason,
                    retry_after=outcome.retry_after,
                )
        finally:
            self.auditor.sent(in_flight)
        error = None if isinstance(outcome, Delivered) else outcome.reason
        self.auditor.record(
            of, request, response, audit_outcome(outcome, response is not None), error
        )
        return outcome

    async def look_up(self, command: ConnectorCommand, since_ms: int) -> Checked:
        """Did an earlier worker's attempt, begun at `since_ms`, happen? For adapters that
        can tell. That worker's request may still have been on its way when it died
        (or lost the partition): the answer counts only once a whole HTTP timeout
        has passed since the attempt began."""
        tenant = self.tenants.get(command.header.tenant)
        if tenant is None:
            return NotFound()  # nothing could have been sent for an unknown tenant
        in_flight = self.settings.http_connect_timeout + self.settings.http_read_timeout
        return await self._check(command, tenant, since_ms, in_flight)

    async def _check(
        self,
        command: ConnectorCommand,
        tenant: Tenant,
        since_ms: float,
        in_flight: float = 0.0,
        attempt: int = 1,
    ) -> Checked:
        adapter = self.adapter
        assert supports_lookup(adapter)
        settle = max(
            in_flight,
            self.settings.lookup_settle_seconds.get(
                self.adapter.name, adapter.lookup_settle_seconds
            ),
        )
        wait = since_ms / 1000 + settle - self.clock()
        if wait > MAX_SETTLE_WAIT:
            return RetryLater(
                f"in doubt: {self.adapter.name} can tell whether the last attempt happened "
                f"only {settle:g}s after it; asking again later",
                retry_after=wait,
            )
        if wait > 0:
            await self.sleep(wait)
        since = _utc(since_ms)
        try:
            request = adapter.lookup_request(command, command.payload, tenant, self.base_url, since)
        except MissingCredentialsError:
            return NotFound()  # no account: nothing can have been sent with it
        for _page in range(MAX_LOOKUP_PAGES):
            of = self.auditor.begin(Try(command, tenant, attempt))
            try:
                response = await self.http.send(request)
            except httpx.TransportError as exc:
                failed = f"lookup failed: {type(exc).__name__}: {exc}".rstrip(": ")
                self.auditor.record(of, request, None, AuditOutcome.ERROR, failed, lookup=True)
                return RetryLater(failed)
            status = outcome_of_status(response.status_code)
            self.auditor.record(of, request, response, status, None, lookup=True)
            answer = adapter.read_lookup(command, command.payload, tenant, response, since)
            if not isinstance(answer, NextPage):
                log.info("command.looked_up", answer=type(answer).__name__, since_ms=since_ms)
                return answer
            request = answer.request
        return RetryLater(f"lookup found no answer in {MAX_LOOKUP_PAGES} pages")

    def _log(self, result: ConnectorResult) -> None:
        fields: Mapping[str, Any] = {
            "status": result.status,
            "attempts": result.attempts,
            "provider_ref": result.provider_ref,
            "http_status": result.http_status,
            "error": result.error_message,
            "retryable": result.retryable,
        }
        if result.status is ResultStatus.DELIVERED:
            log.info("command.delivered", **fields)
        else:
            log.warning("command.failed", **fields)
