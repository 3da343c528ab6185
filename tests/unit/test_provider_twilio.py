"""Twilio's adapter: the send with its StatusCallback, every classify branch, the declaration."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
from connector_support import PHONE, command, make_tenants, tenant
from tenant_accounts import primary

import providers
from providers.base import Delivered, Outcome, Rejected, RetryLater
from providers.spec import Messaging
from providers.twilio import Twilio, TwilioAccount
from providers.twilio_status import TwilioVerifier, event_id, event_type, normalize_twilio
from schemas.events import SendSms

ADAPTER = Twilio()
T1 = tenant(make_tenants())
BASE = "https://api.twilio.com"
SID = "SM0123456789abcdef0123456789abcdef"
CALLBACK = "https://hub.school.example/webhooks/twilio/t1"


def built(payload: SendSms, account: str | None = None) -> httpx.Request:
    return ADAPTER.build_request(command("twilio", payload, account=account), payload, T1, BASE)


def form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode(), strict_parsing=True)


# --- the send ----------------------------------------------------------------------


def test_a_send_with_a_callback_url_asks_for_status_callbacks_there() -> None:
    account = primary(T1, TwilioAccount)
    request = built(SendSms(to=PHONE, text="Fee received", callback_url=CALLBACK))
    assert (request.method, str(request.url)) == (
        "POST",
        f"https://api.twilio.com/2010-04-01/Accounts/{account.account_sid}/Messages.json",
    )
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "To": [PHONE],
        "From": ["+15005550006"],
        "Body": ["Fee received"],
        "StatusCallback": [CALLBACK],
    }


def test_a_send_without_a_callback_url_asks_for_none() -> None:
    request = built(SendSms(to=PHONE, text="Fee received"))
    assert form(request) == {"To": [PHONE], "From": ["+15005550006"], "Body": ["Fee received"]}


def test_the_callback_url_keeps_its_query_string_intact() -> None:
    url = "https://hub.school.example/webhooks/twilio/t1?batch=7&x=a%20b"
    request = built(SendSms(to=PHONE, text="x", callback_url=url))
    assert form(request)["StatusCallback"] == [url]


def test_the_send_authenticates_with_the_named_accounts_sid_and_token() -> None:
    backup = T1.by_label("twilio-backup")
    assert backup is not None and isinstance(backup.config, TwilioAccount)
    request = built(SendSms(to=PHONE, text="x"), account="twilio-backup")
    expected = httpx.BasicAuth(
        backup.config.account_sid, backup.config.auth_token.get_secret_value()
    )
    probe = next(expected.auth_flow(httpx.Request("GET", "https://x")))
    assert request.headers["authorization"] == probe.headers["authorization"]
    assert form(request)["From"] == ["+15005550007"]


# --- classify, over a mock Twilio ----------------------------------------------------


def answered(status: int, body: object = None, headers: dict[str, str] | None = None) -> Outcome:
    """Send the built request to a MockTransport answering like Twilio, then classify."""

    def twilio(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Basic ")
        if body is None:
            return httpx.Response(status, text="<html>gateway</html>", headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    with httpx.Client(transport=httpx.MockTransport(twilio)) as client:
        response = client.send(built(SendSms(to=PHONE, text="Fee received")))
    return ADAPTER.classify(response)


def twilio_error(code: int, message: str, status: int) -> dict[str, object]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def test_a_created_message_is_delivered_with_its_sid() -> None:
    body = {"sid": SID, "status": "queued", "num_segments": "2", "to": PHONE}
    assert answered(201, body) == Delivered(SID, 201, {"status": "queued", "num_segments": "2"})


def test_an_invalid_number_is_rejected_with_twilios_code() -> None:
    body = twilio_error(21211, "The 'To' number 12 is not a valid phone number.", 400)
    assert answered(400, body) == Rejected(
        "The 'To' number 12 is not a valid phone number.", 400, "21211"
    )


def test_refused_credentials_are_rejected_with_an_account_error() -> None:
    outcome = answered(401, twilio_error(20003, "Authenticate", 401))
    assert outcome == Rejected("Authenticate", 401, "20003")
    messaging = providers.get("twilio").messaging
    assert messaging is not None
    assert "20003" in messaging.account_errors


def test_too_many_requests_is_retried_after_twilios_wait() -> None:
    outcome = answered(429, twilio_error(20429, "Too Many Requests", 429), {"Retry-After": "3"})
    assert outcome == RetryLater("Too Many Requests", 429, "20429", 3.0)


def test_a_server_error_is_retried() -> None:
    outcome = answered(503, twilio_error(20500, "Internal Server Error", 503))
    assert outcome == RetryLater("Internal Server Error", 503, "20500", None)


def test_a_gateway_page_without_json_is_retried_without_a_code() -> None:
    assert answered(502) == RetryLater("Bad Gateway", 502, None, None)


def test_a_200_without_a_sid_is_not_delivered() -> None:
    # Only a Message resource proves a message was created.
    assert answered(200, {"status": "queued"}) == Rejected("OK", 200, None)


# --- the declaration -----------------------------------------------------------------


def test_twilio_declares_its_receipts_and_their_signature() -> None:
    declared = providers.get("twilio")
    webhooks = declared.webhooks
    assert webhooks is not None
    assert isinstance(webhooks.verifier, TwilioVerifier)
    assert webhooks.normalize is normalize_twilio
    assert (webhooks.secret_field, webhooks.body_format, webhooks.methods) == (
        "auth_token",
        "form",
        ("POST",),
    )
    assert (webhooks.event_type, webhooks.event_id) == (event_type, event_id)
    assert webhooks.verifier.signature_header == "x-twilio-signature"
    assert webhooks.verifier.event_id_header is None
    assert webhooks.acknowledge is None  # Twilio reads only the status code


def test_twilio_declares_its_rate_and_account_errors() -> None:
    assert providers.get("twilio").messaging == Messaging(
        rate_per_second=1.0,
        receipts=True,
        account_errors=frozenset({"20003", "30002", "10001"}),
    )


def test_twilio_stays_a_whole_sms_provider() -> None:
    declared = providers.get("twilio")
    assert (declared.category, declared.adapter.payload_type) == ("sms", SendSms)
    assert declared.operations == ("sms.send",)
    assert "twilio" in providers.with_webhooks()
