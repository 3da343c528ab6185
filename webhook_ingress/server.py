"""The ingress's uvicorn server, with a deadline on each request's head.

uvicorn (0.54, httptools) arms no timer while a request line and headers arrive:
`timeout_keep_alive` runs only between requests and the first byte of the next one
cancels it, so a client that sends its headers one byte a second (slowloris) holds
a connection open for as long as it likes, and enough of them hold every one. This
protocol gives the whole head, from the connection (or the request's first byte)
to its blank line, `header_timeout` seconds and `max_header_bytes` bytes; past
either the connection is closed. The body has its own deadline in the app
(`HUB_INGRESS_BODY_TIMEOUT_SECONDS`), where the request is known.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from typing import Any, ClassVar

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import Settings

log = structlog.get_logger("webhook_ingress")

TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


class HeadDeadlineProtocol(HttpToolsProtocol):
    """httptools' protocol, closing a connection whose request head is too slow or too big."""

    header_timeout: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: TimerHandle | None = None
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own signature (it narrows BaseTransport the same way)
        super().connection_made(transport)
        self._arm_head_deadline()  # an idle new connection is a head that never starts

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Still armed after parsing: these bytes were all part of an unfinished head.
        if self._head_deadline is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse("ingress.head_too_large", TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_deadline is None:  # a fresh connection's first request keeps its clock
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def _arm_head_deadline(self) -> None:
        self._head_bytes = 0
        self._head_deadline = self.loop.call_later(
            self.header_timeout, self._refuse, "ingress.head_timeout", TIMED_OUT
        )

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _refuse(self, event: str, answer: bytes) -> None:
        self._disarm_head_deadline()
        if self.transport.is_closing():
            return
        log.warning(event, remote_addr=self.client[0] if self.client else None)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(answer)  # else a response is mid-way: just close
        self.transport.close()


def protocol_for(settings: Settings) -> type[HeadDeadlineProtocol]:
    """The protocol class with this deployment's limits (uvicorn builds one per connection)."""
    return type(
        "IngressProtocol",
        (HeadDeadlineProtocol,),
        {
            "header_timeout": settings.ingress_header_timeout_seconds,
            "max_header_bytes": settings.ingress_max_header_bytes,
        },
    )


def server_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """How `hub ingress serve` runs `app`; tests build their servers from it too."""
    options: dict[str, Any] = {
        "host": settings.ingress_host,
        "port": settings.ingress_port,
        "access_log": False,
        "log_config": None,
        "lifespan": "on",
        "loop": "uvloop",
        "http": protocol_for(settings),
        "server_header": False,  # no product and version for a scanner to match
        "timeout_keep_alive": max(1, round(settings.ingress_keep_alive_seconds)),
        "limit_concurrency": settings.ingress_limit_concurrency or None,
        **overrides,
    }
    return uvicorn.Config(app, **options)
