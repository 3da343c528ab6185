"""The ingress under generated hostile traffic, valid deliveries alongside (issue 11).

python -m bench fuzz_ingress      FUZZ_REQUESTS (default 100,000), FUZZ_SEED, FUZZ_CONCURRENCY

A real ingress process (`hub ingress serve`) on its own broker, rate limits off:
every provider's garbled, tampered, stale, misrouted, oversized, chunked and junk
requests (fuzz.traffic), about 15 % valid signed deliveries and replays among them,
sent concurrently. Counted: invalid requests answered 2xx (must be 0), answers 5xx
(0; known, reported bugs apart), the ingress process alive at the end, valid
deliveries answered 200 (all) and found on the raw topic by their marker (all).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from yarl import URL

from bench.ingress import _serve
from catalog.tenant_file import read_tenant_file
from core.observe import TopicWatcher
from core.ports import free_port
from core.settings import Settings
from core.topics import RAW_WEBHOOKS
from fuzz import deliveries, known_bugs, traffic
from fuzz.mutations import Expect, Request, chunks
from hub.stack import child_env
from providers.paypal_webhooks import CERT_PATH
from schemas.events import RawWebhook

MARKER = re.compile(rb"(?<![0-9a-f])([0-9a-f]{32})(?![0-9a-f])")
MAX_BODY = 16 * 1024
RETRIES = 3  # the deployment's limit here: oversized bodies stay cheap to send


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.kinds: Counter[str] = Counter()
        self.accepted: set[str] = set()
        self.examples: dict[str, list[str]] = {}

    def note(self, what: str, sent: traffic.Sent, status: int | str) -> None:
        self.counts[what] += 1
        shown = self.examples.setdefault(what, [])
        if len(shown) < 6:
            shown.append(f"{status} {sent.kind} {sent.request.method} {sent.request.target[:80]}")

    def record(self, sent: traffic.Sent, status: int) -> None:
        self.counts["requests"] += 1
        self.statuses[status] += 1
        self.kinds[sent.kind] += 1
        if status >= 500:
            bug = known_bugs.answered_500(as_received(sent.request))
            self.note(f"5xx known bug {bug}" if bug else "5xx", sent, status)
        if sent.expect is Expect.ACCEPT:
            self.counts["valid"] += 1
            if status == 200 and sent.marker:
                self.accepted.add(sent.marker)
            else:
                self.note("valid not 200", sent, status)
        elif sent.expect is Expect.REFUSE:
            self.counts["invalid"] += 1
            if 200 <= status < 300:
                self.note("invalid accepted", sent, status)
        else:
            self.counts["either (replays, same-meaning changes)"] += 1


def as_received(request: Request) -> Request:
    """The request as the ingress sees it: aiohttp sends header values as UTF-8, and
    the server reads them as Latin-1 (so what is not ASCII stays not ASCII)."""
    seen = [(k, v.encode("utf-8").decode("latin-1")) for k, v in request.headers]
    return dataclasses.replace(request, headers=seen)


async def _send(session: aiohttp.ClientSession, base: str, sent: traffic.Sent) -> int:
    request = sent.request
    data: Any = request.body
    if request.chunked:
        pieces = chunks(request.body, 4096)

        async def stream() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        data = stream()  # no Content-Length: Transfer-Encoding: chunked
    async with session.request(
        request.method,
        URL(base + request.target, encoded=True),
        headers=request.headers,
        data=data,
        skip_auto_headers=("Content-Type",),
    ) as response:
        await response.read()
        return response.status


async def _answer(
    session: aiohttp.ClientSession, base: str, sent: traffic.Sent, tally: Tally
) -> int | None:
    """The status, sending again (as a provider would) when the connection dropped: the
    server closes a kept-alive connection after refusing a body it did not read, and
    the next request on it may race that close."""
    for attempt in range(RETRIES + 1):
        try:
            return await _send(session, base, sent)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            if attempt == RETRIES:
                tally.note("client errors", sent, f"{type(exc).__name__}: {exc}"[:90])
            else:
                tally.counts["sent again after a dropped connection"] += 1
        except ValueError as exc:  # the client refused to send it: not a request
            tally.note("client errors", sent, f"{type(exc).__name__}: {exc}"[:90])
            return None
    return None


async def _load(
    base: str, target: traffic.Target, total: int, concurrency: int, seed: int
) -> Tally:
    tally = Tally()
    choices = traffic.RandomChoices(seed)

    async def worker(session: aiohttp.ClientSession) -> None:
        while tally.counts["requests"] + tally.counts["client errors"] < total:
            # Drawn when sent, not before: a valid delivery is signed just in time.
            for sent in traffic.generate(choices, target, valid_share=15):
                status = await _answer(session, base, sent, tally)
                if status is not None:
                    tally.record(sent, status)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return tally


@asynccontextmanager
async def _certificate_server(port: int) -> AsyncIterator[None]:
    """PayPal's certificate location, for the ingress's PayPal verifier (the far side)."""

    async def certificate(request: web.Request) -> web.Response:
        # Its one certificate at its one URL: another id is another (unknown) certificate.
        pem = deliveries.SIGNER.fetch(str(request.url))
        if pem is None:
            return web.Response(status=404)
        return web.Response(body=pem, content_type="application/x-pem-file")

    app = web.Application()
    app.router.add_get(f"{CERT_PATH}{{cert_id}}", certificate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def _settings(settings: Settings, cert_port: int) -> Settings:
    certs = f"http://127.0.0.1:{cert_port}{CERT_PATH}"
    return settings.model_copy(
        update={
            # Off (0): the load is one address, one tenant, by design.
            "ingress_tenant_rate": 0,
            "ingress_address_rate": 0,
            "ingress_max_body_bytes": MAX_BODY,
            "provider_base_urls": {**settings.provider_base_urls, "paypal.certs": certs},
        }
    )


def _on_topic(watch: TopicWatcher, wanted: set[str], timeout: float) -> set[str]:
    found: set[str] = set()
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline and not wanted <= found:
        watch.poll(0.5)
        for _topic, event in watch.events[seen:]:
            if isinstance(event, RawWebhook):
                found.update(m.decode() for m in MARKER.findall(event.body))
        seen = len(watch.events)
    return found & wanted


async def _with_certificates(
    port: int, base: str, target: traffic.Target, total: int, concurrency: int, seed: int
) -> Tally:
    async with _certificate_server(port):
        return await _load(base, target, total, concurrency, seed)


def run(settings: Settings) -> dict[str, Any]:
    total = int(os.environ.get("FUZZ_REQUESTS", "100000"))
    seed = int(os.environ.get("FUZZ_SEED", "11"))
    concurrency = int(os.environ.get("FUZZ_CONCURRENCY", "32"))
    cert_port = free_port()
    settings = _settings(settings, cert_port)
    tenant = read_tenant_file(settings.home / "tenants.toml")[0]
    deliveries.SIGNER.cert_url = f"http://127.0.0.1:{cert_port}{CERT_PATH}CERT-fuzz-0001"
    target = traffic.Target(tenant, settings.ingress_url, MAX_BODY)
    ingress = _serve(
        [sys.executable, "-m", "hub", "ingress", "serve"],
        child_env(settings),
        f"{settings.ingress_url}/readyz",
    )
    started = time.perf_counter()
    try:
        with TopicWatcher(settings, [RAW_WEBHOOKS]) as watch:
            tally = asyncio.run(
                _with_certificates(
                    cert_port, settings.ingress_url, target, total, concurrency, seed
                )
            )
            seconds = time.perf_counter() - started
            found = _on_topic(watch, tally.accepted, timeout=120)
        alive = ingress.poll() is None
        healthy = alive and httpx.get(f"{settings.ingress_url}/healthz").status_code == 200
    finally:
        ingress.terminate()
        ingress.wait(10)
    return _figures(tally, found, alive and healthy, seconds, seed, concurrency)


def _figures(
    tally: Tally, found: set[str], alive: bool, seconds: float, seed: int, concurrency: int
) -> dict[str, Any]:
    c = tally.counts
    known = {k: v for k, v in c.items() if k.startswith("5xx known bug")}
    figures: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": _machine(),
        "seed": seed,
        "concurrency": concurrency,
        "seconds": round(seconds, 1),
        "requests": c["requests"],
        "invalid_requests": c["invalid"],
        "valid_requests": c["valid"],
        "either_requests": c["either (replays, same-meaning changes)"],
        "invalid_accepted": c["invalid accepted"],
        "answers_5xx": c["5xx"],
        "answers_5xx_known_bugs": known,
        "client_errors": c["client errors"],
        "sent_again": c["sent again after a dropped connection"],
        "ingress_crashed": 0 if alive else 1,
        "valid_answered_200": len(tally.accepted),
        "valid_on_raw_topic": len(found),
        "statuses": dict(sorted(tally.statuses.items())),
        "kinds": dict(sorted(tally.kinds.items())),
        "examples": tally.examples,
    }
    _print_table(figures)
    broken = _broken(figures)
    if broken:
        # After the table: `make fuzz` fails, and says which rule broke.
        raise RuntimeError("fuzz_ingress: " + "; ".join(broken))
    return figures


def _broken(f: dict[str, Any]) -> list[str]:
    rules = [
        (f["invalid_accepted"] == 0, f"{f['invalid_accepted']} invalid requests accepted"),
        (f["answers_5xx"] == 0, f"{f['answers_5xx']} answers 5xx"),
        (f["ingress_crashed"] == 0, "the ingress process died"),
        (f["valid_answered_200"] == f["valid_requests"], "valid deliveries not answered 200"),
        (f["valid_on_raw_topic"] == f["valid_answered_200"], "accepted ones not on the topic"),
        (f["client_errors"] == 0, f"{f['client_errors']} requests got no answer"),
    ]
    return [message for ok, message in rules if not ok]


def _machine() -> str:
    cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"


def _print_table(f: dict[str, Any]) -> None:
    rows = [
        ("requests sent", f["requests"], ""),
        ("  invalid / hostile", f["invalid_requests"], ""),
        ("  valid signed", f["valid_requests"], ""),
        ("  replays, same-meaning changes", f["either_requests"], ""),
        ("invalid accepted (2xx)", f["invalid_accepted"], "must be 0"),
        ("answers 5xx", f["answers_5xx"], "must be 0"),
        ("answers 5xx, known bugs", sum(f["answers_5xx_known_bugs"].values()), "reported"),
        ("ingress crashed", f["ingress_crashed"], "must be 0"),
        ("valid answered 200", f["valid_answered_200"], f"of {f['valid_requests']}"),
        ("valid on the raw topic", f["valid_on_raw_topic"], f"of {f['valid_answered_200']}"),
        ("sent again (dropped connection)", f["sent_again"], ""),
        ("client errors", f["client_errors"], ""),
    ]
    print(f"\nfuzz_ingress, {f['date']}, {f['machine']}, {f['seconds']} s")
    for name, value, note in rows:
        print(f"  {name:<34} {value:>8}  {note}")
