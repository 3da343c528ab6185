"""An httpx transport that sends `smtp://` and `smtps://` requests with aiosmtplib.

The SMTP adapter (providers/smtp.py) builds an ordinary `httpx.Request`: its URL names
the server, its body is the RFC 5322 message, its `Authorization: Basic` header the
account's login. Mounted on the connector's client,

    httpx.AsyncClient(mounts={"smtp://": SmtpTransport(), "smtps://": SmtpTransport()})

this transport (or `smtp_mounts()`) connects (implicit TLS for smtps://, STARTTLS as the request's
`smtp_start_tls` extension says for smtp://), logs in, sends the message to the
envelope taken from its From/To headers and answers a synthetic HTTP response (a GET
only connects and logs in: the test connection):

- the message accepted (250): 200 `{"message_id", "response"}`;
- any 4xx reply, at login or later: 503 `{"code", "message"}` (transient);
- any 5xx reply (550 a refused mailbox ...): 422 `{"code", "message"}`; a refused login
  (530, 534, 535) is 401 `{"code", "message"}`;
- the server offers no STARTTLS or AUTH the account needs: 422 `{"code": null, ...}`;
- no connection, or a failure before the message transaction began: `httpx.ConnectError`
  (the executor retries: nothing was sent);
- the connection lost or a reply timed out during the transaction: `httpx.RemoteProtocolError`
  / `httpx.ReadTimeout` (retried as in doubt: the server may have taken the message).

The request's `timeout` extension (the client's timeouts) bounds each SMTP step: the
connect timeout the connection, the read timeout every command.

A request marked TENANT_DESTINATION (the account's own server) goes through the SSRF
guard first: its host is resolved once, every address checked (core.url_guard, with
HUB_URL_GUARD_ALLOW), and the socket connected to the checked address; aiosmtplib gets
that socket and the host name, so TLS still verifies the name. A refused destination
raises `DestinationRefusedError`: nothing connected, nothing sent, a permanent failure.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from typing import Any

import aiosmtplib
import httpx

from core.guarded_http import TENANT_DESTINATION, DestinationGuard
from core.settings import get_settings
from providers.smtp import (
    ACCEPTED,
    CONTENT_TYPE,
    START_TLS,
    accepted_body,
    basic_credentials,
    envelope,
    refusal_status,
    refused_body,
)

# aiosmtplib's own default, when the client sets no timeout.
DEFAULT_TIMEOUT = 60.0


def answer(request: httpx.Request, status: int, body: dict[str, object]) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        request=request,
    )


def refused(request: httpx.Request, code: int | None, message: str) -> httpx.Response:
    return answer(request, refusal_status(code), refused_body(code, message))


class SmtpTransport(httpx.AsyncBaseTransport):
    """Send smtp:// (STARTTLS per request) and smtps:// (implicit TLS) requests."""

    def __init__(
        self,
        *,
        tls: bool | None = None,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        guard: DestinationGuard | None = None,
    ) -> None:
        # None: implicit TLS for smtps:// only; True/False: for every URL this serves.
        self.tls = tls
        self.tls_context = tls_context
        # The EHLO name; None: aiosmtplib's (the machine's FQDN).
        self.local_hostname = local_hostname
        # Checks the tenants' own servers; default: HUB_URL_GUARD_ALLOW and the system's DNS.
        self.guard = guard or DestinationGuard.from_settings(get_settings())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in ("smtp", "smtps"):
            raise httpx.UnsupportedProtocol(
                f"SmtpTransport cannot send {scheme}://", request=request
            )
        use_tls = self.tls if self.tls is not None else scheme == "smtps"
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read") or DEFAULT_TIMEOUT
        login = basic_credentials(request.headers.get("authorization", ""))
        raw = await request.aread()
        probing = request.method == "GET"
        if not probing:
            if request.headers.get("content-type", "").split(";")[0].strip() != CONTENT_TYPE:
                return refused(request, None, f"the request body must be {CONTENT_TYPE}")
            sender, recipients, message_id = envelope(raw)
            if not sender or not recipients:
                return refused(request, None, "the message names no From or no To address")
        connect_timeout = timeouts.get("connect") or read_timeout
        port = request.url.port or (465 if use_tls else 587)
        sock: socket.socket | None = None
        if request.extensions.get(TENANT_DESTINATION):
            try:
                async with asyncio.timeout(connect_timeout):
                    sock = await self._pinned_socket(request, port)
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(_text(exc), request=request) from exc
        client = aiosmtplib.SMTP(
            hostname=request.url.host,  # with a socket: the name TLS verifies
            port=None if sock is not None else port,
            sock=sock,
            use_tls=use_tls,
            start_tls=False if use_tls else bool(request.extensions.get(START_TLS, True)),
            tls_context=self.tls_context,
            local_hostname=self.local_hostname,
            timeout=read_timeout,
        )
        try:
            early = await self._connect(client, request, login, connect_timeout)
            if early is not None:
                return early
            if probing:
                return answer(request, ACCEPTED, {"response": "logged in"})
            return await self._send(
                client,
                request,
                raw,
                read_timeout=read_timeout,
                sender=sender,
                recipients=recipients,
                message_id=message_id,
            )
        finally:
            await _close(client)
            if sock is not None:
                # aiosmtplib's transport closes the socket it took; one it never took
                # (a failed connect) is ours. Closing a closed socket object is a no-op.
                sock.close()

    async def _pinned_socket(self, request: httpx.Request, port: int) -> socket.socket:
        """A socket connected to the address the guard checked for the request's host."""
        try:
            address = await self.guard.address(request.url.host, port)
        except httpx.RequestError as exc:
            exc.request = request
            raise
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
        except OSError as exc:  # refused, unreachable
            sock.close()
            raise httpx.ConnectError(_text(exc), request=request) from exc
        except BaseException:  # cancelled: the caller's connect timeout
            sock.close()
            raise
        return sock

    async def _connect(
        self,
        client: aiosmtplib.SMTP,
        request: httpx.Request,
        login: tuple[str, str] | None,
        connect_timeout: float,
    ) -> httpx.Response | None:
        """Connect, upgrade and log in; an SMTP refusal as the answer, else None."""
        try:
            await client.connect(
                timeout=connect_timeout,
                username=login[0] if login else None,
                password=login[1] if login else None,
            )
        except aiosmtplib.SMTPResponseException as exc:  # a 421 greeting, 535 login ...
            return refused(request, exc.code, exc.message)
        except OSError as exc:  # refused, unreachable, TLS failed, timed out, dropped
            raise httpx.ConnectError(_text(exc), request=request) from exc
        except aiosmtplib.SMTPException as exc:  # no STARTTLS, no AUTH: the account's setup
            return refused(request, None, exc.message)
        return None

    async def _send(
        self,
        client: aiosmtplib.SMTP,
        request: httpx.Request,
        raw: bytes,
        *,
        read_timeout: float,
        sender: str,
        recipients: list[str],
        message_id: str,
    ) -> httpx.Response:
        try:
            _errors, reply = await client.sendmail(sender, recipients, raw, timeout=read_timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return refused(request, first.code, first.message)
        except aiosmtplib.SMTPResponseException as exc:
            return refused(request, exc.code, exc.message)
        except TimeoutError as exc:  # aiosmtplib's SMTPTimeoutError among them
            raise httpx.ReadTimeout(_text(exc), request=request) from exc
        except OSError as exc:  # SMTPServerDisconnected among them
            raise httpx.RemoteProtocolError(_text(exc), request=request) from exc
        except aiosmtplib.SMTPException as exc:
            return refused(request, None, exc.message)
        return answer(request, ACCEPTED, accepted_body(message_id, reply))


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


def smtp_mounts(**options: Any) -> dict[str, httpx.AsyncBaseTransport]:
    """The mounts an httpx.AsyncClient needs to send the SMTP adapter's requests."""
    transport = SmtpTransport(**options)
    return {"smtp://": transport, "smtps://": transport}
