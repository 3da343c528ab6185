"""Twilio Programmable Messaging: POST /2010-04-01/Accounts/{sid}/Messages.json.

HTTP Basic with the account SID and auth token, form-encoded To/From/Body.
Test connection: GET /2010-04-01/Accounts/{sid}.json, the account itself.

Twilio takes no idempotency key. The connector's ledger (the compacted results
topic) keeps a command whose result was recorded from being sent again; for an
attempt in doubt (the worker died between Twilio's answer and the record), the
lookup asks Twilio itself: it lists this account's messages To the recipient
From the tenant's number and looks for one with the same body created since the
attempt began. Two queries, because `DateSent` filters only see messages that
were sent: a message still `queued`/`accepted` has no DateSent yet.

1. `DateSent>=` the day before the attempt (the filter is day-granular, GMT):
   every sent message of the window, usually on the first page.
2. If none matched: the same list without a date filter, read to its last page,
   which also holds the unsent messages wherever Twilio sorts them (it sorts by
   DateSent and does not document where a null DateSent goes). A To/From pair has
   a short history, so this costs a page or two.

The match is exact on the body: Twilio stores the body as sent from a plain From
number (Messaging Services' smart encoding or link shortening would change it).

Delivery receipts: a command's `callback_url` goes out as `StatusCallback`; Twilio
posts each later status there, signed with the account's auth token
(providers.twilio_status: the verifier and normalizer). Twilio calls back only
when asked: a message sent without one has no receipts.

Sending rate: Twilio queues what it cannot send at once and releases one message
segment per second per US/Canada long code (twilio.com/docs/api/errors/21611 and
the support article "Understanding Twilio Rate Limits and Message Queues"); short
codes (100+), toll-free numbers and other countries' senders differ, and newer
accounts get account-level throughput instead. 1/s is the documented default
for the sender the demo uses, per sender, not a per-account figure, and in
segments: a three-segment message takes three seconds.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.settings import Settings
from core.tenants import Tenant
from providers.base import (
    Category,
    Delivered,
    Outcome,
    RetryLater,
    basic_auth,
    classify_failure,
    json_or_empty,
)
from providers.lookup import Found, LookupOutcome, NextPage, NotFound, as_utc, query_failed
from providers.spec import API, Messaging, Provider, Webhooks
from providers.twilio_status import TwilioVerifier, event_id, event_type, normalize_twilio
from schemas.events import ConnectorCommand, SendSms

API_PATH = "/2010-04-01/Accounts/"
LOOKUP_PAGE_SIZE = 50
# How far the provider's clock may run behind ours when comparing date_created with `since`.
CLOCK_SKEW = timedelta(minutes=5)
# What a phone number may carry besides its digits ("+91 98765-43210").
_NUMBER_PUNCTUATION = re.compile(r"[\s().-]")
# Error codes meaning the account, not the message, is unusable: the backup is tried.
ACCOUNT_ERRORS = frozenset(
    {
        "20003",  # "Authenticate": wrong credentials, or a suspended or closed account (401)
        "30002",  # "Account suspended" (balance, billing, policy): receipts and the resource
        "10001",  # "Account is not active": unconfirmed (not found on twilio.com)
    }
)


class TwilioAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    account_sid: str = Field(pattern=r"^AC\w+$")
    auth_token: SecretStr
    from_number: str


def _account(tenant: Tenant, command: ConnectorCommand) -> TwilioAccount:
    return tenant.account("twilio", TwilioAccount, command.account)


def _auth(account: TwilioAccount) -> dict[str, str]:
    return basic_auth(account.account_sid, account.auth_token.get_secret_value())


def _messages_url(base_url: str, account: TwilioAccount) -> str:
    return f"{base_url.rstrip('/')}{API_PATH}{account.account_sid}/Messages.json"


def _same_number(a: object, b: str) -> bool:
    return isinstance(a, str) and _NUMBER_PUNCTUATION.sub("", a) == _NUMBER_PUNCTUATION.sub("", b)


def _created_since(message: dict[str, Any], since: datetime) -> bool:
    try:
        created = parsedate_to_datetime(str(message.get("date_created")))
    except (TypeError, ValueError):
        return False
    return as_utc(created) >= as_utc(since) - CLOCK_SKEW


class Twilio:
    name = "twilio"
    category: Category = "sms"
    payload_type = SendSms
    # Twilio lists a message as soon as it is created: its answer is conclusive at once.
    lookup_settle_seconds = 0.0

    def build_request(
        self, command: ConnectorCommand, payload: SendSms, tenant: Tenant, base_url: str
    ) -> httpx.Request:
        account = _account(tenant, command)
        form = {"To": payload.to, "From": account.from_number, "Body": payload.text}
        if payload.callback_url:
            form["StatusCallback"] = payload.callback_url  # where this message's receipts go
        return httpx.Request(
            "POST", _messages_url(base_url, account), data=form, headers=_auth(account)
        )

    def lookup_request(
        self,
        command: ConnectorCommand,
        payload: SendSms,
        tenant: Tenant,
        base_url: str,
        since: datetime,
    ) -> httpx.Request:
        day_before = (as_utc(since) - timedelta(days=1)).date()
        return self._list_request(
            base_url, _account(tenant, command), payload, day_before.isoformat()
        )

    def _list_request(
        self, base_url: str, account: TwilioAccount, payload: SendSms, sent_after: str | None
    ) -> httpx.Request:
        params = {"To": payload.to, "From": account.from_number}
        if sent_after is not None:
            params["DateSent>"] = sent_after  # on or after that day, GMT
        params["PageSize"] = str(LOOKUP_PAGE_SIZE)
        url = _messages_url(base_url, account)
        return httpx.Request("GET", url, params=params, headers=_auth(account))

    def read_lookup(
        self,
        command: ConnectorCommand,
        payload: SendSms,
        tenant: Tenant,
        response: httpx.Response,
        since: datetime,
    ) -> LookupOutcome:
        body = json_or_empty(response)
        if response.status_code != 200:
            code = body.get("code")
            reason = str(body.get("message") or response.reason_phrase or "error")
            return query_failed(response, reason, str(code) if code is not None else None)
        messages = body.get("messages")
        if not isinstance(messages, list):
            return RetryLater("Twilio's message list has no messages array", 200)
        for message in messages:
            if (
                isinstance(message, dict)
                and message.get("body") == payload.text
                and _same_number(message.get("to"), payload.to)
                and _created_since(message, since)
            ):
                sid = message.get("sid")
                return Found(
                    str(sid) if sid else None, {"status": str(message.get("status") or "")}
                )
        return self._read_on(response, body, payload, _account(tenant, command))

    def _read_on(
        self,
        response: httpx.Response,
        body: dict[str, object],
        payload: SendSms,
        account: TwilioAccount,
    ) -> LookupOutcome:
        """The next page; after the DateSent-filtered list, the unfiltered one (unsent messages)."""
        # NextPage needs the base URL, which read_lookup is not given: it is the part of
        # the query's URL before Twilio's own path.
        url = str(response.request.url)
        if API_PATH not in url:
            raise ValueError(f"not an answer to a Twilio message list: {url}")
        base_url = url[: url.index(API_PATH)]
        next_page = body.get("next_page_uri")
        if isinstance(next_page, str) and next_page:
            return NextPage(httpx.Request("GET", base_url + next_page, headers=_auth(account)))
        if "DateSent>" in response.request.url.params:
            return NextPage(self._list_request(base_url, account, payload, None))
        return NotFound()

    def probe_request(self, tenant: Tenant, label: str | None, base_url: str) -> httpx.Request:
        """Fetch the account resource: only its own SID and token may read it."""
        account = tenant.account("twilio", TwilioAccount, label)
        url = f"{base_url.rstrip('/')}{API_PATH}{account.account_sid}.json"
        return httpx.Request("GET", url, headers=_auth(account))

    def auth(
        self, tenant: Tenant, settings: Settings, label: str | None = None
    ) -> httpx.Auth | None:
        return None  # credentials travel in build_request's headers

    def classify(self, response: httpx.Response) -> Outcome:
        body = json_or_empty(response)
        if response.status_code in (200, 201) and isinstance(body.get("sid"), str):
            return Delivered(
                str(body["sid"]),
                response.status_code,
                {
                    "status": str(body.get("status") or ""),
                    "num_segments": str(body.get("num_segments") or ""),
                },
            )
        code = body.get("code")
        message = str(body.get("message") or response.reason_phrase or "error")
        return classify_failure(response, message, str(code) if code is not None else None)


PROVIDER = Provider(
    name="twilio",
    title="Twilio",
    category=Twilio.category,
    account_model=TwilioAccount,
    adapter=Twilio(),
    base_urls={API: "https://api.twilio.com"},
    simulator_paths={API: "/twilio"},
    summary="SMS: Programmable Messaging, status-callback receipts, lookups of in-doubt sends",
    docs_url="https://www.twilio.com/docs/messaging/api/message-resource",
    webhooks=Webhooks(
        verifier=TwilioVerifier(),
        normalize=normalize_twilio,
        secret_field="auth_token",  # noqa: S106 - Twilio signs callbacks with the auth token
        body_format="form",
        event_type=event_type,
        event_id=event_id,
    ),
    messaging=Messaging(
        # One segment a second per US/Canada long code (module docstring); per sender.
        rate_per_second=1.0,
        receipts=True,
        account_errors=ACCOUNT_ERRORS,
    ),
)
