"""Mailgun's Messages API with `Authorization: Basic api:<API key>`, and its webhooks.

- `POST /v3/{domain}/messages`: a urlencoded form (`from`, `to` (repeatable, or
  comma-separated), `subject`, `text`, `html`, `v:*`, `h:*`); 200
  `{"id": "<…@domain>", "message": "Queued. Thank you."}`.
- `GET /v3/domains/{domain}`: the domain (the hub's test connection).
- A missing or unknown key is 401 with Mailgun's plain-text "Forbidden"; a domain the
  key's account does not have is 404 `{"message": "Domain not found: …"}`; a form
  without what Mailgun needs is 400 with its `message`.

After accepting a message, each recipient's fate (`ctx.receipts.outcome`) is told to the
tenant's webhook URL (the dashboard's, `ctx.receipts.default_url`), signed with the
account's webhook signing key as Mailgun signs (`providers.mailgun_receipts`): a
`delivered` event, or `failed` with severity "permanent" and SMTP code 550, or nothing.

Not simulated: multipart bodies (attachments; 400 here), templates, `o:testmode`,
scheduled delivery, the Events API, accepted/opened/clicked webhooks, temporary failures.
The 400 messages follow Mailgun's wording as seen in its answers (unconfirmed).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from email.utils import getaddresses, parseaddr
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.mailgun import MailgunAccount
from providers.mailgun_receipts import signature_block
from simulators.common import FORM_TYPE, Call, ProviderSpec, SimContext, basic_credentials
from simulators.common import provider_endpoint as endpoint
from simulators.payments import SentCallback

QUEUED = "Queued. Thank you."
NO_BODY = "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"
BOUNCE_CODE = 550
BOUNCE_MESSAGE = (
    "5.1.1 The email account that you tried to reach does not exist. Please try "
    "double-checking the recipient's email address for typos or unnecessary spaces."
)
USER_AGENT = "mailgun/treq-16.12.0"


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def forbidden() -> Response:
    return PlainTextResponse("Forbidden", status_code=401)


def error_for_status(status: int) -> Response:
    if status == 401:
        return forbidden()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Request failed"
    return error(status, phrase)


def _key_of(headers: Headers) -> str | None:
    found = basic_credentials(headers)
    if found is None or found[0] != "api":
        return None
    return found[1]


def accounts_with_key(ctx: SimContext, key: str) -> list[tuple[Tenant, MailgunAccount]]:
    return [
        (tenant, account)
        for tenant, account in ctx.accounts("mailgun", MailgunAccount)
        if hmac.compare_digest(account.api_key.get_secret_value().encode(), key.encode())
    ]


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    key = _key_of(headers)
    found = accounts_with_key(ctx, key) if key else []
    return found[0][0] if found else None


SPEC = ProviderSpec(name="mailgun", authenticate=authenticate, error_for_status=error_for_status)


def _domain_account(ctx: SimContext, call: Call) -> tuple[Tenant, MailgunAccount] | Response:
    """The key's account for the path's domain, or Mailgun's refusal."""
    key = _key_of(call.request.headers)
    found = accounts_with_key(ctx, key) if key else []
    if not found:
        return forbidden()
    domain = call.request.path_params["domain"]
    for tenant, account in found:
        if account.domain.lower() == domain.lower():
            return tenant, account
    return error(404, f"Domain not found: {domain}")


def _fields(call: Call) -> list[tuple[str, str]] | None:
    content_type = call.request.headers.get("content-type", "")
    if content_type.split(";", maxsplit=1)[0].strip().lower() != FORM_TYPE:
        return None
    return parse_qsl(call.raw.decode("utf-8", errors="replace"), keep_blank_values=True)


def _recipients(pairs: list[tuple[str, str]]) -> list[str]:
    return [address for _, address in getaddresses([v for k, v in pairs if k == "to"])]


def _problem(fields: dict[str, str], recipients: list[str]) -> str | None:
    if not fields.get("from"):
        return "'from' parameter is missing"
    if not parseaddr(fields["from"])[1]:
        return "'from' parameter is not a valid address. please check documentation"
    if not recipients:
        return "'to' parameter is missing"
    for address in recipients:
        local, at, domain = address.partition("@")
        if not (local and at and "." in domain.strip(".")):
            return "'to' parameter is not a valid address. please check documentation"
    if not any(fields.get(k) for k in ("text", "html", "amp-html", "template")):
        return NO_BODY
    return None


def message_id(domain: str, now: float) -> str:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
    return f"{stamp}.{secrets.token_hex(8)}@{domain}"


