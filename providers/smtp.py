"""SMTP submission (RFC 6409 on 587 with STARTTLS, or implicit TLS on 465): not HTTP.

It keeps the one adapter contract all the same. `build_request` returns an
`httpx.Request` to `smtp://host:port/` (`smtps://` for implicit TLS) whose body is the
RFC 5322 message (`message/rfc822`: From, To, Subject, Date, Message-ID,
X-Hub-Idempotency-Key, text and an optional html alternative) and whose
`Authorization: Basic` header carries the account's username and password (a header the
audit masks). `providers.smtp_transport.SmtpTransport`, mounted on the connector's
client for `smtp://` and `smtps://`, speaks SMTP with aiosmtplib and answers a synthetic
HTTP response that `classify` reads:

- 250: 200 `{"message_id": <the Message-ID header>, "response": <the server's reply>}`;
- a 4xx reply (transient, RFC 5321 4.2.1): 503 `{"code", "message"}`, retried;
- a 5xx reply (permanent): 422 `{"code", "message"}`, rejected; the SMTP code is the
  error code. A refused login (530/534/535) is 401 instead, still rejected; 535
  (authentication failed) is the account's failure (the backup is tried);
- no connection: httpx.ConnectError, which the executor retries as never sent;
  a connection lost or timed out mid-conversation: a read timeout/protocol error, retried
  as in doubt (SMTP has no idempotency; a retry after DATA may send a duplicate).

Where the message goes: the declared base URL `smtp://{host}:{port}` takes the account's
host and port (`smtps` when the account says use_tls). A configured base URL wins:
`smtp://127.0.0.1:2525` (HUB_PROVIDER_BASE_URLS {"smtp": ...}) sends every account to
that server instead, e.g. the simulators' SMTP sink. An http(s) base URL is the
simulator server itself (`hub run` points every provider there): the request then goes
over HTTP to its `/smtp/send` bridge, which answers exactly as the transport would.

The account's own server is a destination the tenant chose: `SmtpTransport` resolves
its host, refuses any address that is not global (core.url_guard, HUB_URL_GUARD_ALLOW
lets a local one through) and connects to the address it checked; the request says
so with the TENANT_DESTINATION extension. A configured server is not guarded.

Test connection: a GET to the same place: the transport connects, upgrades, logs in and
quits without sending anything (the bridge: `GET /smtp/login`); 200, or 401 for a refused
login.

Facts: ../shared/providers.md section 12 (aiosmtplib; 4xx transient, 5xx permanent,
connection errors transient, no idempotency). Not checked further.
"""

from __future__ import annotations

import base64
import binascii
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, default
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.guarded_http import TENANT_DESTINATION
from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    basic_auth,
    classify_failure,
    json_or_empty,
)
from providers.spec import API, Messaging, Provider
from schemas.events import ConnectorCommand, SendEmail

SCHEMES = ("smtp", "smtps")
# The account field naming the server the hub connects to (a destination the tenant chose).
DESTINATION_FIELD = "host"
DEFAULT_BASE_URL = "smtp://{host}:{port}"
IDEMPOTENCY_HEADER = "X-Hub-Idempotency-Key"
CONTENT_TYPE = "message/rfc822"
# The request extension telling the transport whether to upgrade with STARTTLS.
START_TLS = "smtp_start_tls"
# Where the simulator server takes a message, or only a login, over HTTP (an http(s) base URL).
BRIDGE_PATH = "/send"
BRIDGE_LOGIN_PATH = "/login"
# The HTTP statuses of the synthetic answers (SmtpTransport and the simulator's bridge).
ACCEPTED, TRANSIENT, PERMANENT, UNAUTHORIZED = 200, 503, 422, 401
AUTH_FAILED = 535
# Authentication required (530), mechanism too weak (534), credentials invalid (535).
AUTH_CODES = frozenset({530, 534, AUTH_FAILED})


class SmtpAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    username: str
    password: SecretStr
    from_email: str
    # Upgrade with STARTTLS (required: a server that does not offer it is refused, never
    # used in the clear). Ignored when use_tls: the connection is TLS from the start.
    starttls: bool = True
    use_tls: bool = False  # implicit TLS ("SMTPS", usually port 465)


def refusal_status(code: int | None) -> int:
    """The synthetic answer's status for a refusal: 4xx replies are transient; a refused
    login is 401 (the test connection reports "auth_failed"); the rest are permanent (a
    5xx reply, or no reply code at all: the server lacks what the account needs)."""
    if code in AUTH_CODES:
        return UNAUTHORIZED
    return TRANSIENT if code is not None and 400 <= code < 500 else PERMANENT


def accepted_body(message_id: str, reply: str) -> dict[str, Any]:
    return {"message_id": message_id, "response": reply}


