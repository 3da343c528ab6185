"""WhatsApp Business Cloud API (Meta Graph): template messages, status webhooks.

Facts (../shared/providers.md section 15, from Meta's Cloud API reference and error
code table; the individual error rows are lightly confirmed there):

- Base URL `https://graph.facebook.com/v21.0`: the Graph version is part of the base
  URL, so an operator moves to a newer one with HUB_PROVIDER_BASE_URLS alone.
- Send: `POST /{phone-number-id}/messages` with `Authorization: Bearer <access token>`
  (a system user's), JSON `{"messaging_product": "whatsapp", "recipient_type":
  "individual", "to": "<digits>", "type": "template", "template": {...}}`. Only
  templates go outside the 24 h customer-service window (free text there: 131047), so
  the hub sends templates only. `biz_opaque_callback_data` (the command's callback
  data) is echoed in every status webhook of the message.
- 200 `{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id":
  "wamid..."}]}`: messages[0].id is the reference the status webhooks carry.
- Errors `{"error": {"message", "type", "code", "error_data": {"details"}, "fbtrace_id"}}`;
  Meta says to act on `code` (and details), not titles. 130429 / 131056 (429, rate
  limits), 131000 (500) and 2 (503) are retried; 190 (token expired), 131031 (account
  locked) and 131042 (payment issue) belong to the account (the backup is tried); 100,
  131047, 131026, 132000 and 132001 are the message's own. Other codes: by HTTP status.
- No idempotency key: the connector's ledger sends a command once.
- Throughput: 80 messages/s per phone number by default (a community doc; unconfirmed
  officially: Meta raises it per number on request).
- Test connection: `GET /{phone-number-id}`, the number's own record (display number,
  verified name, quality rating): a read that only the number's token may make.

The webhooks (subscription check, X-Hub-Signature-256, statuses) are in whatsapp_webhooks.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    Rejected,
    RetryLater,
    classify_failure,
    json_or_empty,
    parse_retry_after,
)
from providers.spec import API, Messaging, Provider, Webhooks
from providers.whatsapp_webhooks import (
    WhatsAppVerifier,
    answer_subscription,
    event_id,
    event_type,
    normalize_whatsapp,
)
from schemas.events import ConnectorCommand, SendWhatsApp

GRAPH_VERSION = "v21.0"
BASE_URL = f"https://graph.facebook.com/{GRAPH_VERSION}"
# Meta's error codes (error.code), as strings: ConnectorResult.error_code.
RETRY_CODES = frozenset({"130429", "131056", "131000", "2"})
ACCOUNT_CODES = frozenset({"190", "131031", "131042"})
MESSAGE_CODES = frozenset({"100", "131047", "131026", "132000", "132001"})
_NOT_DIGITS = re.compile(r"\D")


class WhatsAppAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    phone_number_id: str = Field(pattern=r"^\d+$")
    access_token: SecretStr
    app_secret: SecretStr  # signs the webhooks (X-Hub-Signature-256)
    verify_token: SecretStr  # the dashboard's subscription check (hub.verify_token)
    waba_id: str = ""  # the WhatsApp Business Account: for an operator's reference


def _bearer(account: WhatsAppAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access_token.get_secret_value()}"}


def recipient(to: str) -> str:
    """Meta's `to`: the number's digits, country code first, without "+" or punctuation."""
    return _NOT_DIGITS.sub("", to)


def message_body(payload: SendWhatsApp) -> dict[str, Any]:
    template: dict[str, Any] = {"name": payload.template, "language": {"code": payload.language}}
    if payload.parameters:  # a template without variables takes no body component
        template["components"] = [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": p} for p in payload.parameters],
            }
        ]
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient(payload.to),
        "type": "template",
        "template": template,
    }
    if payload.callback_data:
        body["biz_opaque_callback_data"] = payload.callback_data
    return body


def _first_id(items: object, field: str) -> str:
    first = items[0] if isinstance(items, list) and items else None
    value = first.get(field) if isinstance(first, dict) else None
    return value if isinstance(value, str) else ""


def graph_error(body: dict[str, object]) -> tuple[str | None, str]:
    """Meta's error code (as a string) and a reason: the message, with its details."""
    error = body.get("error")
    if not isinstance(error, dict):
        return None, ""
    code = error.get("code")
    message = str(error.get("message") or "")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details and details != message:
        message = f"{message}: {details}" if message else details
    return (str(code) if code is not None else None), message


class WhatsApp:
    name = "whatsapp"
    category: Category = "whatsapp"
    payload_type = SendWhatsApp

    def build_request(
        self, command: ConnectorCommand, payload: SendWhatsApp, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = tenant.account("whatsapp", WhatsAppAccount, command.account)
        url = f"{base_url.rstrip('/')}/{account.phone_number_id}/messages"
        return httpx.Request("POST", url, json=message_body(payload), headers=_bearer(account))

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """The phone number's own record: only a token of its business may read it."""
        account = tenant.account("whatsapp", WhatsAppAccount, label)
        url = f"{base_url.rstrip('/')}/{account.phone_number_id}"
        return httpx.Request("GET", url, headers=_bearer(account))

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # the access token travels in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code == 200 and "error" not in body:
            wamid = _first_id(body.get("messages"), "id")
            if not wamid:
                return Rejected("WhatsApp answered 200 without a message id", 200)
            return Delivered(wamid, 200, {"wa_id": _first_id(body.get("contacts"), "wa_id")})
        code, message = graph_error(body)
        reason = message or response.reason_phrase or "error"
        status = response.status_code
        if code in RETRY_CODES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return RetryLater(reason, status, code, retry_after)
        if code in ACCOUNT_CODES or code in MESSAGE_CODES:
            return Rejected(reason, status, code)
        return classify_failure(response, reason, code)


PROVIDER = Provider(
    name="whatsapp",
    title="WhatsApp Business (Cloud API)",
    category=WhatsApp.category,
    account_model=WhatsAppAccount,
    adapter=WhatsApp(),
    base_urls={API: BASE_URL},
    # The simulator serves Graph's versioned paths under its mount, as Meta does.
    simulator_paths={API: f"/whatsapp/{GRAPH_VERSION}"},
    summary="WhatsApp: Cloud API template messages, status webhooks as delivery receipts",
    docs_url="https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages",
    webhooks=Webhooks(
        verifier=WhatsAppVerifier(),
        normalize=normalize_whatsapp,
        secret_field="app_secret",  # noqa: S106 - a field name
        body_format="json",
        event_type=event_type,
        event_id=event_id,
        challenge=answer_subscription,
        challenge_field="verify_token",
        # Meta batches up to 1000 updates per delivery; its webhooks docs allow up to 3 MB.
        max_body_bytes=3 * 1024 * 1024,
    ),
    messaging=Messaging(
        # Meta's default per phone number (community doc; unconfirmed officially).
        rate_per_second=80.0,
        receipts=True,
        account_errors=ACCOUNT_CODES,
        # Outside the 24 h customer-service window only approved templates go.
        templates_only=True,
    ),
)
