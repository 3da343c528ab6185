"""Twilio Programmable Messaging: send, list and fetch Message resources.

- `POST /2010-04-01/Accounts/{sid}/Messages.json` creates (sends) a message.
- `GET  /2010-04-01/Accounts/{sid}/Messages.json` lists them, newest first, filtered
  by To, From, DateSent, DateSent< and DateSent>, paged with PageSize/Page/PageToken
  in Twilio's envelope (`messages`, `next_page_uri`, `first_page_uri`, ...).
- `GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json` fetches one.

What every Twilio resource shares (auth, errors) and the Account resource, which the
hub's test connection fetches, are in `twilio_api`.

Every created message is kept (per account, cleared by a reset); see `view` for its
status progression. Whether it arrives is the receipt rules' word when it is created
(simulators.receipts: `POST /_sim/messages/undeliverable` or `/silent`).

Status callbacks: a message created with `StatusCallback` (an http(s) URL, else
error 21609) gets Twilio's callbacks there, form-encoded and signed with the
account's auth token over that exact URL (X-Twilio-Signature): `sent`, then
`delivered`, or `undelivered` with ErrorCode 30003 for an undeliverable address;
none for a silent one. Twilio calls back only when asked: without StatusCallback,
none. The stored message moves with its callbacks, so list and fetch show them.

Not simulated: failed messages (refused on create instead), the `sending` status,
callback retries, Messaging Services (scheduling, smart encoding), media, deleting
or redacting messages.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators.common import FORM_TYPE, Call, SimContext, provider_endpoint
from simulators.state import StoredSms
from simulators.twilio_api import (
    API_VERSION,
    SPEC,
    authorized_sid,
    error,
    fetch_account,
    not_found,
)
from simulators.twilio_status import (
    FINAL_STATUS,
    TwilioMessage,
    advance,
    arrival_of,
    post_callbacks,
    rfc2822,
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BODY_CHARS = 1600

# Without a status callback, a deterministic progression by age: "queued" (no date_sent)
# when created, "sent" SEND_AFTER s later, delivered (or not) DELIVER_AFTER s after creation.
SEND_AFTER = 1.0
DELIVER_AFTER = 3.0
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000
# The list filters in the order Twilio writes them into its page URIs.
FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")
MAX_CALLBACK_URL = 4000  # twilio.com/docs/api/errors/21609

# GSM 03.38 basic character set (without the escape) and its extension table,
# whose characters take two septets each.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """SMS segments: GSM-7 160 septets (153 when split), else UCS-2 70 units (67 when split)."""
    if not body:
        return 1
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in body):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in body)
        single, multi = 160, 153
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in body)
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _address(value: str) -> str:
    return value.removeprefix("whatsapp:")


def _valid_callback(url: str) -> bool:
    """A fully qualified http(s) URL of at most 4000 characters, no underscore in its host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    return (
        len(url) <= MAX_CALLBACK_URL
        and parts.scheme in ("http", "https")
        and bool(host)
        and "_" not in host
    )


def _validate(fields: dict[str, str]) -> JSONResponse | None:
    to = fields.get("To", "")
    body = fields.get("Body", "")
    if not to:
        return error(400, 21604, "A 'To' phone number is required.")
    if not fields.get("From") and not fields.get("MessagingServiceSid"):
        return error(400, 21603, "A 'From' phone number is required.")
    if not body and not fields.get("MediaUrl"):
        return error(400, 21602, "Message body is required.")
    if not E164.match(_address(to)):
        return error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if len(body) > MAX_BODY_CHARS:
        return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    return _callback_problem(fields.get("StatusCallback"))


def _callback_problem(url: str | None) -> JSONResponse | None:
    if url is None or _valid_callback(url):
        return None
    # The code is Twilio's; the message's wording is unconfirmed.
    return error(400, 21609, f"The StatusCallback URL {url} is not a valid URL.")


