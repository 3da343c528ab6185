"""Test-connection over the admin API: the real providers.probe, over the network, to the
provider simulators served by uvicorn (as `hub simulators serve` serves them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_support import TWILIO_FIELDS, TWILIO_TOKEN, TWILIO_TOKEN_2, Api, open_api

import providers
from core.ports import free_port
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from schemas.events import ProviderCallAudit
from simulators.server import build_server

ACCOUNTS = "/v1/tenants/greenwood/accounts"


@pytest.fixture(scope="module")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The simulators, knowing greenwood's Twilio account as TWILIO_FIELDS has it."""
    settings = Settings(home=tmp_path_factory.mktemp("sim"), simulator_port=free_port())
    account = providers.parse_account("twilio", "primary", TWILIO_FIELDS)
    tenants = TenantDirectory({"greenwood": Tenant(id="greenwood", accounts=(account,))})
    server = build_server(settings, tenants)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the simulators did not start"
    try:
        yield settings.simulator_url
    finally:
        server.should_exit = True
        thread.join(10)


def _api(home: Path, simulator_url: str) -> Iterator[Api]:
    base_urls = providers.simulator_base_urls(simulator_url)
    api_iter = open_api(home, provider_base_urls=base_urls, http_read_timeout=3.0)
    api = next(api_iter)
    assert api.call("POST", "/v1/tenants", json={"id": "greenwood"}).status_code == 201
    yield api
    next(api_iter, None)


@pytest.fixture
def api(tmp_path: Path, simulator_url: str) -> Iterator[Api]:
    yield from _api(tmp_path, simulator_url)


def _add(api: Api, label: str, provider: str, fields: dict[str, str]) -> None:
    body = {"label": label, "provider": provider, "fields": fields}
    assert api.call("POST", ACCOUNTS, json=body).status_code == 201


def test_credentials_the_provider_accepts_are_ok(api: Api) -> None:
    _add(api, "primary", "twilio", TWILIO_FIELDS)
    response = api.call("POST", f"{ACCOUNTS}/primary/test", "operator")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["http_status"]) == ("ok", 200)
    assert response.json()["detail"] == (
        "twilio answered 200 to GET /twilio/2010-04-01/Accounts/AC0123456789abcdef.json"
    )


def test_credentials_the_provider_refuses_are_auth_failed(api: Api) -> None:
    _add(api, "stale", "twilio", {**TWILIO_FIELDS, "auth_token": TWILIO_TOKEN_2})
    response = api.call("POST", f"{ACCOUNTS}/stale/test", "operator")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["http_status"]) == ("auth_failed", 401)
    assert response.json()["detail"] == "401 from twilio: Authenticate (20003)"
    assert TWILIO_TOKEN_2 not in response.text and TWILIO_TOKEN not in response.text


def test_a_provider_nobody_answers_for_is_unreachable(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    for api in _api(tmp_path, closed):
        _add(api, "primary", "twilio", TWILIO_FIELDS)
        response = api.call("POST", f"{ACCOUNTS}/primary/test", "admin")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["http_status"]) == ("unreachable", None)
        assert "could not connect" in body["detail"]


class RecordingSink:
    def __init__(self) -> None:
        self.entries: list[ProviderCallAudit] = []

    def record(self, entry: ProviderCallAudit) -> None:
        self.entries.append(entry)

    def close(self) -> None:
        pass


def test_a_test_connection_call_is_on_the_audit_trail_masked(
    tmp_path: Path, simulator_url: str
) -> None:
    sink = RecordingSink()
    base_urls = providers.simulator_base_urls(simulator_url)
    api_iter = open_api(tmp_path, audit_sink=sink, provider_base_urls=base_urls)
    api = next(api_iter)
    try:
        assert api.call("POST", "/v1/tenants", json={"id": "greenwood"}).status_code == 201
        _add(api, "primary", "twilio", TWILIO_FIELDS)
        response = api.call("POST", f"{ACCOUNTS}/primary/test", "operator")
        assert response.json()["status"] == "ok"
    finally:
        next(api_iter, None)
    [entry] = sink.entries
    assert (entry.header.tenant, entry.provider, entry.account) == (
        "greenwood",
        "twilio",
        "primary",
    )
    assert (entry.operation, entry.method, entry.http_status) == ("connection.test", "GET", 200)
    assert entry.url == f"{simulator_url}/twilio/2010-04-01/Accounts/AC0123456789abcdef.json"
    assert entry.request_headers["authorization"] == "***"
    assert TWILIO_TOKEN not in entry.model_dump_json()
