"""SendGrid v3 with `Authorization: Bearer <api key>`: Mail Send and the Email Activity feed.

- `POST /v3/mail/send`: 202 + X-Message-Id; each `to` recipient becomes an activity message.
- `GET /v3/messages?query=…&limit=…`: the feed, newest first (query subset: `parse_query`).
- `GET /v3/messages/{msg_id}`: one message with its events.

Unlike the real feed, this one is consistent at once: SendGrid's takes a while (seconds,
minutes under load, no documented bound) to show an accepted mail. It also needs no paid
"email activity history" add-on or Email Activity key scope (else 403), keeps everything
(SendGrid: 3 days, 30 with the add-on), has no 6-requests-a-minute limit (429), knows only
a subset of the query language (no OR, NOT, LIKE, IN, BETWEEN TIMESTAMP, categories, ...:
a 400 here), and lists no cc/bcc recipients.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from simulators.common import Call, ProviderSpec, SimContext, bearer_token, provider_endpoint
from simulators.state import StoredMail

MAX_PAYLOAD_BYTES = 30 * 1024 * 1024
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"

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
AUTH_FAILED = "The provided authorization grant is invalid, expired, or revoked"

# An activity message is "processed" when accepted and "delivered" this many seconds later.
DELIVER_AFTER = 1.0
DEFAULT_LIMIT, MAX_LIMIT = 10, 1000
QUERY_FIELDS = frozenset({"to_email", "from_email", "subject", "msg_id", "status"})
CONDITION = re.compile(
    r"""\s*(?P<open>\()?\s*
    (?:unique_args\['(?P<arg>[^']+)'\]|(?P<field>[A-Za-z_]\w*))
    \s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"
    \s*(?P<close>\))?\s*""",
    re.VERBOSE,
)
AND = re.compile(r"AND\b", re.IGNORECASE)
# The fields of `GET /v3/messages/{msg_id}` that the simulator has nothing to put in.
MESSAGE_DEFAULTS: dict[str, Any] = {
    "template_id": "",
    "asm_group_id": None,
    "teammate": "",
    "api_key_id": "",
    "originating_ip": "127.0.0.1",
    "categories": [],
    "outbound_ip": "127.0.0.1",
    "outbound_ip_type": "shared",
}

Problem = dict[str, str | None]


def problem(message: str, field: str | None = None, anchor: str | None = None) -> Problem:
    return {"message": message, "field": field, "help": f"{HELP}#{anchor}" if anchor else None}


def error(status: int, problems: list[Problem]) -> JSONResponse:
    return JSONResponse({"errors": problems}, status_code=status)


def error_for_status(status: int) -> Response:
    if status == 401:
        return error(401, [problem(AUTH_FAILED)])
    if status == 429:
        return error(429, [problem("too many requests")])
    if status >= 500:
        return error(status, [problem("internal server error")])
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "request failed"
    return error(status, [problem(phrase)])


def authenticate(ctx: SimContext, headers: Headers) -> Tenant | None:
    token = bearer_token(headers)
    if token is None:
        return None
    for tenant in ctx.all_tenants():
        account = tenant.sendgrid
        if account is not None and hmac.compare_digest(
            account.api_key.get_secret_value().encode(), token.encode()
        ):
            return tenant
    return None


SPEC = ProviderSpec(name="sendgrid", authenticate=authenticate, error_for_status=error_for_status)


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


# --- the Email Activity feed -----------------------------------------------------------


class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    key: str  # a field name, or "unique_args.<name>"
    value: str

    def holds(self, message: dict[str, Any], unique_args: Mapping[str, str]) -> bool:
        if self.key.startswith("unique_args."):
            return unique_args.get(self.key.removeprefix("unique_args.")) == self.value
        if self.key.endswith("_email"):  # addresses compare case-insensitively
            return str(message[self.key]).lower() == self.value.lower()
        return bool(message[self.key] == self.value)


def _condition(match: re.Match[str]) -> Condition:
    if bool(match["open"]) != bool(match["close"]):
        raise QueryError("invalid syntax: unbalanced parentheses")
    value = re.sub(r"\\(.)", r"\1", match["value"])
    if match["arg"] is not None:
        return Condition(f"unique_args.{match['arg']}", value)
    field = match["field"]
    if field not in QUERY_FIELDS:  # SendGrid knows more fields (categories, ...) than these
        raise QueryError(f"invalid syntax: '{field}' is not a known field")
    return Condition(field, value)


def parse_query(text: str) -> list[Condition]:
    """`field="value"` and `unique_args['name']="value"` conditions joined by AND, each
    optionally in parentheses; `\\"` escapes a quote. Anything else is a QueryError."""
    conditions: list[Condition] = []
    position = 0
    while text.strip():
        match = CONDITION.match(text, position)
        if match is None:
            raise QueryError(f"invalid syntax at character {position}: {text[position:]!r}")
        conditions.append(_condition(match))
        position = match.end()
        if position == len(text):
            break
        joiner = AND.match(text, position)
        if joiner is None:
            raise QueryError(f"invalid syntax: expected AND at character {position}")
        position = joiner.end()
    return conditions


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def activity_summary(mail: StoredMail, now: float) -> dict[str, Any]:
    delivered = now - mail.created >= DELIVER_AFTER
    return {
        "from_email": mail.from_email,
        "msg_id": mail.msg_id,
        "subject": mail.subject,
        "to_email": mail.to_email,
        "status": "delivered" if delivered else "processed",
        "opens_count": 0,
        "clicks_count": 0,
        "last_event_time": _iso(mail.created + (DELIVER_AFTER if delivered else 0.0)),
    }


def activity_error(status: int, message: str, field: str | None = None) -> JSONResponse:
    """The Email Activity API's error shape: `{"errors": [{"message": …}]}`."""
    item: dict[str, str] = {"message": message}
    if field is not None:
        item["field"] = field
    return JSONResponse({"errors": [item]}, status_code=status)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise QueryError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _list_messages(ctx: SimContext, call: Call) -> Response:
    if call.tenant is None:
        return activity_error(401, AUTH_FAILED)
    params = call.request.query_params
    try:
        limit = _limit(params.get("limit"))
        conditions = parse_query(params.get("query", ""))
    except QueryError as exc:
        return activity_error(400, str(exc))
    now = ctx.state.clock()
    found: list[dict[str, Any]] = []
    for mail in reversed(ctx.state.mails.get(call.tenant.id, [])):  # newest first
        summary = activity_summary(mail, now)
        if all(c.holds(summary, mail.unique_args) for c in conditions):
            found.append(summary)
    return JSONResponse({"messages": found[:limit]})


