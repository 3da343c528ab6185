"""A simulated Twilio message's status: how it moves, and the status callbacks it sends.

A message remembers whether it arrives (`ctx.receipts.outcome` when it was created).
Created with a `StatusCallback` URL, it posts there what Twilio posts
(twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks):
`sent`, then `delivered`, or `undelivered` with ErrorCode 30003 ("Unreachable
destination handset"); a silent address's carrier never reports, so nothing.
Each callback is form-encoded and signed the way Twilio signs: X-Twilio-Signature
over that exact URL and the form, keyed by the account's auth token
(providers.twilio_status.signature). The stored message moves with each callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from providers.twilio_status import ERROR_DESCRIPTIONS, signature
from simulators.common import FORM_TYPE, SimContext
from simulators.payments import SentCallback
from simulators.receipts import Arrival
from simulators.state import StoredSms
from simulators.twilio_api import API_VERSION, account_of

# Where a message ends: a silent address's carrier never reports, so it stays "sent".
FINAL_STATUS: dict[Arrival, str | None] = {
    "delivered": "delivered",
    "undelivered": "undelivered",
    "silent": None,
}
UNDELIVERED_CODE = 30003  # "Unreachable destination handset"
USER_AGENT = "TwilioProxy/1.1"


@dataclass
class TwilioMessage(StoredSms):
    """A stored message and whether it arrives (the receipt rules' word at creation)."""

    arrival: Arrival = "delivered"


def arrival_of(message: StoredSms) -> Arrival:
    return message.arrival if isinstance(message, TwilioMessage) else "delivered"


def rfc2822(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(timestamp), UTC))


def advance(resource: dict[str, Any], status: str, at: float) -> None:
    """Move a message resource on to `status` ("sent", "delivered", "undelivered") at `at`."""
    moment = rfc2822(at)
    resource.update(status=status, date_updated=moment)
    if resource["date_sent"] is None:
        resource["date_sent"] = moment
    if status == "undelivered":
        code = UNDELIVERED_CODE
        resource.update(error_code=code, error_message=ERROR_DESCRIPTIONS[str(code)])


def callback_fields(resource: dict[str, Any]) -> dict[str, str]:
    """A status callback's form, as Twilio posts it for the message's current status."""
    status = str(resource["status"])
    fields = {
        "SmsSid": resource["sid"],
        "SmsStatus": status,
        "MessageStatus": status,
        "To": resource["to"],
        "MessageSid": resource["sid"],
        "AccountSid": resource["account_sid"],
        "ApiVersion": API_VERSION,
    }
    if resource["from"]:
        fields["From"] = resource["from"]
    if resource["messaging_service_sid"]:
        fields["MessagingServiceSid"] = resource["messaging_service_sid"]
    if resource["error_code"] is not None:
        fields["ErrorCode"] = str(resource["error_code"])
    if status in ("delivered", "undelivered"):
        done = parsedate_to_datetime(resource["date_updated"]).astimezone(UTC)
        fields["RawDlrDoneDate"] = done.strftime("%y%m%d%H%M")  # the carrier's, no zone
    return fields


async def post_callbacks(ctx: SimContext, message: TwilioMessage, url: str) -> None:
    """`sent`, then where the message ends, to its StatusCallback URL, signed."""
    found = account_of(ctx, message.resource["account_sid"])
    final = FINAL_STATUS[message.arrival]
    if found is None or final is None:
        return  # the account went away with a tenant reload; a silent carrier
    tenant, account = found
    token = account.auth_token.get_secret_value()
    for status in ("sent", final):
        advance(message.resource, status, ctx.state.clock())
        fields = callback_fields(message.resource)
        headers = {
            "Content-Type": FORM_TYPE,
            "User-Agent": USER_AGENT,
            "X-Twilio-Signature": signature(url, fields, token),
        }
        await ctx.receipts.post(
            SentCallback(
                provider="twilio",
                tenant=tenant.id,
                order_id=message.resource["sid"],
                payment_id="",
                event=status,
                url=url,
                body=urlencode(fields).encode(),
                headers=headers,
            )
        )
