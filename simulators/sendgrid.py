"""SendGrid v3 with `Authorization: Bearer <api key>`: Mail Send, the Email Activity feed.

- `POST /v3/mail/send`: 202 + X-Message-Id; each `to` recipient becomes an activity message.
- `GET /v3/messages?query=…&limit=…`: the feed, newest first (`sendgrid_activity`).
- `GET /v3/messages/{msg_id}`: one message with its events.
- `GET /v3/scopes`: the key's scopes (`sendgrid_api`, with the auth and error shapes).

How the simulated feed differs from SendGrid's is told in `sendgrid_activity`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from functools import partial
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from simulators.common import Call, SimContext, provider_endpoint
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
    mails = ctx.state.mails.setdefault(call.tenant.id, [])
    mails += activity_messages(call.body, message_id, ctx.state.clock())
    return Response(status_code=202, headers={"X-Message-Id": message_id})


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