def event_data(
    event: str, recipient: str, bare_id: str, fields: dict[str, str], now: float
) -> dict[str, Any]:
    """One webhook's `event-data`, as Mailgun fills it for a delivered or failed message."""
    variables = {k.removeprefix("v:"): v for k, v in fields.items() if k.startswith("v:")}
    data: dict[str, Any] = {
        "id": secrets.token_urlsafe(16),
        "timestamp": now,
        "log-level": "info" if event == "delivered" else "error",
        "event": event,
        "envelope": {
            "sender": parseaddr(fields.get("from", ""))[1],
            "targets": recipient,
            "transport": "smtp",
            "sending-ip": "127.0.0.1",
        },
        "flags": {"is-authenticated": True, "is-test-mode": False},
        "message": {
            "headers": {
                "to": fields.get("to", ""),
                "message-id": bare_id,
                "from": fields.get("from", ""),
                "subject": fields.get("subject", ""),
            },
            "attachments": [],
            "size": sum(len(fields.get(k, "")) for k in ("text", "html")),
        },
        "recipient": recipient,
        "recipient-domain": recipient.partition("@")[2],
        "tags": [],
        "campaigns": [],
        "user-variables": variables,
    }
    if event == "delivered":
        data["delivery-status"] = {"code": 250, "message": "OK", "description": "", "tls": True}
    else:
        data["severity"] = "permanent"
        data["reason"] = "bounce"
        data["delivery-status"] = {
            "code": BOUNCE_CODE,
            "message": BOUNCE_MESSAGE,
            "description": "",
            "attempt-no": 1,
            "tls": True,
        }
    return data


def webhook(
    tenant: Tenant,
    account: MailgunAccount,
    url: str,
    data: dict[str, Any],
    timestamp: int | None = None,
) -> SentCallback:
    """The webhook Mailgun posts for one event, signed with the account's signing key."""
    signing_key = account.webhook_signing_key.get_secret_value()
    signature = signature_block(signing_key, secrets.token_hex(25), timestamp)
    body = json.dumps({"signature": signature, "event-data": data}).encode()
    return SentCallback(
        provider="mailgun",
        tenant=tenant.id,
        order_id=str(data["message"]["headers"]["message-id"]),
        payment_id="",
        event=str(data["event"]),
        url=url,
        body=body,
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )


def _schedule_receipts(
    ctx: SimContext,
    tenant: Tenant,
    account: MailgunAccount,
    *,
    bare_id: str,
    fields: dict[str, str],
    recipients: list[str],
) -> None:
    url = ctx.receipts.default_url("mailgun", tenant.id)
    callbacks: list[SentCallback] = []
    for recipient in recipients:
        arrival = ctx.receipts.outcome("mailgun", recipient)
        if arrival == "silent":
            continue
        event = "delivered" if arrival == "delivered" else "failed"
        data = event_data(event, recipient, bare_id, fields, time.time())
        callbacks.append(webhook(tenant, account, url, data))
    if not callbacks:
        return

    async def post() -> None:
        for callback in callbacks:
            await ctx.receipts.post(callback)

    ctx.receipts.later(post)


def _send(ctx: SimContext, call: Call) -> Response:
    found = _domain_account(ctx, call)
    if isinstance(found, Response):
        return found
    tenant, account = found
    pairs = _fields(call)
    if pairs is None:
        return error(400, "the simulator reads application/x-www-form-urlencoded forms only")
    fields = dict(pairs)
    recipients = _recipients(pairs)
    problem = _problem(fields, recipients)
    if problem is not None:
        return error(400, problem)
    bare_id = message_id(account.domain, ctx.state.clock())
    _schedule_receipts(ctx, tenant, account, bare_id=bare_id, fields=fields, recipients=recipients)
    return JSONResponse({"id": f"<{bare_id}>", "message": QUEUED})


def _domain(ctx: SimContext, call: Call) -> Response:
    found = _domain_account(ctx, call)
    if isinstance(found, Response):
        return found
    _, account = found
    return JSONResponse(
        {
            "domain": {
                "name": account.domain,
                "state": "active",
                "type": "custom",
                "is_disabled": False,
                "spam_action": "disabled",
                "wildcard": False,
                "web_scheme": "https",
                "created_at": "Fri, 01 Mar 2024 09:00:00 GMT",
            },
            "receiving_dns_records": [],
            "sending_dns_records": [],
        }
    )


def _not_found(call: Call) -> Response:
    return error(404, "Not Found")


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/mailgun"


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route("/v3/{domain}/messages", endpoint(ctx, SPEC, partial(_send, ctx)), methods=["POST"]),
        Route("/v3/domains/{domain}", endpoint(ctx, SPEC, partial(_domain, ctx)), methods=["GET"]),
        # Last: every other path is a 404.
        Route(
            "/{path:path}",
            endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
