"""The SSRF guard on the one destination a tenant configures, its SMTP server: the
transport connects to the checked address (a real SMTP sink on 127.0.0.1, reachable
only through the allow-list), the connector makes a refusal a permanent failure with
its reason, the test connection says so, and the admin API refuses to save a literal.

Resolution is the injected I/O: a fake resolver for names under .test. No real DNS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from admin_support import Api, open_api
from connector_support import command, email
from pydantic import SecretStr

from connectors.executor import CommandExecutor
from connectors.retry import RetryPolicy
from core.audit import AuditSink
from core.guarded_http import (
    DESTINATION_REFUSED,
    TENANT_DESTINATION,
    DestinationGuard,
    DestinationRefusedError,
)
from core.ports import free_port
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from core.url_guard import parse_allowance
from providers.base import Delivered
from providers.probe import probe
from providers.smtp import Smtp, SmtpAccount
from providers.smtp_transport import smtp_mounts
from schemas.events import ResultStatus
from simulators.smtp import SmtpSink, start_smtp_sink

pytestmark = pytest.mark.anyio

ADAPTER = Smtp()
DECLARED = "smtp://{host}:{port}"  # the provider's base URL: the account decides
HOST = "mail.t1.test"  # answers 127.0.0.1, as a rebinding name or a careless school would


def resolver(host: str, port: int) -> list[str]:
    if host == HOST:
        return ["127.0.0.1"]
    raise OSError(-2, "Name or service not known")


def guard(allow: str = "") -> DestinationGuard:
    return DestinationGuard(parse_allowance(allow), resolver)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sink_port() -> Iterator[tuple[SmtpSink, int]]:
    login = smtp_account(2525)  # the sink knows the login, whatever the host
    sink = SmtpSink(lambda: [("t1", login)], lambda a: False)
    port = free_port()
    controller = start_smtp_sink("127.0.0.1", port, sink)
    try:
        yield sink, port
    finally:
        controller.stop()


def smtp_account(port: int, host: str = HOST) -> SmtpAccount:
    return SmtpAccount(
        host=host,
        port=port,
        username="hub@t1.school.example",
        password=SecretStr("smtp-password-1"),
        from_email="office@t1.school.example",
        starttls=False,  # the sink speaks no TLS
    )


def tenants_with(account: SmtpAccount) -> TenantDirectory:
    config = ProviderAccount(label="smtp-primary", provider="smtp", config=account)
    return TenantDirectory({"t1": Tenant(id="t1", accounts=(config,))})


def request_to(account: SmtpAccount, base_url: str = DECLARED) -> httpx.Request:
    payload = email()
    t1 = tenants_with(account).get("t1")
    assert t1 is not None
    return ADAPTER.build_request(command("smtp", payload), payload, t1, base_url)


@pytest.mark.parametrize(
    ("base_url", "guarded"),
    [
        (DECLARED, True),  # the account's host and port
        ("smtps://{host}:{port}", True),
        ("smtp://127.0.0.1:2525", False),  # the operator's own server (HUB_PROVIDER_BASE_URLS)
        ("http://127.0.0.1:8099/smtp", False),  # the simulators' HTTP bridge
    ],
)
def test_only_a_destination_the_account_chose_is_marked_for_the_guard(
    base_url: str, guarded: bool
) -> None:
    request = request_to(smtp_account(2525), base_url)
    assert request.extensions[TENANT_DESTINATION] is guarded


async def test_the_allow_listed_server_gets_the_message_at_the_checked_address(
    sink_port: tuple[SmtpSink, int],
) -> None:
    sink, port = sink_port
    # HOST exists only in the fake resolver: the message can reach the sink only if the
    # transport connected to the address the guard resolved and checked.
    async with httpx.AsyncClient(mounts=smtp_mounts(guard=guard("127.0.0.1"))) as http:
        response = await http.send(request_to(smtp_account(port)))
    assert isinstance(ADAPTER.classify(response), Delivered)
    (mail,) = sink.messages()
    assert (mail.tenant, mail.rcpt_to) == ("t1", ("parent@example.com",))


async def test_without_the_allow_list_loopback_is_refused_and_nothing_is_sent(
    sink_port: tuple[SmtpSink, int],
) -> None:
    sink, port = sink_port
    async with httpx.AsyncClient(mounts=smtp_mounts(guard=guard())) as http:
        with pytest.raises(DestinationRefusedError, match=r"resolves to 127\.0\.0\.1, a loopback"):
            await http.send(request_to(smtp_account(port)))
        with pytest.raises(DestinationRefusedError, match=r"'127\.0\.0\.1' resolves"):
            await http.send(request_to(smtp_account(port, host="127.0.0.1")))
    assert sink.messages() == []


async def test_the_operators_server_is_not_guarded(sink_port: tuple[SmtpSink, int]) -> None:
    sink, port = sink_port
    async with httpx.AsyncClient(mounts=smtp_mounts(guard=guard())) as http:
        response = await http.send(request_to(smtp_account(port), f"smtp://127.0.0.1:{port}"))
    assert response.status_code == 200
    assert len(sink.messages()) == 1


@pytest.fixture
async def guarded_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(mounts=smtp_mounts(guard=guard())) as http:
        yield http


async def test_the_connector_fails_a_refused_destination_for_good_with_the_reason(
    sink_port: tuple[SmtpSink, int], guarded_client: httpx.AsyncClient
) -> None:
    sink, port = sink_port
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    executor = CommandExecutor(
        ADAPTER,
        settings=Settings(),
        base_url=DECLARED,
        tenants=tenants_with(smtp_account(port)),
        http=guarded_client,
        policy=RetryPolicy(attempts=5),
        sleep=sleep,
    )
    result = await executor.attempt(command("smtp", email()))
    assert (result.status, result.retryable, result.attempts) == (ResultStatus.FAILED, False, 1)
    assert result.error_code == DESTINATION_REFUSED
    assert result.error_message == (
        f"destination refused: {HOST!r} resolves to 127.0.0.1, a loopback address: refused"
    )
    assert (slept, sink.messages()) == ([], [])  # not retried, nothing sent


async def test_the_test_connection_reports_the_refusal(
    guarded_client: httpx.AsyncClient,
) -> None:
    account = ProviderAccount(label="smtp-primary", provider="smtp", config=smtp_account(2525))
    result = await probe(account, Settings(provider_base_urls={}), http=guarded_client)
    assert result.status == "unreachable"
    assert result.detail.startswith("destination refused: DestinationRefusedError: 'mail.t1.test'")


# --- saving an account: the admin API refuses a literal it would never call -----------

ACCOUNTS = "/v1/tenants/greenwood/accounts"


def smtp_settings(host: str) -> dict[str, str]:
    return {
        "host": host,
        "port": "587",
        "username": "hub@greenwood.school.example",
        "password": "smtp-password-2",
        "from_email": "office@greenwood.school.example",
    }


def smtp_fields(host: str) -> dict[str, object]:
    return {"label": "smtp-primary", "provider": "smtp", "fields": smtp_settings(host)}


def _api(home: Path, audit_sink: AuditSink | None = None, **overrides: object) -> Iterator[Api]:
    for api in open_api(home, audit_sink, **overrides):
        assert api.call("POST", "/v1/tenants", json={"id": "greenwood"}).status_code == 201
        yield api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from _api(tmp_path)


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("localhost", "a loopback name"),
        ("[::ffff:192.168.0.10]", "a private address (inside ::ffff:c0a8:a)"),
    ],
)
def test_an_account_naming_a_non_global_address_is_not_saved(api: Api, host: str, why: str) -> None:
    response = api.call("POST", ACCOUNTS, json=smtp_fields(host))
    assert response.status_code == 422
    (error,) = response.json()["fields"]
    assert error["field"] == "fields.host"
    assert error["message"] == f"{why}: the hub does not connect to it (HUB_URL_GUARD_ALLOW)"
    assert api.call("GET", ACCOUNTS, "viewer").json()["accounts"] == []


def test_a_name_is_saved_and_a_change_to_a_literal_is_refused(api: Api) -> None:
    assert api.call("POST", ACCOUNTS, json=smtp_fields("smtp.greenwood.example")).status_code == 201
    changed = api.call("PATCH", f"{ACCOUNTS}/smtp-primary", json={"fields": {"host": "10.0.0.7"}})
    assert changed.status_code == 422
    assert changed.json()["fields"][0]["field"] == "fields.host"
    kept = api.call("GET", f"{ACCOUNTS}/smtp-primary", "viewer").json()
    assert kept["settings"]["host"] == "smtp.greenwood.example"


def test_the_allow_list_lets_a_local_server_be_saved(tmp_path: Path) -> None:
    for api in _api(tmp_path, url_guard_allow="127.0.0.1"):
        assert api.call("POST", ACCOUNTS, json=smtp_fields("127.0.0.1")).status_code == 201


class Audit:
    def __init__(self) -> None:
        self.records: list[object] = []

    def record(self, entry: object) -> None:
        self.records.append(entry)

    def close(self) -> None:
        return None


def test_the_admin_test_connection_goes_through_the_guard(tmp_path: Path) -> None:
    # Saved as the CLI would (no save-time check there); the declared base URL, so the
    # account's own host is where the test connects: the guard refuses it first.
    sink = Audit()
    for api in _api(tmp_path, audit_sink=sink, provider_base_urls={}):
        api.service.add_account("greenwood", "smtp-primary", "smtp", smtp_settings("127.0.0.1"))
        response = api.call("POST", f"{ACCOUNTS}/smtp-primary/test", "operator")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "unreachable"
        assert body["detail"].startswith("destination refused: DestinationRefusedError")
        assert "a loopback address" in body["detail"]
