"""An httpx client whose every exchange goes to the audit trail: for provider calls made
outside a connector (the admin API's test-connection), auth flows' token requests included.

Connectors record their calls themselves (connectors/call_audit.py), under the command
and try each serves; this is for a one-off call on behalf of an operator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import httpx
import structlog

from core.audit import AuditSink, exchange_from_httpx, outbound_record, outcome_of_status
from core.settings import Settings
from schemas.events import EventHeader

log = structlog.get_logger("audit")

_STARTED = "hub.audit.started"


def audited_client(
    sink: AuditSink,
    settings: Settings,
    cause: EventHeader,
    *,
    provider: str,
    account: str | None,
    operation_of: Callable[[httpx.Request], str],
    secrets: Iterable[str],
    timeout: httpx.Timeout | None = None,
    mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> httpx.AsyncClient:
    """A client recording each exchange as an outbound call caused by `cause` (its tenant
    and correlation id); `operation_of` names each request (the call, a token exchange)."""
    masked = list(secrets)

    async def on_request(request: httpx.Request) -> None:
        request.extensions[_STARTED] = (time.perf_counter(), time.time())

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        started, at = response.request.extensions.get(_STARTED, (time.perf_counter(), time.time()))
        try:
            sink.record(
                outbound_record(
                    cause,
                    exchange_from_httpx(
                        response.request,
                        response,
                        (time.perf_counter() - started) * 1000,
                        datetime.fromtimestamp(at, UTC),
                    ),
                    provider=provider,
                    operation=operation_of(response.request),
                    outcome=outcome_of_status(response.status_code),
                    attempt=1,
                    source=cause.source,
                    body_limit=settings.audit_body_limit,
                    account=account,
                    secrets=masked,
                )
            )
        except Exception as exc:  # a record of the call, never a part of it
            log.warning("audit.not_recorded", error=f"{type(exc).__name__}: {exc}")

    return httpx.AsyncClient(
        timeout=timeout or httpx.Timeout(settings.http_read_timeout),
        event_hooks={"request": [on_request], "response": [on_response]},
        mounts=dict(mounts or {}),  # smtp:// (providers.smtp_transport), which core cannot name
    )
