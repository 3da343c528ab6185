"""An SMTP sink for the tenants' `smtp` accounts, and its HTTP face on the simulator server.

`SmtpSink` is what the simulated server knows: the tenants' logins (username and
password of their smtp accounts), the recipients it refuses, the mail it took. Two
doors lead to it:

- `start_smtp_sink(host, port, sink)`: a real SMTP server (aiosmtpd, in a thread of its
  own) requiring AUTH (PLAIN/LOGIN, allowed without TLS: it is local). A refused login
  is 535 5.7.8, a refused recipient its own reply at RCPT, a message 250 at DATA.
  `providers.smtp_transport.SmtpTransport` talks to it with a base URL smtp://host:port.
- `POST /smtp/send` (a message/rfc822 body with `Authorization: Basic`): the same checks
  over HTTP, answered as SmtpTransport answers (200 / 503 / 422 / 401 with the SMTP code),
  for an http base URL (`hub run` points every provider at the simulator server);
  `GET /smtp/login` only logs in (the test connection).

`GET /smtp/messages[?tenant=]` lists what the sink took, oldest first.

Which recipients are refused: the messaging rules of every simulator (`POST
/_sim/messages/undeliverable`: 550 5.1.1 at RCPT), and per address `sink.refuse(address,
code, message)` (tests: 451 for a transient refusal). SMTP reports no delivery receipts.
"""

from __future__ import annotations

import hmac
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from email.parser import BytesHeaderParser
from email.policy import default
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.base import RETRYABLE_STATUSES
from providers.smtp import (
    AUTH_FAILED,
    CONTENT_TYPE,
    IDEMPOTENCY_HEADER,
    SmtpAccount,
    accepted_body,
    envelope,
    refusal_status,
    refused_body,
)
from simulators.common import Call, ProviderSpec, SimContext, basic_credentials, provider_endpoint

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

MOUNT = "/smtp"
AUTH_INVALID = "5.7.8 Authentication credentials invalid"  # aiosmtpd's (and Postfix's) text


@dataclass(frozen=True)
class Reply:
    code: int
    message: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def line(self) -> str:
        return f"{self.code} {self.message}"


