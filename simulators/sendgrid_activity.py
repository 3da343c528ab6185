"""SendGrid's Email Activity feed: `GET /v3/messages?query=…&limit=…` and `GET /v3/messages/{id}`.

The feed lists every `to` recipient of every accepted mail (see `sendgrid`), newest
first; the query language is the subset `parse_query` reads.

Unlike the real feed, this one is consistent at once: SendGrid's takes a while (seconds,
minutes under load, no documented bound) to show an accepted mail. It also needs no paid
"email activity history" add-on or Email Activity key scope (else 403), keeps everything
(SendGrid: 3 days, 30 with the add-on), has no 6-requests-a-minute limit (429), knows only
a subset of the query language (no OR, NOT, LIKE, IN, BETWEEN TIMESTAMP, categories, ...:
a 400 here), and lists no cc/bcc recipients.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from simulators.common import Call, SimContext
from simulators.sendgrid_api import AUTH_FAILED
from simulators.state import StoredMail

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


def list_messages(ctx: SimContext, call: Call) -> Response:
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


def get_message(ctx: SimContext, call: Call) -> Response:
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
