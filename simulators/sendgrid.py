"""SendGrid v3 with `Authorization: Bearer <api key>`: Mail Send, the Email Activity feed.

- `POST /v3/mail/send`: 202 + X-Message-Id; each `to` recipient becomes an activity message.
- `GET /v3/messages?query=…&limit=…`: the feed, newest first (`sendgrid_activity`).
- `GET /v3/messages/{msg_id}`: one message with its events.
- `GET /v3/scopes`: the key's scopes (`sendgrid_api`, with the auth and error shapes).

How the simulated feed differs from SendGrid's is told in `sendgrid_activity`.

After accepting a mail, each `to` recipient's fate (`ctx.receipts.outcome`) is posted
to the tenant's Event Webhook URL (`ctx.receipts.default_url`) as SendGrid would: one
signed JSON array per recipient, `[processed, delivered]`, `[processed, bounce]` (status
"5.1.1") or nothing. The signing key is derived from the API key the mail was sent with
(`providers.sendgrid_events.event_webhook_keypair`), whose public key the demo tenant
file writes into the account. The activity feed is not told of bounces: it still shows
every mail delivered after a second.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from functools import lru_cache, partial
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.sendgrid_events import EventWebhookKeys, event_webhook_keypair, sign_events
from simulators.common import Call, SimContext, bearer_token, provider_endpoint
from simulators.payments import SentCallback
from simulators.sendgrid_activity import get_message, list_messages
from simulators.sendgrid_api import AUTH_FAILED, SPEC, Problem, error, list_scopes, problem
from simulators.state import StoredMail

MAX_PAYLOAD_BYTES = 30 * 1024 * 1024
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

FROM_REQUIRED = (
    "The from object must be provided for every email send. It is an object that requires "
    "the email parameter, but may also contain a name parameter."
)
PERSONALIZATIONS_REQUIRED = (
    "The personalizations field is required and must have at least one personalization."
)
TO_REQUIRED = (
    "The to array is required for all personalization objects, and must have at least one "
    "email object with a valid email address."
)
SUBJECT_REQUIRED = (
    "The subject is required. You can get around this requirement if you use a template with "
    "a subject defined or if every personalization has a subject defined."
)
CONTENT_REQUIRED = (
    "Unless a valid template_id is provided, the content parameter is required. There must be "
    "at least one defined content block. We typically suggest both text/plain and text/html "
    "blocks are included, but only one block is required."
)
PLAIN_FIRST = (
    "If present, text/plain content must be first, followed by text/html, followed by any "
    "other content."
)
BOUNCE_STATUS = "5.1.1"
BOUNCE_REASON = "550 5.1.1 The email account that you tried to reach does not exist"
USER_AGENT = "SendGrid Event API"


def _valid_email(value: Any) -> bool:
    return isinstance(value, str) and bool(EMAIL.match(value))


def _personalization_problems(body: Mapping[str, Any]) -> list[Problem]:
    items = body.get("personalizations")
    if not isinstance(items, list) or not items:
        return [problem(PERSONALIZATIONS_REQUIRED, "personalizations", "-Personalizations-Errors")]
    found: list[Problem] = []
    for i, item in enumerate(items):
        recipients = item.get("to") if isinstance(item, Mapping) else None
        if not isinstance(recipients, list) or not recipients:
            found.append(
                problem(TO_REQUIRED, f"personalizations.{i}.to", "message.personalizations.to")
            )
            continue
        for j, recipient in enumerate(recipients):
            email = recipient.get("email") if isinstance(recipient, Mapping) else None
            if not _valid_email(email):
                found.append(
                    problem(
                        "Does not contain a valid address.",
                        f"personalizations.{i}.to.{j}.email",
                        "message.personalizations.to",
                    )
                )
    return found


def _content_problems(body: Mapping[str, Any]) -> list[Problem]:
    content = body.get("content")
    if content is None and body.get("template_id"):
        return []
    if not isinstance(content, list) or not content:
        return [problem(CONTENT_REQUIRED, "content", "message.content")]
    found: list[Problem] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, Mapping) else None
        value = block.get("value") if isinstance(block, Mapping) else None
        if not isinstance(kind, str) or not kind:
            found.append(
                problem(
                    "The content type must be a string at least one character in length.",
                    f"content.{i}.type",
                    "message.content.type",
                )
            )
        elif kind == "text/plain" and i > 0:
            found.append(problem(PLAIN_FIRST, f"content.{i}.type", "message.content.type"))
        if not isinstance(value, str) or not value:
            found.append(
                problem(
                    "The content value must be a string at least one character in length.",
                    f"content.{i}.value",
                    "message.content.value",
                )
            )
    return found


def validate(body: Any) -> list[Problem]:
    """Every problem SendGrid would report for a mail body (SendGrid reports them all)."""
    if not isinstance(body, Mapping):
        return [problem("Bad Request")]
    found: list[Problem] = []
    sender = body.get("from")
    if not isinstance(sender, Mapping) or "email" not in sender:
        found.append(problem(FROM_REQUIRED, "from", "message.from"))
    elif not _valid_email(sender["email"]):
        found.append(
            problem(
                "The from email does not contain a valid address.", "from.email", "message.from"
            )
        )
    found += _personalization_problems(body)
    items = body.get("personalizations")
    every_has_subject = (
        isinstance(items, list)
        and bool(items)
        and all(isinstance(p, Mapping) and p.get("subject") for p in items)
    )
    if not body.get("subject") and not every_has_subject and not body.get("template_id"):
        found.append(problem(SUBJECT_REQUIRED, "subject", "message.subject"))
    found += _content_problems(body)
    return found


def _send(ctx: SimContext, call: Call) -> Response:
    if len(call.raw) > MAX_PAYLOAD_BYTES:
        return error(
            413,
            [problem("The JSON payload you have included in your request is too large.")],
        )
    if call.tenant is None:
        return error(401, [problem(AUTH_FAILED)])
    problems = validate(call.body)
    if problems:
        return error(400, problems)
    message_id = secrets.token_urlsafe(16)
    accepted = activity_messages(call.body, message_id, ctx.state.clock())
    ctx.state.mails.setdefault(call.tenant.id, []).extend(accepted)
    api_key = bearer_token(call.request.headers) or ""
    _schedule_events(ctx, call.tenant, keys_for(api_key), message_id, accepted)
    return Response(status_code=202, headers={"X-Message-Id": message_id})


# --- the Event Webhook ------------------------------------------------------------


@lru_cache(maxsize=64)
def keys_for(api_key: str) -> EventWebhookKeys:
    return event_webhook_keypair(api_key)


def mail_event(mail: StoredMail, event: str, now: int) -> dict[str, Any]:
    """One Event Webhook event for one recipient; the send's custom_args at the top level."""
    found: dict[str, Any] = {
        **mail.unique_args,
        "email": mail.to_email,
        "timestamp": now,
        "smtp-id": f"<{mail.msg_id.split('.', 1)[0]}@ismtpd0001p1.sendgrid.net>",
        "event": event,
        "category": [],
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": mail.msg_id,
    }
    if event == "delivered":
        found.update(response="250 2.0.0 OK", tls=1, ip="127.0.0.1")
    elif event == "bounce":
        found.update(
            status=BOUNCE_STATUS,
            reason=BOUNCE_REASON,
            type="bounce",
            bounce_classification="Invalid Address",
            ip="127.0.0.1",
        )
    return found


