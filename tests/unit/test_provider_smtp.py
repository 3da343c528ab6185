"""SMTP: the RFC 5322 request, classify, SmtpTransport against a real SMTP server (the
simulators' aiosmtpd sink, in process) and the simulator server's HTTP bridge to it."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime

import httpx
import pytest
from connector_support import command, email, make_tenants, tenant
from pydantic import SecretStr
from tenant_accounts import primary

import providers
from connectors.executor import CommandExecutor
from connectors.retry import RetryPolicy
from core.masking import mask_headers
from core.ports import free_port
from core.settings import Settings
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from providers.base import Delivered, Rejected, RetryLater
from providers.probe import ProbeResult, probe
from providers.smtp import START_TLS, Smtp, SmtpAccount, target_url
from providers.smtp_transport import SmtpTransport, smtp_mounts
from schemas.events import ResultStatus, SendEmail
from simulators import create_app
from simulators.common import SimContext
from simulators.smtp import SmtpSink, sink_for, start_smtp_sink

pytestmark = pytest.mark.anyio

ADAPTER = Smtp()
TENANTS = make_tenants()
T1 = tenant(TENANTS)
BASE = "smtp://{host}:{port}"


def account(**overrides: object) -> SmtpAccount:
    return SmtpAccount.model_validate({**primary(T1, SmtpAccount).model_dump(), **overrides})


def with_smtp(**overrides: object) -> Tenant:
    config = account(**overrides)
    return Tenant(
        id="t1", accounts=(ProviderAccount(label="smtp-x", provider="smtp", config=config),)
    )


def build(
    base_url: str = BASE, t: Tenant = T1, payload: SendEmail | None = None, key: str = "key-1"
) -> httpx.Request:
    payload = payload or email()
    return ADAPTER.build_request(command("smtp", payload, key=key), payload, t, base_url)


def parsed(request: httpx.Request) -> EmailMessage:
    message = message_from_bytes(request.content, policy=default)
    assert isinstance(message, EmailMessage)
    return message


# --- the request ----------------------------------------------------------------------


def test_the_request_carries_the_rfc5322_message_and_the_login() -> None:
    request = build()
    login = primary(T1, SmtpAccount)
    assert (request.method, str(request.url)) == ("POST", "smtp://smtp.t1.school.example:587/")
    token = base64.b64encode(f"{login.username}:{login.password.get_secret_value()}".encode())
    assert request.headers["authorization"] == f"Basic {token.decode()}"
    assert request.headers["content-type"] == "message/rfc822"
    assert request.extensions[START_TLS] is False  # the demo account talks to the local sink
    message = parsed(request)
    assert message["From"] == "office@t1.school.example"
    assert message["To"] == '"Mrs. Sharma" <parent@example.com>'
    assert message["Subject"] == "Fee receipt"
    assert message["X-Hub-Idempotency-Key"] == "key-1"
    assert re.fullmatch(r"<[^<>@\s]+@t1\.school\.example>", message["Message-ID"])
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert (plain.get_content_type(), plain.get_content()) == ("text/plain", "Thank you\r\n")
    assert (html.get_content_type(), html.get_content()) == ("text/html", "<p>Thank you</p>\r\n")


def test_the_wire_form_uses_crlf_line_endings() -> None:
    raw = build().content
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_a_text_only_mail_is_one_plain_part() -> None:
    message = parsed(build(payload=email(to_name=None, html=None)))
    assert message["To"] == "parent@example.com"
    assert (message.get_content_type(), message.get_content()) == ("text/plain", "Thank you\r\n")


def test_a_line_break_in_the_subject_cannot_start_a_header() -> None:
    payload = email().model_copy(update={"subject": "Fee receipt\r\nBcc: everyone@example.com"})
    message = parsed(build(payload=payload))
    assert message["Subject"] == "Fee receipt Bcc: everyone@example.com"
    assert message["Bcc"] is None


def test_each_build_has_its_own_message_id() -> None:
    assert parsed(build())["Message-ID"] != parsed(build())["Message-ID"]


def test_the_login_header_is_masked_in_logs_and_audit() -> None:
    assert mask_headers(build().headers)["authorization"] == "***"


@pytest.mark.parametrize(
    ("base_url", "overrides", "url", "start_tls"),
    [
        (BASE, {"starttls": True}, "smtp://smtp.t1.school.example:587/", True),
        (BASE, {"use_tls": True, "port": 465}, "smtps://smtp.t1.school.example:465/", False),
        (BASE, {"host": "::1", "port": 2525}, "smtp://[::1]:2525/", False),
        ("smtp://127.0.0.1:2525", {"use_tls": True}, "smtp://127.0.0.1:2525/", False),
        ("smtps://relay.example:465/", {}, "smtps://relay.example:465/", False),
        ("http://127.0.0.1:8099/smtp", {}, "http://127.0.0.1:8099/smtp/send", False),
    ],
)
def test_where_the_message_goes(
    base_url: str, overrides: dict[str, object], url: str, start_tls: bool
) -> None:
    request = build(base_url, with_smtp(**overrides))
    assert str(request.url) == url
    assert request.extensions[START_TLS] is start_tls


def test_the_probe_is_a_get_to_the_same_server_or_the_bridges_login() -> None:
    request = ADAPTER.probe_request(T1, None, BASE)
    assert (request.method, str(request.url), request.content) == (
        "GET",
        "smtp://smtp.t1.school.example:587/",
        b"",
    )
    assert request.headers["authorization"] == build().headers["authorization"]
    bridge = ADAPTER.probe_request(T1, None, "http://127.0.0.1:8099/smtp")
    assert str(bridge.url) == "http://127.0.0.1:8099/smtp/login"


def test_a_base_url_of_another_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="smtp://, smtps://"):
        target_url("ftp://relay.example", account())


# --- classify -------------------------------------------------------------------------


def test_an_accepted_message_is_delivered_with_its_message_id() -> None:
    response = httpx.Response(
        200, json={"message_id": "<a.b@t1.school.example>", "response": "2.0.0 Ok: queued as X"}
    )
    assert ADAPTER.classify(response) == Delivered(
        "<a.b@t1.school.example>",
        200,
        {"message_id": "<a.b@t1.school.example>", "response": "2.0.0 Ok: queued as X"},
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            503,
            {"code": 451, "message": "4.3.0 Try again later"},
            RetryLater("SMTP 451 4.3.0 Try again later", 503, "451"),
        ),
        (
            422,
            {"code": 550, "message": "5.1.1 User unknown"},
            Rejected("SMTP 550 5.1.1 User unknown", 422, "550"),
        ),
        (
            401,
            {"code": 535, "message": "5.7.8 Authentication credentials invalid"},
            Rejected("SMTP 535 5.7.8 Authentication credentials invalid", 401, "535"),
        ),
        (
            422,
            {"code": None, "message": "SMTP STARTTLS extension not supported by server."},
            Rejected("SMTP STARTTLS extension not supported by server.", 422, None),
        ),
        (200, {"response": "250 ok"}, Rejected("OK", 200, None)),
    ],
)
def test_refusals(status: int, body: dict[str, object], expected: object) -> None:
    assert ADAPTER.classify(httpx.Response(status, json=body)) == expected


def test_the_messaging_declaration() -> None:
    declared = providers.get("smtp")
    assert declared.category == "email"
    assert declared.base_urls == {"api": "smtp://{host}:{port}"}
    assert declared.simulator_paths == {"api": "/smtp"}
    assert declared.secret_fields == ("password",)
    assert declared.messaging is not None
    assert declared.messaging.rate_per_second is None
    assert declared.messaging.receipts is False
    assert declared.messaging.account_errors == frozenset({"535"})


# --- SmtpTransport against a real SMTP server ------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Server:
    sink: SmtpSink
    url: str


@pytest.fixture
def server() -> Iterator[Server]:
    login = primary(T1, SmtpAccount)
    sink = SmtpSink(lambda: [("t1", login)], lambda a: a == "gone@example.com")
    port = free_port()
    controller = start_smtp_sink("127.0.0.1", port, sink)
    try:
        yield Server(sink, f"smtp://127.0.0.1:{port}")
    finally:
        controller.stop()


@pytest.fixture
async def mounted() -> AsyncIterator[httpx.AsyncClient]:
    # What the connector worker (and the test connection's client) mounts.
    async with httpx.AsyncClient(mounts=smtp_mounts()) as client:
        yield client


async def test_a_message_is_delivered_and_the_server_has_it(
    server: Server, mounted: httpx.AsyncClient
) -> None:
    request = build(server.url, key="fee:inv-1")
    outcome = ADAPTER.classify(await mounted.send(request))
    message_id = parsed(request)["Message-ID"]
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref == message_id
    assert re.fullmatch(r"2\.0\.0 Ok: queued as SIM0000000\d", outcome.details["response"])
    (mail,) = server.sink.messages()
    assert (mail.tenant, mail.mail_from, mail.rcpt_to) == (
        "t1",
        "office@t1.school.example",
        ("parent@example.com",),
    )
    assert (mail.message_id, mail.subject, mail.idempotency_key) == (
        message_id,
        "Fee receipt",
        "fee:inv-1",
    )
    assert message_from_bytes(mail.data, policy=default)["Message-ID"] == message_id


async def test_a_4xx_reply_is_retried(server: Server, mounted: httpx.AsyncClient) -> None:
    server.sink.refuse("busy@example.com", 451, "4.2.1 Mailbox busy, try later")
    request = build(server.url, payload=email(to="busy@example.com"))
    assert ADAPTER.classify(await mounted.send(request)) == RetryLater(
        "SMTP 451 4.2.1 Mailbox busy, try later", 503, "451"
    )
    assert server.sink.messages() == []


async def test_a_5xx_reply_is_rejected(server: Server, mounted: httpx.AsyncClient) -> None:
    server.sink.refuse("nobody@example.com", 550, "5.1.1 No such user")
    request = build(server.url, payload=email(to="nobody@example.com"))
    outcome = ADAPTER.classify(await mounted.send(request))
    assert outcome == Rejected("SMTP 550 5.1.1 No such user", 422, "550")
    assert "550" not in providers.get("smtp").messaging.account_errors  # type: ignore[union-attr]


async def test_an_undeliverable_address_is_refused_at_rcpt(
    server: Server, mounted: httpx.AsyncClient
) -> None:
    request = build(server.url, payload=email(to="gone@example.com"))
    assert ADAPTER.classify(await mounted.send(request)) == Rejected(
        "SMTP 550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown", 422, "550"
    )


async def test_a_wrong_password_is_535_an_account_error(
    server: Server, mounted: httpx.AsyncClient
) -> None:
    request = build(server.url, with_smtp(password="not-the-password"))
    outcome = ADAPTER.classify(await mounted.send(request))
    assert outcome == Rejected("SMTP 535 5.7.8 Authentication credentials invalid", 401, "535")
    assert "535" in providers.get("smtp").messaging.account_errors  # type: ignore[union-attr]
    assert server.sink.messages() == []


async def test_starttls_required_by_the_account_but_not_offered_is_refused(
    server: Server, mounted: httpx.AsyncClient
) -> None:
    request = build(server.url, with_smtp(starttls=True))
    outcome = ADAPTER.classify(await mounted.send(request))
    assert outcome == Rejected("SMTP STARTTLS extension not supported by server.", 422, None)
    assert server.sink.messages() == []


async def test_the_test_connection_logs_in_and_sends_nothing(
    server: Server, mounted: httpx.AsyncClient
) -> None:
    settings = Settings(provider_base_urls={"smtp": server.url})
    (good,) = T1.accounts_for("smtp")
    assert await probe(good, settings, http=mounted) == ProbeResult(
        "ok", "smtp answered 200 to GET /", 200
    )
    wrong = with_smtp(password="not-the-password").accounts[0]
    assert await probe(wrong, settings, http=mounted) == ProbeResult(
        "auth_failed", "401 from smtp: SMTP 535 5.7.8 Authentication credentials invalid (535)", 401
    )
    assert server.sink.messages() == []


async def test_a_server_that_is_down_is_a_connect_error(mounted: httpx.AsyncClient) -> None:
    request = build(f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(httpx.ConnectError):
        await mounted.send(request)


async def test_through_the_executor_down_is_retryable_and_up_is_delivered(
    server: Server, mounted: httpx.AsyncClient
) -> None:
    def executor(base_url: str) -> CommandExecutor:
        async def no_sleep(_seconds: float) -> None:
            return None

        return CommandExecutor(
            ADAPTER,
            settings=Settings(),
            base_url=base_url,
            tenants=TENANTS,
            http=mounted,
            policy=RetryPolicy(attempts=2),
            sleep=no_sleep,
        )

    cmd = command("smtp", email())
    down = await executor(f"smtp://127.0.0.1:{free_port()}").attempt(cmd)
    assert (down.status, down.retryable, down.attempts) == (ResultStatus.FAILED, True, 2)
    assert down.error_message is not None
    assert down.error_message.startswith("network error: ConnectError")
    assert down.details == {}  # never in doubt: nothing reached a server
    up = await executor(server.url).attempt(cmd)
    assert (up.status, up.attempts) == (ResultStatus.DELIVERED, 1)
    (mail,) = server.sink.messages()
    assert up.provider_ref == mail.message_id


async def test_the_transport_sends_only_smtp_urls() -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await SmtpTransport().handle_async_request(httpx.Request("GET", "http://sim/"))


async def test_a_body_that_is_not_a_message_is_refused_before_connecting() -> None:
    request = httpx.Request("POST", "smtp://127.0.0.1:1/", json={"to": "x"})
    response = await SmtpTransport().handle_async_request(request)
    assert (response.status_code, response.json()["code"]) == (422, None)


# --- the simulator server: its HTTP bridge and its sink --------------------------------


@pytest.fixture
def tenants() -> TenantDirectory:
    return make_tenants()


@pytest.fixture
async def sim(tenants: TenantDirectory) -> AsyncIterator[tuple[httpx.AsyncClient, SimContext]]:
    app = create_app(
        tenants,
        webhook_url_template="http://ingress.test/webhooks/{provider}/{tenant}",
        webhook_transport=httpx.MockTransport(lambda r: httpx.Response(200)),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client, app.state.sim


async def test_the_bridge_accepts_as_the_transport_does(
    sim: tuple[httpx.AsyncClient, SimContext], tenants: TenantDirectory
) -> None:
    client, ctx = sim
    t1 = tenant(tenants)
    payload = email()
    request = ADAPTER.build_request(command("smtp", payload), payload, t1, "http://sim/smtp")
    outcome = ADAPTER.classify(await client.send(request))
    assert isinstance(outcome, Delivered)
    (mail,) = sink_for(ctx).messages("t1")
    assert outcome.provider_ref == mail.message_id == parsed(request)["Message-ID"]
    listed = (await client.get("/smtp/messages", params={"tenant": "t1"})).json()["messages"]
    assert [m["message_id"] for m in listed] == [mail.message_id]


async def test_the_bridge_refuses_a_wrong_password_and_an_undeliverable_address(
    sim: tuple[httpx.AsyncClient, SimContext], tenants: TenantDirectory
) -> None:
    client, ctx = sim
    wrong = SmtpAccount.model_validate(
        {**primary(tenant(tenants), SmtpAccount).model_dump(), "password": "nope-nope"}
    )
    t_wrong = Tenant(id="t1", accounts=(ProviderAccount(label="s", provider="smtp", config=wrong),))
    payload = email()
    request = ADAPTER.build_request(command("smtp", payload), payload, t_wrong, "http://sim/smtp")
    assert ADAPTER.classify(await client.send(request)) == Rejected(
        "SMTP 535 5.7.8 Authentication credentials invalid", 401, "535"
    )
    await client.post(
        "/_sim/messages/undeliverable", json={"addresses": ["gone@example.com"], "provider": "smtp"}
    )
    payload = email(to="gone@example.com")
    request = ADAPTER.build_request(
        command("smtp", payload), payload, tenant(tenants), "http://sim/smtp"
    )
    assert ADAPTER.classify(await client.send(request)) == Rejected(
        "SMTP 550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown", 422, "550"
    )
    assert sink_for(ctx).messages() == []


async def test_the_bridge_answers_the_test_connection(
    sim: tuple[httpx.AsyncClient, SimContext], tenants: TenantDirectory
) -> None:
    client, ctx = sim
    settings = Settings(provider_base_urls={"smtp": "http://sim/smtp"})
    (good,) = tenant(tenants).accounts_for("smtp")
    assert await probe(good, settings, http=client) == ProbeResult(
        "ok", "smtp answered 200 to GET /smtp/login", 200
    )
    config = good.config.model_copy(update={"password": SecretStr("nope-nope")})
    wrong = good.model_copy(update={"config": config})
    assert await probe(wrong, settings, http=client) == ProbeResult(
        "auth_failed", "401 from smtp: SMTP 535 5.7.8 Authentication credentials invalid (535)", 401
    )
    assert sink_for(ctx).messages() == []


async def test_the_apps_sink_served_over_smtp_shows_on_the_http_side(
    sim: tuple[httpx.AsyncClient, SimContext], tenants: TenantDirectory, mounted: httpx.AsyncClient
) -> None:
    client, ctx = sim
    port = free_port()
    controller = start_smtp_sink("127.0.0.1", port, sink_for(ctx))
    try:
        payload = email()
        request = ADAPTER.build_request(
            command("smtp", payload), payload, tenant(tenants), f"smtp://127.0.0.1:{port}"
        )
        assert isinstance(ADAPTER.classify(await mounted.send(request)), Delivered)
    finally:
        controller.stop()
    listed = (await client.get("/smtp/messages")).json()["messages"]
    assert [(m["tenant"], m["rcpt_to"]) for m in listed] == [("t1", ["parent@example.com"])]
    await client.post("/_sim/reset")
    assert (await client.get("/smtp/messages")).json() == {"messages": []}