def refused_body(code: int | None, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def envelope(raw: bytes) -> tuple[str, list[str], str]:
    """The envelope sender, recipients and Message-ID of an RFC 5322 message's headers."""
    headers = BytesHeaderParser(policy=default).parsebytes(raw)
    sender = parseaddr(str(headers.get("From", "")))[1]
    recipients = [a for _, a in getaddresses([str(v) for v in headers.get_all("To", [])]) if a]
    return sender, recipients, str(headers.get("Message-ID", ""))


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _one_line(text: str) -> str:
    """A header value cannot hold a line break (it would start a header of its own)."""
    return " ".join(text.splitlines()).strip()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def target_url(base_url: str, account: SmtpAccount, bridge_path: str = BRIDGE_PATH) -> str:
    """Where the message goes: the account's server, a configured one, or the bridge."""
    scheme = base_url.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        return base_url.rstrip("/") + bridge_path
    if scheme not in SCHEMES:
        raise ValueError(f"an SMTP base URL is smtp://, smtps:// or the simulator's: {base_url}")
    if "{host}" in base_url:  # the account decides, TLS mode included
        chosen = "smtps" if account.use_tls else "smtp"
        base_url = chosen + base_url[len(scheme) :]
    url = base_url.replace("{host}", _host(account.host)).replace("{port}", str(account.port))
    return url.rstrip("/") + "/"


def account_decides(base_url: str) -> bool:
    """Whether the account's host and port are where the message goes (the declared
    base URL), so the SSRF guard applies; a configured server is the operator's."""
    scheme = base_url.split("://", 1)[0].lower()
    return scheme in SCHEMES and "{host}" in base_url


def _extensions(base_url: str, account: SmtpAccount) -> dict[str, object]:
    return {
        START_TLS: account.starttls and not account.use_tls,
        TENANT_DESTINATION: account_decides(base_url),
    }


def compose(command: ConnectorCommand, payload: SendEmail, account: SmtpAccount) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = account.from_email
    to_name = _one_line(payload.to_name or "")
    to = _one_line(payload.to)
    message["To"] = formataddr((to_name, to)) if to_name else to
    message["Subject"] = _one_line(payload.subject)
    message["Date"] = formatdate(usegmt=True)
    domain = parseaddr(account.from_email)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message[IDEMPOTENCY_HEADER] = _one_line(command.idempotency_key)
    message.set_content(payload.text)
    if payload.html:
        message.add_alternative(payload.html, subtype="html")
    return message


class Smtp:
    name = "smtp"
    category: Category = "email"
    payload_type = SendEmail

    def build_request(
        self, command: ConnectorCommand, payload: SendEmail, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.account("smtp", SmtpAccount, command.account)
        headers = {
            **basic_auth(account.username, account.password.get_secret_value()),
            "Content-Type": CONTENT_TYPE,
        }
        return httpx.Request(
            "POST",
            target_url(base_url, account),
            content=compose(command, payload, account).as_bytes(),
            headers=headers,
            extensions=_extensions(base_url, account),
        )

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """A GET: connect, upgrade, log in and quit, sending nothing (SmtpTransport)."""
        account = tenant.account("smtp", SmtpAccount, label)
        return httpx.Request(
            "GET",
            target_url(base_url, account, BRIDGE_LOGIN_PATH),
            headers=basic_auth(account.username, account.password.get_secret_value()),
            extensions=_extensions(base_url, account),
        )

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # the credentials travel in build_request's Authorization header

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        message_id = body.get("message_id")
        if response.status_code == ACCEPTED and isinstance(message_id, str) and message_id:
            reply = str(body.get("response") or "")
            return Delivered(message_id, ACCEPTED, {"message_id": message_id, "response": reply})
        code = body.get("code")
        message = str(body.get("message") or response.reason_phrase or "error")
        reason = f"SMTP {code} {message}" if code is not None else message
        return classify_failure(response, reason, str(code) if code is not None else None)


PROVIDER = Provider(
    name="smtp",
    title="SMTP",
    category=Smtp.category,
    account_model=SmtpAccount,
    adapter=Smtp(),
    # The account's own server. Every base URL needs a simulator path: "/smtp" is the
    # simulator server's HTTP bridge to its SMTP sink (simulators/smtp.py).
    base_urls={API: DEFAULT_BASE_URL},
    simulator_paths={API: "/smtp"},
    summary="Email: any SMTP server (submission with STARTTLS or implicit TLS), aiosmtplib",
    docs_url="https://www.rfc-editor.org/rfc/rfc6409",
    messaging=Messaging(
        rate_per_second=None,  # a property of each server, none documented here
        receipts=False,  # SMTP reports only bounces, by mail: accepted is final
        account_errors=frozenset({str(AUTH_FAILED)}),
    ),
)
