"""Connections to destinations a tenant configured: resolved, checked, then pinned.

`core.url_guard` decides which addresses the hub may call; this module applies it
where the connection is made, so the address checked is the address connected to.
Resolving once to check and letting the socket library resolve again to connect
would let a name answer a global address first and 127.0.0.1 second (DNS
rebinding). Here the name is resolved once, every address it gave is checked, and
the connection goes to the checked one; TLS (SNI, certificate) and the Host header
still use the name.

- `DestinationGuard.address(host, port)`: resolve (in a thread: getaddrinfo blocks),
  check, answer the address; a refusal is `DestinationRefusedError`.
- `GuardedTransport`: an `httpx.AsyncHTTPTransport` whose connection pool connects
  through `PinnedBackend`, which asks the guard for every new connection. Redirects
  are never followed by a transport; clients that use it keep httpx's default
  `follow_redirects=False`, and a redirect followed anyway passes the guard again.
- `TENANT_DESTINATION`: the request extension an adapter sets when the request's
  host came from the tenant's account (not from operator configuration); a transport
  that serves both guards only those.

A refusal is permanent for the command (connectors map it to a `destination_refused`
failure, a dead letter at once): the tenant has to fix its account.
"""

from __future__ import annotations

import asyncio
import typing

import httpcore
import httpx
import structlog

from core.settings import Settings
from core.url_guard import (
    ALLOWED_SCHEMES,
    NO_ALLOWANCE,
    Allowance,
    Resolver,
    UnsafeUrlError,
    check_addresses,
    literal_address,
    parse_allowance,
    system_resolver,
)

log = structlog.get_logger("url_guard")

TENANT_DESTINATION = "hub_tenant_destination"
DESTINATION_REFUSED = "destination_refused"


class DestinationRefusedError(httpx.ConnectError):
    """The guard refused the destination: no connection was made (so nothing was sent)."""


class DestinationGuard:
    def __init__(self, allow: Allowance = NO_ALLOWANCE, resolve: Resolver = system_resolver):
        self.allow = allow
        self.resolve = resolve

    @classmethod
    def from_settings(cls, settings: Settings) -> DestinationGuard:
        return cls(parse_allowance(settings.url_guard_allow))

    async def address(self, host: str, port: int) -> str:
        """The checked address to connect to. A name that does not resolve (now) is a
        connection error, retried like any; a refused address is permanent. The caller
        bounds it (asyncio.timeout): a lookup's thread is then left to finish unused."""
        name = host.strip("[]")
        literal = literal_address(name)
        if literal is not None:  # nothing to resolve, nothing DNS could change
            return self._checked(name, port, [literal])
        try:
            found = await asyncio.to_thread(self.resolve, name, port)
        except (OSError, UnicodeError) as exc:
            raise httpx.ConnectError(f"{name!r} does not resolve: {exc}") from exc
        return self._checked(name, port, list(found))

    def _checked(self, name: str, port: int, found: list[str]) -> str:
        try:
            return check_addresses(name, found, self.allow)
        except UnsafeUrlError as exc:
            log.warning("destination.refused", host=name, port=port, reason=str(exc))
            raise DestinationRefusedError(str(exc)) from exc


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard checked."""

    def __init__(
        self, guard: DestinationGuard, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.guard = guard
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                address = await self.guard.address(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        return await self.inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )  # fmt: skip

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefusedError("a tenant's destination is never a local socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its pool connecting through `PinnedBackend`: http and
    https only, no credentials in the URL, every connection to a checked address.
    No proxy and no environment (trust_env=False): a proxy would be what is connected
    to, and the destination's address would go unchecked."""

    def __init__(
        self,
        guard: DestinationGuard,
        *,
        limits: httpx.Limits = httpx.Limits(),  # noqa: B008 - immutable, httpx's own default
        verify: bool = True,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        # httpx takes no network backend; its pool is replaced by the same pool with one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(guard, network_backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in ALLOWED_SCHEMES:
            raise DestinationRefusedError(
                f"only http and https URLs may be called, not {scheme!r}", request=request
            )
        if request.url.userinfo:
            raise DestinationRefusedError(
                "a URL with credentials in it (user@host) is refused", request=request
            )
        try:
            return await super().handle_async_request(request)
        except DestinationRefusedError as exc:
            exc.request = request  # raised below httpx, where the request is not known
            raise
