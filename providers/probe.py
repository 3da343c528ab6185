"""Test connection: one cheap read call to a provider, through its adapter.

An operator who has just entered an account's credentials wants to know, before
any real traffic, whether they work: `ok`, `auth_failed` (the provider or its
token endpoint refused them), `unreachable` (no answer, a timeout, a 5xx, a 429,
or a status the call should never get) or `unsupported` (the adapter offers no
probe). An adapter opts in with

    def probe_request(self, tenant, label, base_url) -> httpx.Request

a read that changes nothing at the provider (listing one order, fetching the
account, validating a push without sending it), sent with the adapter's own
`auth()` flow, so Google's token exchange is tested too. An adapter may also
declare `probe_ok_statuses`, statuses besides 2xx that prove the credentials work,
and `probe_answer(response) -> ProbeResult | None` to read a body first (Paytm
refuses credentials with HTTP 200).

The detail is for an operator's screen: the provider's own message, never the
response body as such (Twilio's account resource carries the auth token), and
masked of every secret of the account in any case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import httpx

import providers
from core.guarded_http import DestinationRefusedError
from core.masking import MASKER, mask_text, truncate
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant
from providers.base import AuthError, ProviderAdapter, RetryLater
from providers.smtp_transport import smtp_mounts
from providers.token_auth import TokenUnavailableError

ProbeStatus = Literal["ok", "auth_failed", "unreachable", "unsupported"]
ProbeBuilder = Callable[[Tenant, str | None, str], httpx.Request]

# The tenant id the probed account is wrapped in (it never leaves this process).
PROBE_TENANT = "probe"
AUTH_STATUSES = frozenset({401, 403})
DETAIL_LIMIT = 300


@dataclass(frozen=True)
class ProbeResult:
    status: ProbeStatus
    detail: str
    http_status: int | None = None


async def probe(
    account: ProviderAccount,
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    tenant_id: str = PROBE_TENANT,
) -> ProbeResult:
    """Call the account's provider once, cheaply, and say whether its credentials work."""
    try:
        adapter = providers.get(account.provider).adapter
    except providers.UnknownProviderError as exc:
        return ProbeResult("unsupported", str(exc))
    build = cast(ProbeBuilder | None, getattr(adapter, "probe_request", None))
    if build is None:
        return ProbeResult("unsupported", f"{account.provider} offers no test-connection call")
    # A disabled account is tested too: checking it before enabling it is the point.
    probed = account.model_copy(update={"enabled": True})
    tenant = Tenant(id=tenant_id, accounts=(probed,))
    base_url = providers.base_url(settings, account.provider)
    try:
        request = build(tenant, account.label, base_url)
    except httpx.InvalidURL as exc:  # a mistyped HUB_PROVIDER_BASE_URLS entry
        return ProbeResult("unreachable", f"invalid base URL {base_url!r}: {exc}")
    auth = adapter.auth(tenant, settings, account.label)
    result = await _call(adapter, request, auth, settings, http)
    masker = MASKER.including(account.secret_values())
    return ProbeResult(
        result.status, truncate(mask_text(result.detail, masker), DETAIL_LIMIT), result.http_status
    )


async def _call(
    adapter: ProviderAdapter[Any],
    request: httpx.Request,
    auth: httpx.Auth | None,
    settings: Settings,
    http: httpx.AsyncClient | None,
) -> ProbeResult:
    timeout = httpx.Timeout(settings.http_read_timeout, connect=settings.http_connect_timeout)
    # Set on the request: a client passed in keeps its own default for other calls.
    request.extensions = {**request.extensions, "timeout": timeout.as_dict()}
    # An auth flow's own requests (a token exchange, a resend after a 401) carry no
    # timeout of their own: bound the whole exchange, two round trips at most.
    deadline = 2 * (settings.http_connect_timeout + settings.http_read_timeout)
    try:
        async with asyncio.timeout(deadline):
            if http is not None:
                response = await _send(http, request, auth)
            else:
                async with httpx.AsyncClient(timeout=timeout, mounts=smtp_mounts()) as client:
                    response = await _send(client, request, auth)
    except AuthError as exc:
        return ProbeResult("auth_failed", f"credentials refused: {exc}")
    except TimeoutError:
        return ProbeResult("unreachable", f"no answer within {deadline:g}s")
    except httpx.TransportError as exc:
        return ProbeResult("unreachable", _transport_detail(exc))
    return read_answer(adapter, response)


async def _send(
    client: httpx.AsyncClient, request: httpx.Request, auth: httpx.Auth | None
) -> httpx.Response:
    return await client.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT)


def _transport_detail(exc: httpx.TransportError) -> str:
    if isinstance(exc, TokenUnavailableError):
        return f"token endpoint unavailable: {exc}"
    kinds: list[tuple[type[httpx.TransportError], str]] = [
        (DestinationRefusedError, "destination refused"),  # the SSRF guard's: before ConnectError
        (httpx.ConnectTimeout, "connect timeout"),
        (httpx.ReadTimeout, "read timeout"),
        (httpx.TimeoutException, "timeout"),
        (httpx.ConnectError, "could not connect"),
        (httpx.RemoteProtocolError, "connection dropped"),
    ]
    kind = next((k for cls, k in kinds if isinstance(exc, cls)), "network error")
    text = str(exc)
    return f"{kind}: {type(exc).__name__}: {text}" if text else f"{kind}: {type(exc).__name__}"


def read_answer(adapter: ProviderAdapter[Any], response: httpx.Response) -> ProbeResult:
    """Sort the provider's answer to a probe; the adapter's classify reads its error message."""
    status = response.status_code
    request = response.request
    call = f"{request.method} {request.url.path}"
    # Gateways that refuse credentials with HTTP 200 (Paytm's resultStatus "F") read it.
    read_body = getattr(adapter, "probe_answer", None)
    verdict: ProbeResult | None = read_body(response) if read_body is not None else None
    if verdict is not None:
        return verdict
    extra_ok: frozenset[int] = getattr(adapter, "probe_ok_statuses", frozenset())
    if 200 <= status < 300 or status in extra_ok:
        return ProbeResult("ok", f"{adapter.name} answered {status} to {call}", status)
    outcome = adapter.classify(response)
    reason = getattr(outcome, "reason", "") or response.reason_phrase
    code = getattr(outcome, "error_code", None)
    said = f"{status} from {adapter.name}: {reason}" + (f" ({code})" if code else "")
    if status in AUTH_STATUSES and not isinstance(outcome, RetryLater):
        return ProbeResult("auth_failed", said, status)
    if isinstance(outcome, RetryLater):  # 5xx, 429, 408, and Google's 403 rate limits
        return ProbeResult("unreachable", f"provider unavailable: {said}", status)
    return ProbeResult("unreachable", f"unexpected answer to {call}: {said}", status)
