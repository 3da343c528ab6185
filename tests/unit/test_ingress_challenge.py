"""The ingress route answers Meta's subscription check itself, in plain text, before any
signature check, and produces nothing.

The app is served without its lifespan, so it has no Kafka producer at all: a challenge
that tried to produce would fail with a 500. The produce path itself is the integration
suite's (tests/integration/test_ingress.py, a real broker).
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator

import httpx
import pytest
from tenant_accounts import primary

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.settings import Settings
from providers.whatsapp import WhatsAppAccount
from webhook_ingress.app import create_app

pytestmark = pytest.mark.anyio

TENANTS = parse_tenants(tomllib.loads(demo_tenant_config("t1", "School One")))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def ingress() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(), TENANTS)  # no lifespan: no producer, no audit sink
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress.test") as client:
        yield client


def verify_token() -> str:
    tenant = TENANTS.get("t1")
    assert tenant is not None
    return primary(tenant, WhatsAppAccount).verify_token.get_secret_value()


async def test_the_right_token_gets_the_challenge_back_as_plain_text(
    ingress: httpx.AsyncClient,
) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token(), "hub.challenge": "42"}
    answer = await ingress.get("/webhooks/whatsapp/t1", params=params)
    assert (answer.status_code, answer.text) == (200, "42")
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "not-it", "hub.challenge": "42"},
        {},  # a GET that is no subscription check: still never a delivery
    ],
)
async def test_a_wrong_or_missing_token_is_403(
    ingress: httpx.AsyncClient, params: dict[str, str]
) -> None:
    answer = await ingress.get("/webhooks/whatsapp/t1", params=params)
    assert (answer.status_code, answer.text) == (403, "Forbidden")


async def test_an_unknown_tenant_is_403(ingress: httpx.AsyncClient) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token(), "hub.challenge": "42"}
    answer = await ingress.get("/webhooks/whatsapp/nobody", params=params)
    assert (answer.status_code, answer.text) == (403, "Forbidden")


async def test_a_get_to_a_provider_without_a_check_is_still_refused_by_method(
    ingress: httpx.AsyncClient,
) -> None:
    answer = await ingress.get("/webhooks/razorpay/t1", params={"hub.challenge": "42"})
    assert answer.status_code == 405
    assert answer.json() == {"error": "razorpay webhooks are POST"}


async def test_an_unsigned_post_is_refused_before_anything_is_produced(
    ingress: httpx.AsyncClient,
) -> None:
    answer = await ingress.post(
        "/webhooks/whatsapp/t1", content=b"{}", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 401
    assert answer.json() == {"error": "missing signature"}