def _get_message(ctx: SimContext, call: Call) -> Response:
    tenant = call.tenant
    if tenant is None:
        return activity_error(401, AUTH_FAILED)
    msg_id = call.request.path_params["msg_id"]
    mail = next((m for m in ctx.state.mails.get(tenant.id, []) if m.msg_id == msg_id), None)
    if mail is None:
        return activity_error(404, "not found", "message_id")
    summary = activity_summary(mail, ctx.state.clock())
    events = [{"event_name": "processed", "processed": _iso(mail.created)}]
    if summary["status"] == "delivered":
        events.append({"event_name": "delivered", "processed": summary["last_event_time"]})
    details = {k: summary[k] for k in ("from_email", "msg_id", "subject", "to_email", "status")}
    # unique_args is a JSON text in this answer, not an object.
    return JSONResponse(
        {
            **details,
            **MESSAGE_DEFAULTS,
            "events": events,
            "unique_args": json.dumps(mail.unique_args),
        }
    )


def _not_found(call: Call) -> Response:
    return error(404, [problem("resource not found")])


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route("/v3/mail/send", provider_endpoint(ctx, SPEC, partial(_send, ctx)), methods=["POST"]),
        Route(
            "/v3/messages",
            provider_endpoint(ctx, SPEC, partial(_list_messages, ctx)),
            methods=["GET"],
        ),
        Route(
            "/v3/messages/{msg_id}",
            provider_endpoint(ctx, SPEC, partial(_get_message, ctx)),
            methods=["GET"],
        ),
        # Last: every other path is SendGrid's 404.
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