def message_resource(account_sid: str, fields: dict[str, str], created: float) -> dict[str, Any]:
    sid = "SM" + secrets.token_hex(16)
    now = rfc2822(created)
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    body = fields.get("Body", "")
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": fields.get("From") or None,
        "messaging_service_sid": fields.get("MessagingServiceSid") or None,
        "num_media": "1" if fields.get("MediaUrl") else "0",
        "num_segments": str(num_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": fields["To"],
        "uri": f"{uri}.json",
    }


def view(message: StoredSms, now: float) -> dict[str, Any]:
    """The message as Twilio would show it `now`: queued, then sent, then where it ends.

    Real Twilio moves at the carrier's pace (queued → sending → sent → delivered,
    or failed/undelivered). Here a status callback moves the stored message; without
    one its age decides (sent SEND_AFTER s after creation, delivered or undelivered
    DELIVER_AFTER s after), so tests can freeze the clock (`SimState.clock`) to keep
    a message queued. A silent address's message stays "sent".
    """
    resource = dict(message.resource)
    age = now - message.created
    if age >= SEND_AFTER and resource["status"] == "queued":
        advance(resource, "sent", message.created + SEND_AFTER)
    final = FINAL_STATUS[arrival_of(message)]
    if age >= DELIVER_AFTER and final is not None and resource["status"] in ("queued", "sent"):
        advance(resource, final, message.created + DELIVER_AFTER)
    return resource


def _create_message(ctx: SimContext, call: Call) -> Response:
    account_sid = authorized_sid(call)
    if isinstance(account_sid, Response):
        return account_sid
    is_form = (
        call.request.headers.get("content-type", "").split(";", maxsplit=1)[0].strip() == FORM_TYPE
    )
    fields: dict[str, str] = call.body if is_form and isinstance(call.body, dict) else {}
    problem = _validate(fields)
    if problem is not None:
        return problem
    created = ctx.state.clock()
    resource = message_resource(account_sid, fields, created)
    message = TwilioMessage(resource, created, ctx.receipts.outcome("twilio", fields["To"]))
    ctx.state.sms.setdefault(account_sid, []).append(message)
    answer = JSONResponse(resource, status_code=201)  # rendered now, before any callback
    callback = fields.get("StatusCallback")
    if callback and message.arrival != "silent":
        ctx.receipts.later(partial(post_callbacks, ctx, message, callback))
    return answer


# --- reading messages back ----------------------------------------------------------


