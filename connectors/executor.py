"""Carry out one connector command: ledger check, request, retries, result. No Kafka.

Every command gets exactly one ConnectorResult: delivered, a duplicate of an
earlier delivery (not sent again), retryable failure (retries exhausted), or
permanent failure (rejected, unknown tenant, missing credentials).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
import structlog

from connectors.base import (
    AuthError,
    Delivered,
    MissingCredentialsError,
    Outcome,
    ProviderAdapter,
    Rejected,
    RetryLater,
)
from connectors.ledger import Ledger
from connectors.retry import Attempted, RetryPolicy, Sleep, with_retries
from hub.settings import Settings
from hub.tenants import TenantDirectory
from hub.topics import connector_stage
from schemas.events import ConnectorCommand, ConnectorResult, ResultStatus

log = structlog.get_logger("connectors")


def result_for(
    command: ConnectorCommand, attempted: Attempted, latency_ms: float
) -> ConnectorResult:
    outcome = attempted.outcome
    base: dict[str, Any] = {
        "header": command.header.caused(
            ConnectorResult.EVENT_TYPE, source=connector_stage(command.provider)
        ),
        "command_id": command.command_id,
        "idempotency_key": command.idempotency_key,
        "provider": command.provider,
        "operation": command.operation,
        "attempts": attempted.attempts,
        "context": command.context,
        "ordering_key": command.ordering_key,
    }
    if isinstance(outcome, Delivered):
        return ConnectorResult(
            **base,
            status=ResultStatus.DELIVERED,
            provider_ref=outcome.provider_ref,
            http_status=outcome.http_status,
            details={**outcome.details, "latency_ms": f"{latency_ms:.1f}"},
        )
    return ConnectorResult(
        **base,
        status=ResultStatus.FAILED,
        retryable=isinstance(outcome, RetryLater),
        http_status=outcome.http_status,
        error_code=outcome.error_code,
        error_message=outcome.reason,
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
        ledger: Ledger,
        sleep: Sleep,
    ) -> None:
        self.adapter = adapter
        self.settings = settings
        self.base_url = base_url
        self.tenants = tenants
        self.http = http
        self.policy = policy
        self.ledger = ledger
        self.sleep = sleep

    async def execute(self, command: ConnectorCommand) -> ConnectorResult:
        earlier = self.ledger.delivered(command.idempotency_key)
        if earlier is not None:
            log.info(
                "command.duplicate_skipped",
                idempotency_key=command.idempotency_key,
                provider_ref=earlier.provider_ref,
            )
            return duplicate_of(command, earlier)
        started = time.perf_counter()
        attempted = await self._attempt(command)
        result = result_for(command, attempted, (time.perf_counter() - started) * 1000)
        self.ledger.remember(result)
        self._log(result)
        return result

    async def _attempt(self, command: ConnectorCommand) -> Attempted:
        tenant = self.tenants.get(command.header.tenant)
        if tenant is None:
            return Attempted(Rejected(f"unknown tenant {command.header.tenant!r}"), 0)
        if not isinstance(command.payload, self.adapter.payload_type):
            return Attempted(Rejected(f"{self.adapter.name} cannot do {command.operation}"), 0)
        try:
            request = self.adapter.build_request(command, command.payload, tenant, self.base_url)
            auth = self.adapter.auth(tenant, self.settings)
        except MissingCredentialsError as exc:
            return Attempted(Rejected(str(exc)), 0)
        return await with_retries(lambda: self._send(request, auth), self.policy, self.sleep)

    async def _send(self, request: httpx.Request, auth: httpx.Auth | None) -> Outcome:
        try:
            response = await self.http.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except AuthError as exc:
            # The provider's token endpoint refused the credentials: no retry fixes that.
            return Rejected(f"authentication failed: {exc}")
        except httpx.TransportError as exc:
            return RetryLater(f"network error: {type(exc).__name__}: {exc}".rstrip(": "))
        outcome = self.adapter.classify(response)
        if isinstance(outcome, RetryLater):
            log.info(
                "provider.retryable",
                status=outcome.http_status,
                reason=outcome.reason,
                retry_after=outcome.retry_after,
            )
        return outcome

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
