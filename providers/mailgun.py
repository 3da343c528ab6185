"""Mailgun Messages API: POST /v3/{domain}/messages, HTTP Basic `api:<API key>`.

Facts (../shared/providers.md section 11; documentation.mailgun.com api-reference):

- Hosts: https://api.mailgun.net (US), https://api.eu.mailgun.net (EU). A domain lives
  in one region; the account's `region = "eu"` sends to the EU host when the base URL
  is the declared US default (a configured base URL, the simulator's, wins).
- A form body: `from`, `to`, `subject`, `text`, `html`; `v:<name>` user variables come
  back in every webhook's `event-data.user-variables` (the command's `idempotency_key`
  and `command_id`); `h:<Header>` adds a MIME header (`X-Hub-Idempotency-Key`).
- 200 `{"id": "<20111114174239.25659.5817@yourdomain>", "message": "Queued. Thank you."}`:
  the id is the Message-Id; webhooks name it without the angle brackets
  (`event-data.message.headers.message-id`), so the provider_ref is the bare id.
- 400 with a JSON `message`; 401 (a plain-text "Forbidden"), 403, 404 (an unknown
  domain), 413; 429 and 5xx are retried. Mailgun's errors carry no code: the HTTP
  status is the error code. 401, 403 and 404 mean the account (key, domain) is
  unusable, not the message.
- No server-side idempotency (documented none): the connector's ledger sends once.
- No documented per-account send rate (unconfirmed): none declared.

Test connection: GET /v3/domains/{domain}, the account's own domain. It needs the
account's primary API key: a domain sending key (limited to /messages) can send but
fails the test (401).

Webhooks (signed inside the JSON body, HMAC-SHA256 of timestamp + token with the HTTP
webhook signing key) and their receipts: `providers.mailgun_receipts`.
"""

from __future__ import annotations

from email.utils import formataddr
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    Rejected,
    basic_auth,
    classify_failure,
    json_or_empty,
)
from providers.mailgun_receipts import (
    MailgunVerifier,
    event_id,
    event_type,
    normalize_mailgun,
)
from providers.spec import API, Messaging, Provider, Webhooks
from schemas.events import ConnectorCommand, SendEmail

US_BASE_URL = "https://api.mailgun.net"
EU_BASE_URL = "https://api.eu.mailgun.net"
IDEMPOTENCY_HEADER = "X-Hub-Idempotency-Key"
# How much of a non-JSON error body (Mailgun's plain "Forbidden") becomes the reason.
REASON_LIMIT = 200


class MailgunAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: str  # the sending domain, as Mailgun lists it ("mg.school.example")
    api_key: SecretStr
    from_email: str
    # The HTTP webhook signing key (Mailgun: Sending > Webhooks), not the API key.
    webhook_signing_key: SecretStr
    from_name: str = ""
    region: Literal["us", "eu"] = "us"


def _account(tenant: Tenant, command: ConnectorCommand) -> MailgunAccount:
    return tenant.account("mailgun", MailgunAccount, command.account)


def _auth(account: MailgunAccount) -> dict[str, str]:
    return basic_auth("api", account.api_key.get_secret_value())


def api_base(base_url: str, account: MailgunAccount) -> str:
    """The host for the account's region: the EU one instead of the US default."""
    base = base_url.rstrip("/")
    return EU_BASE_URL if base == US_BASE_URL and account.region == "eu" else base


def bare_message_id(value: str) -> str:
    """`<id@domain>` as webhooks carry it: `id@domain`."""
    return value.strip().removeprefix("<").removesuffix(">")


def _reason(response: httpx.Response, body: dict[str, object]) -> str:
    message = body.get("message")
    if isinstance(message, str) and message:
        return message
    text = response.text.strip() if not body else ""
    return text[:REASON_LIMIT] or response.reason_phrase or "error"


class Mailgun:
    name = "mailgun"
    category: Category = "email"
    payload_type = SendEmail

    def build_request(
        self, command: ConnectorCommand, payload: SendEmail, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = _account(tenant, command)
        sender = formataddr((account.from_name, account.from_email))
        form = {
            "from": sender,
            "to": formataddr((payload.to_name or "", payload.to)),
            "subject": payload.subject,
            "text": payload.text,
            **({"html": payload.html} if payload.html else {}),
            "v:idempotency_key": command.idempotency_key,
            "v:command_id": command.command_id,
            f"h:{IDEMPOTENCY_HEADER}": command.idempotency_key,
        }
        url = f"{api_base(base_url, account)}/v3/{account.domain}/messages"
        return httpx.Request("POST", url, data=form, headers=_auth(account))

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """The account's own domain: a read that changes nothing."""
        account = tenant.account("mailgun", MailgunAccount, label)
        url = f"{api_base(base_url, account)}/v3/domains/{account.domain}"
        return httpx.Request("GET", url, headers=_auth(account))

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        status = response.status_code
        if status == 200:
            found = body.get("id")
            if isinstance(found, str) and bare_message_id(found):
                return Delivered(
                    bare_message_id(found),
                    200,
                    {"message_id": found, "message": str(body.get("message") or "")},
                )
            return Rejected("Mailgun answered 200 without a message id", 200, None)
        return classify_failure(response, _reason(response, body), str(status))


PROVIDER = Provider(
    name="mailgun",
    title="Mailgun",
    category=Mailgun.category,
    account_model=MailgunAccount,
    adapter=Mailgun(),
    base_urls={API: US_BASE_URL},
    simulator_paths={API: "/mailgun"},
    summary="Email: Messages API, with signed delivery webhooks",
    docs_url="https://documentation.mailgun.com/docs/mailgun/api-reference/",
    webhooks=Webhooks(
        verifier=MailgunVerifier(),
        normalize=normalize_mailgun,
        secret_field="webhook_signing_key",  # noqa: S106 - a field name
        body_format="json",
        event_type=event_type,
        event_id=event_id,
    ),
    messaging=Messaging(
        rate_per_second=None,  # Mailgun documents no per-account send rate (unconfirmed)
        receipts=True,  # delivered / failed webhooks
        # A refused key (401), a forbidden or disabled account (403), an unknown domain
        # (404): no message can go through this account.
        account_errors=frozenset({"401", "403", "404"}),
    ),
)
