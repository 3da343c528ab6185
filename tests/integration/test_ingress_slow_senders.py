"""Slow senders against the real server: uvicorn with the ingress's protocol, on a socket.

uvicorn itself bounds no request head in time (webhook_ingress/server.py says why);
these tests send one byte a second and show the connection closed at the head
deadline while a normal request on another connection is answered.
"""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.ports import free_port
from core.settings import Settings
from webhook_ingress.app import create_app
from webhook_ingress.server import server_config

HEAD_TIMEOUT = 2.0
HEAD = b"POST /webhooks/razorpay/t1 HTTP/1.1\r\nHost: ingress.test\r\nX-Slow: " + b"a" * 40


@pytest.fixture(scope="module")
def server() -> Iterator[Settings]:
    settings = Settings(
        ingress_port=free_port(),
        ingress_header_timeout_seconds=HEAD_TIMEOUT,
        ingress_max_header_bytes=8 * 1024,
    )
    tenants = parse_tenants(tomllib.loads(demo_tenant_config("t1")))
    # No lifespan: /healthz and the head deadline need no Kafka producer.
    config = server_config(create_app(settings, tenants), settings, lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started, "the ingress server did not start"
    try:
        yield settings
    finally:
        running.should_exit = True
        thread.join(10)


def connect(settings: Settings) -> socket.socket:
    sock = socket.create_connection((settings.ingress_host, settings.ingress_port), timeout=5)
    sock.settimeout(1.0)  # each recv waits about a byte's interval
    return sock


def trickle(sock: socket.socket, data: bytes) -> tuple[int, bytes]:
    """Send `data` a byte a second until the server closes: (bytes sent, what it answered)."""
    answered = b""
    for sent, byte in enumerate(data):
        try:
            sock.sendall(bytes([byte]))
            answered += sock.recv(1024)
        except TimeoutError:
            continue  # nothing yet: the next byte
        except OSError:  # reset: closed
            return sent, answered
        if answered == b"" or answered.endswith(b"\r\n\r\n"):
            return sent + 1, answered  # recv() of b"" is the server's close
    return len(data), answered


def test_a_head_sent_a_byte_a_second_is_cut_off_while_others_are_served(
    server: Settings,
) -> None:
    results: dict[str, tuple[int, bytes]] = {}
    slow = connect(server)
    worker = threading.Thread(target=lambda: results.update(slow=trickle(slow, HEAD)))
    worker.start()
    time.sleep(HEAD_TIMEOUT / 2)
    healthy = httpx.get(f"{server.ingress_url}/healthz", timeout=5)  # meanwhile
    worker.join(60)
    slow.close()
    assert (healthy.status_code, healthy.json()) == (200, {"status": "ok"})
    sent, answered = results["slow"]
    # Cut off at the deadline (about 2 bytes in), long before its 84-byte head ended.
    assert sent < len(HEAD) // 4
    assert answered.startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_never_sends_is_closed_at_the_same_deadline(server: Settings) -> None:
    idle = connect(server)
    idle.settimeout(HEAD_TIMEOUT * 5)
    try:
        answered = idle.recv(1024)  # blocks until the server writes or closes
        rest = idle.recv(1024)
    finally:
        idle.close()
    assert answered.startswith(b"HTTP/1.1 408 ")
    assert rest == b""  # then closed


def test_a_head_over_the_size_limit_is_431_and_closed(server: Settings) -> None:
    big = connect(server)
    big.settimeout(5)
    try:
        big.sendall(HEAD + b"b" * (9 * 1024))  # no blank line: the head never ends
        answered = big.recv(1024)
    finally:
        big.close()
    assert answered.startswith(b"HTTP/1.1 431 ")


def test_a_prompt_client_keeps_its_connection_between_requests(server: Settings) -> None:
    def local_address(response: httpx.Response) -> object:
        return response.extensions["network_stream"].get_extra_info("client_addr")

    with httpx.Client(base_url=server.ingress_url, timeout=5) as http:
        first = http.get("/healthz")
        before = local_address(first)
        time.sleep(HEAD_TIMEOUT * 1.5)  # idle past the head deadline, within keep-alive
        second = http.get("/healthz")
        after = local_address(second)
    assert (first.status_code, second.status_code) == (200, 200)
    assert before == after  # the same connection
    assert "server" not in first.headers  # no product and version for scanners
