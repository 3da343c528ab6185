"""SendGrid v3 Mail Send: POST /v3/mail/send with a bearer API key; 202 + X-Message-Id.

Test connection: GET /v3/scopes, the scopes of the key itself (any valid key may read them).

SendGrid takes no idempotency key either. The command's key travels in
`custom_args`, which SendGrid keeps as the message's `unique_args`: event
webhooks can be tied back to the command, and an attempt in doubt can be looked
up in the Email Activity feed (`GET /v3/messages?query=unique_args['idempotency_key']="…"`).

That feed has limits the executor must live with: it is a paid add-on (without
it, or without the key's Email Activity scope, the query is refused: 403); it
allows 6 requests a minute (429); and it is eventually consistent, so only a
NotFound older than `lookup_settle_seconds` means "never sent".

Delivery receipts come from the signed Event Webhook (`providers.sendgrid_events`):
the account's `webhook_public_key` is the verification key SendGrid's dashboard shows
(Mail Settings > Event Webhook > Signature Verification); without one the ingress
refuses the tenant's event deliveries. SendGrid documents no per-account send rate
for Mail Send (unconfirmed), so none is declared.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    RetryLater,
    classify_failure,
    json_or_empty,
)
from providers.lookup import Found, LookupOutcome, NotFound, query_failed
from providers.sendgrid_events import (
    SendGridEventVerifier,
    event_type,
    normalize_sendgrid_events,
)
from providers.spec import API, Messaging, Provider, Webhooks
from schemas.events import ConnectorCommand, SendEmail

# At most one message per recipient carries a command's key; 10 is SendGrid's default.
LOOKUP_LIMIT = 10


class SendGridAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    from_email: str
    from_name: str = ""
    # The Event Webhook's verification key (base64 DER, from SendGrid's dashboard). A
    # public key: a SecretStr only so the ingress finds it as the webhook secret field.
    webhook_public_key: SecretStr = SecretStr("")


def _account(tenant: Tenant, command: ConnectorCommand) -> SendGridAccount:
    return tenant.account("sendgrid", SendGridAccount, command.account)


def _bearer(account: SendGridAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key.get_secret_value()}"}


def quoted(value: str) -> str:
    """A string literal of the activity query language. SendGrid documents no escape for
    a quote inside a value; a backslash before `"` and `\\` is the usual SQL-like one."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _first_error(response: httpx.Response) -> dict[str, Any]:
    errors = json_or_empty(response).get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    return first if isinstance(first, dict) else {}


class SendGrid:
    name = "sendgrid"
    category: Category = "email"
    payload_type = SendEmail
    # The activity feed shows an accepted mail after a lag SendGrid does not bound (it
    # points to the Event Webhook for real time): seconds usually, minutes under load.
    # Ten minutes is conservative on purpose: waiting too little sends a duplicate email,
    # waiting too long only delays a command whose first attempt already crashed.
    lookup_settle_seconds = 600.0

    def build_request(
        self, command: ConnectorCommand, payload: SendEmail, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = _account(tenant, command)
        recipient: dict[str, str] = {"email": payload.to}
        if payload.to_name:
            recipient["name"] = payload.to_name
        sender = {
            "email": account.from_email,
            **({"name": account.from_name} if account.from_name else {}),
        }
        content: list[dict[str, Any]] = [{"type": "text/plain", "value": payload.text}]
        if payload.html:
            content.append({"type": "text/html", "value": payload.html})
        body = {
            "personalizations": [{"to": [recipient]}],
            "from": sender,
            "subject": payload.subject,
            "content": content,
            "custom_args": {
                "idempotency_key": command.idempotency_key,
                "command_id": command.command_id,
            },
        }
        return httpx.Request(
            "POST", f"{base_url.rstrip('/')}/v3/mail/send", json=body, headers=_bearer(account)
        )

    def lookup_request(
        self,
        command: ConnectorCommand,
        payload: SendEmail,
        tenant: Tenant,
        base_url: str,
        since: datetime,
    ) -> httpx.Request:
        # The key alone: it is the command's, whichever attempt sent it. `since` is not in
        # the query because the feed only holds recent days anyway.
        query = f"unique_args['idempotency_key']={quoted(command.idempotency_key)}"
        return httpx.Request(
            "GET",
            f"{base_url.rstrip('/')}/v3/messages",
            params={"query": query, "limit": str(LOOKUP_LIMIT)},
            headers=_bearer(_account(tenant, command)),
        )

    def read_lookup(
        self,
        command: ConnectorCommand,
        payload: SendEmail,
        tenant: Tenant,
        response: httpx.Response,
        since: datetime,
    ) -> LookupOutcome:
        if response.status_code != 200:
            reason = str(_first_error(response).get("message") or response.reason_phrase or "error")
            return query_failed(response, reason, None)
        messages = json_or_empty(response).get("messages")
        if not isinstance(messages, list):
            return RetryLater("SendGrid's activity answer has no messages array", 200)
        if not messages:
            return NotFound()
        first = messages[0] if isinstance(messages[0], dict) else {}
        msg_id = str(first.get("msg_id") or "") or None
        details = {
            "status": str(first.get("status") or ""),
            # The X-Message-Id the send would have answered: msg_id's first part.
            "message_id": (msg_id or "").split(".", 1)[0],
        }
        return Found(msg_id, details)

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """The key's own scopes: a read every valid key may make, whatever its permissions."""
        account = tenant.account("sendgrid", SendGridAccount, label)
        return httpx.Request("GET", f"{base_url.rstrip('/')}/v3/scopes", headers=_bearer(account))

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        if response.status_code == 202:
            message_id = response.headers.get("x-message-id")
            return Delivered(message_id, 202, {"message_id": message_id or ""})
        first = _first_error(response)
        reason = str(first.get("message") or response.reason_phrase or "error")
        field = first.get("field")
        return classify_failure(response, reason, f"field:{field}" if field else None)


PROVIDER = Provider(
    name="sendgrid",
    title="SendGrid",
    category=SendGrid.category,
    account_model=SendGridAccount,
    adapter=SendGrid(),
    base_urls={API: "https://api.sendgrid.com"},
    simulator_paths={API: "/sendgrid"},
    summary="Email: Mail Send v3, with Email Activity lookups and signed event receipts",
    docs_url="https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send",
    webhooks=Webhooks(
        verifier=SendGridEventVerifier(),
        normalize=normalize_sendgrid_events,
        secret_field="webhook_public_key",  # noqa: S106 - a field name
        body_format="json",
        json_arrays=True,  # SendGrid posts a batch of events as one JSON array
        event_type=event_type,
        # A batch is posted when it reaches 768 KB (or every 30 s): over the default 256 KiB.
        max_body_bytes=1024 * 1024,
    ),
    messaging=Messaging(
        rate_per_second=None,  # no per-account Mail Send rate documented (unconfirmed)
        receipts=True,  # the Event Webhook: delivered / bounce / dropped
        # SendGrid's account refusals (401 bad key, 403 no credits or a suspended
        # account) carry no error code classify could report: none to match yet.
        account_errors=frozenset(),
    ),
)
