"""SendGrid v3 Mail Send: `POST /v3/mail/send` with `Authorization: Bearer <api key>`."""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.tenants import Tenant
from simulators.common import Call, ProviderSpec, SimContext, bearer_token, provider_endpoint

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


def _send(call: Call) -> Response:
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
    return Response(status_code=202, headers={"X-Message-Id": secrets.token_urlsafe(16)})


def _not_found(call: Call) -> Response:
    return error(404, [problem("resource not found")])


def routes(ctx: SimContext) -> list[BaseRoute]:
    return [
        Route("/v3/mail/send", provider_endpoint(ctx, SPEC, _send), methods=["POST"]),
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