@dataclass(frozen=True)
class ReceivedMail:
    id: str
    tenant: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    message_id: str
    subject: str
    idempotency_key: str
    data: bytes
    received_at: float

    def summary(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["data"] = self.data.decode("utf-8", "replace")
        return shown


Accounts = Callable[[], Iterable[tuple[str, SmtpAccount]]]


class SmtpSink:
    """The simulated server's logins, refusals and mailbox; safe across threads."""

    def __init__(
        self,
        accounts: Accounts,
        undeliverable: Callable[[str], bool] = lambda _address: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = accounts
        self.undeliverable = undeliverable
        self.clock = clock
        self._lock = threading.Lock()
        self._refusals: dict[str, Reply] = {}
        self._mail: list[ReceivedMail] = []
        self._next = 1

    def login(self, username: str, password: str) -> str | None:
        """The tenant whose smtp account this login is, or None."""
        for tenant_id, account in self.accounts():
            same_user = hmac.compare_digest(account.username.encode(), username.encode())
            secret = account.password.get_secret_value().encode()
            if same_user and hmac.compare_digest(secret, password.encode()):
                return tenant_id
        return None

    def refuse(self, address: str, code: int, message: str) -> None:
        with self._lock:
            self._refusals[address.strip().lower()] = Reply(code, message)

    def recipient(self, address: str) -> Reply:
        with self._lock:
            refusal = self._refusals.get(address.strip().lower())
        if refusal is not None:
            return refusal
        if self.undeliverable(address):
            return Reply(550, f"5.1.1 <{address}>: Recipient address rejected: User unknown")
        return Reply(250, "2.1.5 OK")

    def deliver(self, tenant: str, mail_from: str, rcpt_to: Iterable[str], data: bytes) -> Reply:
        headers = BytesHeaderParser(policy=default).parsebytes(data)
        with self._lock:
            queue_id = f"SIM{self._next:08X}"
            self._next += 1
            self._mail.append(
                ReceivedMail(
                    id=queue_id,
                    tenant=tenant,
                    mail_from=mail_from,
                    rcpt_to=tuple(rcpt_to),
                    message_id=str(headers.get("Message-ID", "")),
                    subject=str(headers.get("Subject", "")),
                    idempotency_key=str(headers.get(IDEMPOTENCY_HEADER, "")),
                    data=data,
                    received_at=self.clock(),
                )
            )
        return Reply(250, f"2.0.0 Ok: queued as {queue_id}")

    def messages(self, tenant: str | None = None) -> list[ReceivedMail]:
        with self._lock:
            return [m for m in self._mail if tenant in (None, m.tenant)]

    def clear(self) -> None:
        with self._lock:
            self._mail.clear()
            self._refusals.clear()


class _Handler:
    """aiosmtpd's handler hooks, answering from the sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.sink.recipient(address)
        if reply.ok:
            envelope.rcpt_tos.append(address)
        return reply.line()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        tenant = str(session.auth_data or "")
        return self.sink.deliver(tenant, str(envelope.mail_from), envelope.rcpt_tos, data).line()


def _authenticator(sink: SmtpSink) -> Callable[..., AuthResult]:
    from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: PLC0415 - dev-only package

    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        tenant = sink.login(
            auth_data.login.decode("utf-8", "replace"),
            auth_data.password.decode("utf-8", "replace"),
        )
        return AuthResult(success=tenant is not None, handled=False, auth_data=tenant)

    return check


def start_smtp_sink(host: str, port: int, sink: SmtpSink) -> Controller:
    """Serve `sink` over SMTP on host:port in a thread; `controller.stop()` ends it."""
    from aiosmtpd.controller import Controller  # noqa: PLC0415 - dev-only package

    # aiosmtpd warns on each connection that AUTH without TLS is unsafe: here it is the point.
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
    controller = Controller(
        _Handler(sink),
        hostname=host,
        port=port,
        authenticator=_authenticator(sink),
        auth_required=True,
        auth_require_tls=False,  # a local sink without TLS (demo accounts: starttls = false)
    )
    controller.start()
    return controller


_SINKS: dict[int, SmtpSink] = {}


def sink_for(ctx: SimContext) -> SmtpSink:
    """This simulator app's sink: its tenants' smtp accounts, its messaging rules."""
    key = id(ctx.state)
    found = _SINKS.get(key)
    if found is None:

        def accounts() -> Iterable[tuple[str, SmtpAccount]]:
            return [(t.id, a) for t, a in ctx.accounts("smtp", SmtpAccount)]

        def undeliverable(address: str) -> bool:
            return ctx.receipts.outcome("smtp", address) == "undelivered"

        def now() -> float:  # read at each call: tests swap the state's clock
            return ctx.state.clock()

        found = _SINKS[key] = SmtpSink(accounts, undeliverable, now)
        weakref.finalize(ctx.state, _SINKS.pop, key, None)
        ctx.state.on_reset.append(found.clear)
    return found


# --- the HTTP bridge ----------------------------------------------------------------


def _answer(reply: Reply) -> JSONResponse:
    return JSONResponse(refused_body(reply.code, reply.message), refusal_status(reply.code))


def error_for_status(status: int) -> Response:
    """A fault's answer: a transient SMTP refusal for a retryable status, else a permanent one."""
    if status in RETRYABLE_STATUSES or status >= 500:
        return JSONResponse(refused_body(451, "4.3.0 Try again later"), status)
    return JSONResponse(refused_body(554, "5.0.0 Transaction failed"), status)


def _spec(ctx: SimContext) -> ProviderSpec:
    def authenticate(_ctx: SimContext, headers: Headers) -> Tenant | None:
        login = basic_credentials(headers)
        tenant_id = sink_for(ctx).login(*login) if login else None
        return ctx.tenants.get(tenant_id) if tenant_id else None

    return ProviderSpec(name="smtp", authenticate=authenticate, error_for_status=error_for_status)


def _send(ctx: SimContext, call: Call) -> Response:
    sink = sink_for(ctx)
    if call.tenant is None:
        return _answer(Reply(AUTH_FAILED, AUTH_INVALID))
    if call.request.headers.get("content-type", "").split(";")[0].strip() != CONTENT_TYPE:
        return _answer(Reply(554, f"5.6.0 the body must be {CONTENT_TYPE}"))
    sender, recipients, message_id = envelope(call.raw)
    if not sender or not recipients:
        return _answer(Reply(554, "5.5.1 no From or no To address"))
    for address in recipients:
        reply = sink.recipient(address)
        if not reply.ok:
            return _answer(reply)
    reply = sink.deliver(call.tenant.id, sender, recipients, call.raw)
    # As aiosmtplib reports an accepted message: the reply's text, without its code.
    return JSONResponse(accepted_body(message_id, reply.message))


def _login(call: Call) -> Response:
    """The test connection: a login, nothing sent."""
    if call.tenant is None:
        return _answer(Reply(AUTH_FAILED, AUTH_INVALID))
    return JSONResponse({"response": "logged in"})


def _messages(ctx: SimContext, call: Call) -> Response:
    tenant = call.request.query_params.get("tenant")
    return JSONResponse({"messages": [m.summary() for m in sink_for(ctx).messages(tenant)]})


def routes(ctx: SimContext) -> list[BaseRoute]:
    sink_for(ctx)  # created with the app, so a reset clears it from the start
    spec = _spec(ctx)
    return [
        Route("/send", provider_endpoint(ctx, spec, partial(_send, ctx)), methods=["POST"]),
        Route("/login", provider_endpoint(ctx, spec, _login), methods=["GET"]),
        Route(
            "/messages",
            provider_endpoint(ctx, spec, partial(_messages, ctx), faultable=False),
            methods=["GET"],
        ),
    ]
