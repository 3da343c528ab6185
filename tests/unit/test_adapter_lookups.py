"""Lookups: the query each adapter builds for an attempt in doubt, and what each answer means."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from connector_support import BARE, PHONE, command, email, make_tenants, sms, tenant
from tenant_accounts import primary

from providers.base import MissingCredentialsError, RetryLater
from providers.lookup import (
    Found,
    LookupOutcome,
    NextPage,
    NotFound,
    SupportsLookup,
    lookup_refused,
    query_failed,
    supports_lookup,
)
from providers.razorpay import Razorpay
from providers.sendgrid import SendGrid, SendGridAccount
from providers.twilio import Twilio, TwilioAccount

TENANTS = make_tenants()
T1 = tenant(TENANTS)
NO_ACCOUNTS = tenant(TENANTS, BARE)
TWILIO, SENDGRID = Twilio(), SendGrid()
BASE = "http://sim/twilio"
SINCE = datetime(2025, 3, 10, 8, 30, tzinfo=UTC)
TEXT = "Fee of Rs 1,500 received. Thank you."
# The filters of the first query as Twilio echoes them into its page URIs.
SENT_FILTER = "To=%2B919876543210&DateSent%3E=2025-03-09&PageSize=50"


def account_sid() -> str:
    return primary(T1, TwilioAccount).account_sid


def messages_path() -> str:
    return f"/2010-04-01/Accounts/{account_sid()}/Messages.json"


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC))


def message(
    sid: str = "SM" + "a" * 32,
    *,
    body: str = TEXT,
    to: str = PHONE,
    created: datetime = SINCE + timedelta(seconds=2),
    status: str = "sent",
) -> dict[str, Any]:
    """A Message resource as Twilio lists it (the fields a lookup reads, and some it ignores)."""
    return {
        "account_sid": account_sid(),
        "body": body,
        "date_created": rfc2822(created),
        "date_sent": rfc2822(created + timedelta(seconds=1)) if status != "queued" else None,
        "direction": "outbound-api",
        "from": "+15005550006",
        "sid": sid,
        "status": status,
        "to": to,
    }


def twilio_page(
    messages: list[dict[str, Any]], next_page_uri: str | None = None, page: int = 0
) -> dict[str, Any]:
    return {
        "end": page * 50 + max(len(messages) - 1, 0),
        "first_page_uri": f"{messages_path()}?PageSize=50&Page=0",
        "messages": messages,
        "next_page_uri": next_page_uri,
        "page": page,
        "page_size": 50,
        "previous_page_uri": None,
        "start": page * 50,
        "uri": f"{messages_path()}?PageSize=50&Page={page}",
    }


def answer(request: httpx.Request, status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=request)


def first_query() -> httpx.Request:
    payload = sms()
    return TWILIO.lookup_request(command("twilio", payload), payload, T1, BASE, SINCE)


def read_twilio(response: httpx.Response, text: str = TEXT, to: str = PHONE) -> LookupOutcome:
    payload = sms(to=to, text=text)
    return TWILIO.read_lookup(command("twilio", payload), payload, T1, response, SINCE)


def basic_of(request: httpx.Request) -> tuple[str, str]:
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


# --- the capability --------------------------------------------------------------


def test_twilio_and_sendgrid_support_lookups_razorpay_does_not() -> None:
    assert supports_lookup(TWILIO) and supports_lookup(SENDGRID)
    assert not supports_lookup(Razorpay())

    class HalfDone:
        lookup_settle_seconds = "soon"

        def lookup_request(self) -> None: ...
        def read_lookup(self) -> None: ...

    assert not supports_lookup(HalfDone())


def test_settle_times() -> None:
    adapters: list[SupportsLookup] = [TWILIO, SENDGRID]
    assert [a.lookup_settle_seconds for a in adapters] == [0.0, 600.0]


@pytest.mark.parametrize(
    ("status", "refused"),
    [(s, True) for s in (400, 401, 403, 404, 422)]
    + [(s, False) for s in (408, 425, 429, 500, 503)],
)
def test_query_failures_are_retry_later_and_permanent_ones_say_so(
    status: int, refused: bool
) -> None:
    response = httpx.Response(status, headers={"Retry-After": "3"})
    outcome = query_failed(response, "why", "E1")
    assert isinstance(outcome, RetryLater)
    assert (outcome.http_status, outcome.error_code) == (status, "E1")
    assert lookup_refused(outcome) is refused
    if refused:
        assert outcome.reason == "lookup refused by the provider: why"
        assert outcome.retry_after is None
    else:
        assert (outcome.reason, outcome.retry_after) == ("why", 3.0)


def test_a_failure_without_status_is_not_a_refusal() -> None:
    assert not lookup_refused(RetryLater("connection refused"))
    assert not lookup_refused(RetryLater("unreadable", 200))


# --- Twilio: the queries ---------------------------------------------------------


def test_twilio_first_query_lists_sent_messages_from_the_day_before() -> None:
    request = first_query()
    assert request.method == "GET"
    assert str(request.url).startswith(f"{BASE}{messages_path()}?")
    assert dict(request.url.params) == {
        "To": PHONE,
        "From": primary(T1, TwilioAccount).from_number,
        "DateSent>": "2025-03-09",
        "PageSize": "50",
    }
    token = primary(T1, TwilioAccount).auth_token.get_secret_value()
    assert basic_of(request) == (account_sid(), token)


@pytest.mark.parametrize(
    ("since", "day"),
    [
        (datetime(2025, 3, 10, 0, 0), "2025-03-09"),  # naive: taken as UTC
        (
            datetime(2025, 3, 10, 1, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2025-03-08",
        ),
    ],
)
def test_twilio_date_filter_is_the_utc_day_before(since: datetime, day: str) -> None:
    payload = sms()
    request = TWILIO.lookup_request(command("twilio", payload), payload, T1, BASE + "/", since)
    assert request.url.params["DateSent>"] == day
    assert request.url.path == "/twilio" + messages_path()


def test_twilio_lookup_asks_the_account_the_command_was_sent_from() -> None:
    payload = sms()
    cmd = command("twilio", payload, account="twilio-backup")
    request = TWILIO.lookup_request(cmd, payload, T1, BASE, SINCE)
    backup = T1.by_label("twilio-backup")
    assert backup is not None and isinstance(backup.config, TwilioAccount)
    sid = backup.config.account_sid
    assert sid != account_sid()
    assert request.url.path == f"/twilio/2010-04-01/Accounts/{sid}/Messages.json"
    assert request.url.params["From"] == "+15005550007"
    assert basic_of(request) == (sid, backup.config.auth_token.get_secret_value())


def test_twilio_lookup_without_account_is_missing_credentials() -> None:
    payload = sms()
    with pytest.raises(MissingCredentialsError, match="'bare' has no enabled twilio account"):
        TWILIO.lookup_request(command("twilio", payload), payload, NO_ACCOUNTS, BASE, SINCE)


# --- Twilio: the answers ---------------------------------------------------------


def test_twilio_matching_message_is_found_with_its_status() -> None:
    page = twilio_page(
        [message("SMother", body="Another text"), message("SMmine", status="delivered")]
    )
    assert read_twilio(answer(first_query(), 200, page)) == Found("SMmine", {"status": "delivered"})


@pytest.mark.parametrize(
    "near_miss",
    [
        {"body": TEXT + " "},
        {"body": TEXT.lower()},
        {"to": "+919876543211"},
        {"created": SINCE - timedelta(minutes=6)},
    ],
)
def test_twilio_near_misses_are_not_this_command(near_miss: dict[str, Any]) -> None:
    page = twilio_page([message(**near_miss)])
    assert not isinstance(read_twilio(answer(first_query(), 200, page)), Found)


def test_twilio_tolerates_clock_skew_and_number_formatting() -> None:
    page = twilio_page([message(created=SINCE - timedelta(minutes=4))])
    assert isinstance(read_twilio(answer(first_query(), 200, page)), Found)
    assert isinstance(
        read_twilio(answer(first_query(), 200, twilio_page([message()])), to="+91 98765-43210"),
        Found,
    )


def test_twilio_next_page_is_asked_with_the_same_credentials() -> None:
    next_uri = f"{messages_path()}?{SENT_FILTER}&Page=1&PageToken=PASMx"
    outcome = read_twilio(answer(first_query(), 200, twilio_page([message(body="no")], next_uri)))
    assert isinstance(outcome, NextPage)
    assert (outcome.request.method, str(outcome.request.url)) == ("GET", BASE + next_uri)
    assert basic_of(outcome.request) == basic_of(first_query())


def test_twilio_after_the_sent_messages_it_lists_unsent_ones_too() -> None:
    # No match among the sent messages: read the list without the DateSent filter, which
    # is the only one that shows messages still queued (they have no DateSent yet).
    outcome = read_twilio(answer(first_query(), 200, twilio_page([])))
    assert isinstance(outcome, NextPage)
    params = dict(outcome.request.url.params)
    assert "DateSent>" not in params
    assert params["To"] == PHONE and params["PageSize"] == "50"
    assert outcome.request.url.path == "/twilio" + messages_path()
    queued = twilio_page([message("SMq", status="queued")])
    assert read_twilio(answer(outcome.request, 200, queued)) == Found("SMq", {"status": "queued"})
    assert read_twilio(answer(outcome.request, 200, twilio_page([]))) == NotFound()


@pytest.mark.parametrize("body", [{}, {"messages": "none"}, ["not", "an", "object"]])
def test_twilio_unreadable_list_is_retry_later(body: Any) -> None:
    outcome = read_twilio(answer(first_query(), 200, body))
    assert isinstance(outcome, RetryLater)
    assert not lookup_refused(outcome)


def test_twilio_failed_queries() -> None:
    busy = answer(
        first_query(),
        429,
        {"code": 20429, "message": "Too Many Requests", "status": 429},
        **{"Retry-After": "2"},
    )
    assert read_twilio(busy) == RetryLater("Too Many Requests", 429, "20429", 2.0)
    refused = read_twilio(
        answer(first_query(), 401, {"code": 20003, "message": "Authenticate", "status": 401})
    )
    assert isinstance(refused, RetryLater) and lookup_refused(refused)
    assert (refused.http_status, refused.error_code) == (401, "20003")
    assert "Authenticate" in refused.reason
    down = read_twilio(
        httpx.Response(502, content=b"<html>bad gateway</html>", request=first_query())
    )
    assert isinstance(down, RetryLater) and not lookup_refused(down)


def test_twilio_lookup_pages_through_a_mock_twilio() -> None:
    """The whole conversation: sent messages over two pages, then the unfiltered list."""
    seen: list[httpx.URL] = []
    second = f"{messages_path()}?{SENT_FILTER}&Page=1&PageToken=PASM1"

    def twilio(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        assert basic_of(request)[0] == account_sid()
        if "DateSent>" not in request.url.params:
            return httpx.Response(200, json=twilio_page([message("SMq", status="queued")]))
        if request.url.params.get("Page") == "1":
            return httpx.Response(200, json=twilio_page([message("SM2", body="older")], page=1))
        return httpx.Response(200, json=twilio_page([message("SM1", body="other")], second))

    outcome = drive(TWILIO, httpx.MockTransport(twilio), sms())
    assert outcome == Found("SMq", {"status": "queued"})
    assert [u.params.get("Page") for u in seen] == [None, "1", None]


def drive(
    adapter: Twilio | SendGrid, transport: httpx.MockTransport, payload: Any
) -> LookupOutcome:
    """What the executor will do: ask, read, follow NextPage until an answer."""
    cmd = command(adapter.name, payload, key="key-1")
    since = SINCE
    with httpx.Client(transport=transport) as client:
        request = adapter.lookup_request(cmd, payload, T1, "http://sim/" + adapter.name, since)
        for _ in range(10):
            outcome = adapter.read_lookup(cmd, payload, T1, client.send(request), since)
            if not isinstance(outcome, NextPage):
                return outcome
            request = outcome.request
    raise AssertionError("the lookup never ended")


# --- SendGrid --------------------------------------------------------------------


def sendgrid_query(key: str = "receipt-42") -> httpx.Request:
    payload = email()
    cmd = command("sendgrid", payload, key=key)
    return SENDGRID.lookup_request(cmd, payload, T1, "http://sim/sendgrid/", SINCE)


def read_sendgrid(response: httpx.Response) -> LookupOutcome:
    payload = email()
    return SENDGRID.read_lookup(command("sendgrid", payload), payload, T1, response, SINCE)


def activity_message(
    msg_id: str = "X-id.filterdrecv-1.0", status: str = "delivered"
) -> dict[str, Any]:
    return {
        "from_email": "fees@t1.school.example",
        "msg_id": msg_id,
        "subject": "Fee receipt",
        "to_email": "parent@example.com",
        "status": status,
        "opens_count": 0,
        "clicks_count": 0,
        "last_event_time": "2025-03-10T08:30:05Z",
    }


def test_sendgrid_query_asks_the_activity_feed_for_the_key() -> None:
    request = sendgrid_query()
    assert (request.method, request.url.path) == ("GET", "/sendgrid/v3/messages")
    assert dict(request.url.params) == {
        "query": "unique_args['idempotency_key']=\"receipt-42\"",
        "limit": "10",
    }
    api_key = primary(T1, SendGridAccount).api_key.get_secret_value()
    assert request.headers["authorization"] == f"Bearer {api_key}"


def test_sendgrid_query_escapes_quotes_and_backslashes_in_the_key() -> None:
    query = sendgrid_query('a"b\\c').url.params["query"]
    assert query == 'unique_args[\'idempotency_key\']="a\\"b\\\\c"'


def test_sendgrid_lookup_without_account_is_missing_credentials() -> None:
    payload = email()
    with pytest.raises(MissingCredentialsError, match="'bare' has no enabled sendgrid account"):
        SENDGRID.lookup_request(
            command("sendgrid", payload), payload, NO_ACCOUNTS, "http://x", SINCE
        )


def test_sendgrid_any_message_is_found_none_is_not() -> None:
    found = read_sendgrid(answer(sendgrid_query(), 200, {"messages": [activity_message()]}))
    assert found == Found("X-id.filterdrecv-1.0", {"status": "delivered", "message_id": "X-id"})
    assert read_sendgrid(answer(sendgrid_query(), 200, {"messages": []})) == NotFound()


@pytest.mark.parametrize("body", [{}, {"messages": None}, {"errors": []}])
def test_sendgrid_unreadable_answer_is_retry_later(body: dict[str, Any]) -> None:
    outcome = read_sendgrid(answer(sendgrid_query(), 200, body))
    assert isinstance(outcome, RetryLater) and not lookup_refused(outcome)


def test_sendgrid_failed_queries() -> None:
    bad = {"errors": [{"message": "invalid syntax: 'bad_field' is not a known field"}]}
    refused = read_sendgrid(answer(sendgrid_query(), 400, bad))
    assert isinstance(refused, RetryLater) and lookup_refused(refused)
    assert refused.reason.endswith("'bad_field' is not a known field")
    forbidden = read_sendgrid(
        answer(sendgrid_query(), 403, {"errors": [{"message": "access forbidden"}]})
    )
    assert isinstance(forbidden, RetryLater) and lookup_refused(forbidden)
    limited = {"errors": [{"message": "too many requests"}]}
    assert read_sendgrid(
        answer(sendgrid_query(), 429, limited, **{"Retry-After": "10"})
    ) == RetryLater("too many requests", 429, None, 10.0)


def test_sendgrid_lookup_through_a_mock_feed() -> None:
    def feed(request: httpx.Request) -> httpx.Response:
        wanted = "unique_args['idempotency_key']=\"key-1\""
        hits = [activity_message()] if request.url.params["query"] == wanted else []
        return httpx.Response(200, json={"messages": hits})

    assert isinstance(drive(SENDGRID, httpx.MockTransport(feed), email()), Found)