def _filter_date(name: str, value: str) -> date:
    """A DateSent filter's GMT date. A time part (the SDKs send `…T00:00:00Z`) is accepted
    and ignored: Twilio documents these filters as YYYY-MM-DD, day-granular."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be a date as YYYY-MM-DD, not {value!r}") from None
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def _int_param(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return int(raw)


@dataclass(frozen=True)
class ListQuery:
    filters: dict[str, str]  # as given, echoed into the page URIs
    page: int
    page_size: int
    page_token: str | None

    @classmethod
    def parse(cls, params: QueryParams) -> ListQuery:
        filters = {name: params[name] for name in FILTERS if params.get(name)}
        for name in ("DateSent", "DateSent<", "DateSent>"):
            if name in filters:
                _filter_date(name, filters[name])
        return cls(
            filters=filters,
            page=_int_param(params, "Page", 0, 0, 10**9),
            page_size=_int_param(params, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
            page_token=params.get("PageToken") or None,
        )

    def matches(self, message: dict[str, Any]) -> bool:
        f = self.filters
        if ("To" in f and message["to"] != f["To"]) or (
            "From" in f and message["from"] != f["From"]
        ):
            return False
        sent = message["date_sent"]
        if sent is None:  # a message not sent yet has no DateSent to match
            return not any(name in f for name in FILTERS[2:])
        day = parsedate_to_datetime(sent).astimezone(UTC).date()
        return (
            ("DateSent" not in f or day == _filter_date("DateSent", f["DateSent"]))
            and ("DateSent<" not in f or day <= _filter_date("DateSent<", f["DateSent<"]))
            and ("DateSent>" not in f or day >= _filter_date("DateSent>", f["DateSent>"]))
        )

    def uri(self, path: str, page: int, token: str | None = None) -> str:
        params = {**self.filters, "PageSize": str(self.page_size), "Page": str(page)}
        if token is not None:
            params["PageToken"] = token
        return f"{path}?{urlencode(params)}"


def _page_start(items: list[dict[str, Any]], query: ListQuery) -> int:
    """Where this page starts: after the PageToken's message ("PA<sid>" reads on, "PB<sid>"
    reads back), else at Page × PageSize."""
    token = query.page_token
    if token is None:
        return query.page * query.page_size
    sids = [m["sid"] for m in items]
    if token[:2] not in ("PA", "PB") or token[2:] not in sids:
        raise ValueError(f"Invalid PageToken {token!r}")
    at = sids.index(token[2:])
    return at + 1 if token.startswith("PA") else max(0, at - query.page_size)


def _list_messages(ctx: SimContext, call: Call) -> Response:
    account_sid = authorized_sid(call)
    if isinstance(account_sid, Response):
        return account_sid
    try:
        query = ListQuery.parse(call.request.query_params)
        now = ctx.state.clock()
        # Newest first. Twilio sorts by DateSent with unsent messages first; with an
        # age-driven status, the unsent ones are always the newest, so creation order is it.
        views = [view(m, now) for m in reversed(ctx.state.sms.get(account_sid, []))]
        matching = [m for m in views if query.matches(m)]
        start = _page_start(matching, query)
    except ValueError as exc:
        return error(400, 20001, str(exc))  # Twilio's exact code for a bad filter is unconfirmed
    items = matching[start : start + query.page_size]
    path = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
    more = start + len(items) < len(matching)
    return JSONResponse(
        {
            "end": start + max(len(items) - 1, 0),
            "first_page_uri": query.uri(path, 0),
            "messages": items,
            "next_page_uri": query.uri(path, query.page + 1, "PA" + items[-1]["sid"])
            if more and items
            else None,
            "page": query.page,
            "page_size": query.page_size,
            "previous_page_uri": query.uri(path, query.page - 1, "PB" + items[0]["sid"])
            if query.page > 0 and items
            else None,
            "start": start,
            "uri": query.uri(path, query.page, query.page_token),
        }
    )


def _fetch_message(ctx: SimContext, call: Call) -> Response:
    account_sid = authorized_sid(call)
    if isinstance(account_sid, Response):
        return account_sid
    sid = call.request.path_params["message_sid"]
    for message in ctx.state.sms.get(account_sid, []):
        if message.resource["sid"] == sid:
            return JSONResponse(view(message, ctx.state.clock()))
    return not_found(call)


# Where the simulator server serves this provider (its declaration's simulator path).
MOUNT = "/twilio"


def routes(ctx: SimContext) -> list[BaseRoute]:
    messages = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages"
    return [
        Route(
            f"{messages}.json",
            provider_endpoint(ctx, SPEC, partial(_create_message, ctx)),
            methods=["POST"],
        ),
        Route(
            f"{messages}.json",
            provider_endpoint(ctx, SPEC, partial(_list_messages, ctx)),
            methods=["GET"],
        ),
        Route(
            f"{messages}/{{message_sid}}.json",
            provider_endpoint(ctx, SPEC, partial(_fetch_message, ctx)),
            methods=["GET"],
        ),
        Route(
            f"/{API_VERSION}/Accounts/{{account_sid}}.json",
            provider_endpoint(ctx, SPEC, partial(fetch_account, ctx)),
            methods=["GET"],
        ),
        # Last: every other path is Twilio's 404.
        Route(
            "/{path:path}",
            provider_endpoint(ctx, SPEC, not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
