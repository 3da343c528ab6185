"""What the ingress tells a stranger: nothing about tenants, brokers or its limits' state.

The app is served without its lifespan (no producer): every answer here is decided
before anything would be produced. The produce path, and a 200 next to a 429, are
the integration suite's (tests/integration/test_ingress_limits_kafka.py, a real broker).
"""

from __future__ import annotations

import asyncio
import tomllib
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs
from tenant_accounts import primary

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.ports import free_port
from core.settings import Settings
from providers.whatsapp import WhatsAppAccount
from webhook_ingress.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; httpx (the project's) still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # runs the lifespan: a real producer

pytestmark = pytest.mark.anyio

TENANTS = parse_tenants(
    tomllib.loads(
        demo_tenant_config("t1", "School One")
        + "\n"
        # A known tenant with no Razorpay account (Twilio only).
        + """
[tenants.t2.accounts.twilio-primary]
provider = "twilio"
account_sid = "AC00000000000000000000000000000000"
auth_token = "token"
from_number = "+15005550006"
"""
    )
)
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client(settings: Settings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings, TENANTS))  # no lifespan
    return httpx.AsyncClient(transport=transport, base_url="http://ingress.test")


@pytest.fixture
async def ingress() -> AsyncIterator[httpx.AsyncClient]:
    async with client(Settings()) as c:
        yield c


def answer(response: httpx.Response) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    return response.status_code, response.content, tuple(sorted(response.headers.items()))


# --- 404 and 403: the same answer whichever part is unknown ------------------------------


async def test_every_404_is_byte_identical_and_the_log_says_why(
    ingress: httpx.AsyncClient,
) -> None:
    paths = {
        "/webhooks/nosuch/t1": "unknown provider 'nosuch'",
        "/webhooks/razorpay/nobody": "unknown tenant 'nobody' for razorpay",
        "/webhooks/razorpay/t2": "unknown tenant 't2' for razorpay",  # known, no account
    }
    with capture_logs() as logs:
        answers = [await ingress.post(p, content=b"{}", headers=JSON) for p in paths]
    first = answer(answers[0])
    assert (first[0], first[1]) == (404, b'{"error":"not found"}')
    assert [answer(a) for a in answers] == [first] * 3  # status, body and headers
    assert [e["reason"] for e in logs if e["event"] == "webhook.rejected"] == list(paths.values())


async def test_a_refused_subscription_check_is_the_same_403_for_a_known_and_an_unknown_tenant(
    ingress: httpx.AsyncClient,
) -> None:
    tenant = TENANTS.get("t1")
    assert tenant is not None
    token = primary(tenant, WhatsAppAccount).verify_token.get_secret_value()
    wrong = {"hub.mode": "subscribe", "hub.verify_token": "not-it", "hub.challenge": "42"}
    right = {**wrong, "hub.verify_token": token}
    with capture_logs() as logs:
        known = await ingress.get("/webhooks/whatsapp/t1", params=wrong)
        unknown = await ingress.get("/webhooks/whatsapp/nobody", params=right)
    assert answer(known) == answer(unknown)
    assert (known.status_code, known.text) == (403, "Forbidden")
    reasons = [e["reason"] for e in logs if e["event"] == "webhook.challenge_refused"]
    assert reasons == [
        "not a subscription check with a known token",
        "no whatsapp verify token for 'nobody'",
    ]


# --- /readyz never prints the broker's error ------------------------------------------------


def test_readyz_without_a_broker_is_a_bare_503_and_the_error_is_logged() -> None:
    dead = f"127.0.0.1:{free_port()}"
    settings = Settings(kafka_bootstrap_servers=dead)
    with capture_logs() as logs, TestClient(create_app(settings, TENANTS)) as http:
        ready = http.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
    assert dead not in ready.text
    assert [e["event"] for e in logs if e["event"] == "ingress.not_ready"] == ["ingress.not_ready"]


# --- rate limits: 429 + Retry-After, before the body is read -------------------------------


async def test_a_noisy_address_gets_429_with_retry_after() -> None:
    settings = Settings(ingress_address_rate=0.5, ingress_address_burst=2)
    async with client(settings) as ingress:
        first = [await ingress.post("/webhooks/razorpay/t1", headers=JSON) for _ in range(2)]
        # Another tenant from the same address: the address's bucket is empty.
        limited = await ingress.post("/webhooks/razorpay/t2", headers=JSON)
    assert [r.status_code for r in first] == [401, 401]  # through the limit: unsigned
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"  # one token at 0.5/s
    assert limited.json() == {"error": "too many requests; retry later"}


async def test_a_noisy_tenant_is_limited_and_another_tenant_is_not() -> None:
    settings = Settings(ingress_tenant_rate=1.0, ingress_tenant_burst=3, ingress_address_rate=0)
    async with client(settings) as ingress:
        noisy = [await ingress.post("/webhooks/razorpay/t1", headers=JSON) for _ in range(5)]
        other = await ingress.post("/webhooks/twilio/t2", headers=FORM)
    assert [r.status_code for r in noisy] == [401, 401, 401, 429, 429]
    assert int(noisy[-1].headers["retry-after"]) >= 1
    assert other.status_code == 401  # reached the signature check


async def test_the_limit_answers_before_the_body_is_read() -> None:
    settings = Settings(ingress_address_rate=0.001, ingress_address_burst=1)
    read: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        read.append(1)
        yield b"{}"

    async with client(settings) as ingress:
        await ingress.post("/webhooks/razorpay/t1", headers=JSON)
        limited = await ingress.post("/webhooks/razorpay/t1", headers=JSON, content=body())
    assert (limited.status_code, read) == (429, [])


# --- slow bodies and per-provider body limits ---------------------------------------------


async def test_a_body_that_trickles_past_the_deadline_is_408() -> None:
    settings = Settings(ingress_body_timeout_seconds=0.2)

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"event":'
        await asyncio.sleep(5)  # the deadline cancels the read long before this ends
        yield b'"x"}'

    async with client(settings) as ingress:
        response = await ingress.post("/webhooks/razorpay/t1", headers=JSON, content=trickle())
    assert response.status_code == 408
    assert response.json()["error"] == "body not received in 0.2 s"


@pytest.mark.parametrize(
    ("provider", "size", "status"),
    [
        ("razorpay", 64 * 1024 + 1, 413),  # Razorpay's own limit, under the global one
        ("razorpay", 60 * 1024, 401),
        ("sendgrid", 512 * 1024, 401),  # a SendGrid batch: over the global 256 KiB, allowed
        ("sendgrid", 1024 * 1024 + 1, 413),
        ("stripe", 256 * 1024 + 1, 413),  # no limit of its own: the global one
    ],
)
async def test_the_providers_body_limit_applies(
    ingress: httpx.AsyncClient, provider: str, size: int, status: int
) -> None:
    body: Any = b"[" + b" " * (size - 2) + b"]"
    response = await ingress.post(f"/webhooks/{provider}/t1", headers=JSON, content=body)
    assert response.status_code == status, response.text