def event_batch(
    tenant: Tenant, keys: EventWebhookKeys, url: str, message_id: str, events: list[dict[str, Any]]
) -> SentCallback:
    """A signed Event Webhook delivery: a JSON array of events."""
    body = json.dumps(events, separators=(",", ":")).encode()
    return SentCallback(
        provider="sendgrid",
        tenant=tenant.id,
        order_id=message_id,
        payment_id="",
        event=str(events[-1]["event"]),
        url=url,
        body=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **sign_events(body, keys.private_key),
        },
    )


def _schedule_events(
    ctx: SimContext,
    tenant: Tenant,
    keys: EventWebhookKeys,
    message_id: str,
    accepted: list[StoredMail],
) -> None:
    url = ctx.receipts.default_url("sendgrid", tenant.id)
    batches: list[list[dict[str, Any]]] = []
    now = int(time.time())
    for mail in accepted:
        arrival = ctx.receipts.outcome("sendgrid", mail.to_email)
        if arrival != "silent":
            final = "delivered" if arrival == "delivered" else "bounce"
            batches.append([mail_event(mail, "processed", now), mail_event(mail, final, now)])
    if not batches:
        return

    async def post() -> None:
        for events in batches:
            # Signed when sent, as SendGrid signs each delivery.
            await ctx.receipts.post(event_batch(tenant, keys, url, message_id, events))

    ctx.receipts.later(post)


def activity_messages(body: Mapping[str, Any], message_id: str, now: float) -> list[StoredMail]:
    """One activity message per `to` recipient; its msg_id starts with the X-Message-Id."""
    found: list[StoredMail] = []
    for personalization in body["personalizations"]:
        args = {**_args(body), **_args(personalization)}  # a personalization's win
        for recipient in personalization["to"]:
            found.append(
                StoredMail(
                    msg_id=f"{message_id}.filterdrecv-simulator-{len(found)}.0",
                    from_email=str(body["from"]["email"]),
                    to_email=str(recipient["email"]),
                    subject=str(personalization.get("subject") or body.get("subject") or ""),
                    unique_args={str(k): str(v) for k, v in args.items()},
                    created=now,
                )
            )
    return found


def _args(part: Mapping[str, Any]) -> Mapping[str, Any]:
    args = part.get("custom_args")
    return args if isinstance(args, Mapping) else {}


def _not_found(call: Call) -> Response:
    return error(404, [problem("resource not found")])


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/sendgrid"


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route("/v3/mail/send", provider_endpoint(ctx, SPEC, partial(_send, ctx)), methods=["POST"]),
        Route(
            "/v3/messages",
            provider_endpoint(ctx, SPEC, partial(list_messages, ctx)),
            methods=["GET"],
        ),
        Route(
            "/v3/messages/{msg_id}",
            provider_endpoint(ctx, SPEC, partial(get_message, ctx)),
            methods=["GET"],
        ),
        Route("/v3/scopes", provider_endpoint(ctx, SPEC, list_scopes), methods=["GET"]),
        # Last: every other path is SendGrid's 404.
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
