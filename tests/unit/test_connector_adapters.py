"""Adapters: the request each provider gets, and what each provider answer means."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from connector_support import (
    BARE,
    PHONE,
    command,
    email,
    make_tenants,
    order,
    razorpay_order,
    sms,
    tenant,
    twilio_message,
)
from tenant_accounts import primary

import providers
from core.tenants import Tenant
from providers.base import (
    Delivered,
    MissingCredentialsError,
    Rejected,
    RetryLater,
    basic_auth,
    classify_failure,
    json_or_empty,
    parse_retry_after,
)
from providers.razorpay import Razorpay, RazorpayAccount
from providers.sendgrid import SendGrid, SendGridAccount
from providers.twilio import Twilio, TwilioAccount

TENANTS = make_tenants()
T1 = tenant(TENANTS)
NO_ACCOUNTS = tenant(TENANTS, BARE)
RAZORPAY, TWILIO, SENDGRID = Razorpay(), Twilio(), SendGrid()


def basic_credentials(request: httpx.Request) -> tuple[str, str]:
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


def response(
    status: int,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    request = httpx.Request("POST", "http://provider.test/")
    if body is not None:
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, content=content or b"", headers=headers, request=request)


# --- shared helpers ----------------------------------------------------------


def test_basic_auth_encodes_user_and_password() -> None:
    header = basic_auth("rzp_test_key", "s3cr:et")
    assert header == {
        "Authorization": "Basic " + base64.b64encode(b"rzp_test_key:s3cr:et").decode()
    }


def test_json_or_empty_tolerates_non_json_and_non_objects() -> None:
    assert json_or_empty(response(200, content=b"<html>oops</html>")) == {}
    assert json_or_empty(response(200, [1, 2])) == {}
    assert json_or_empty(response(200, {"a": 1})) == {"a": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("5", 5.0), (" 7 ", 7.0), ("0", 0.0), ("soon", None), ("1.5", None)],
)
def test_parse_retry_after_seconds_and_garbage(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(30.0)


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_parse_retry_after_http_date_without_zone_is_utc() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:10 -0000", now=now) == pytest.approx(10.0)


def test_parse_retry_after_superscript_digit_is_garbage_not_a_crash() -> None:
    assert parse_retry_after("²") is None


def test_classify_survives_a_non_ascii_digit_retry_after() -> None:
    answer = httpx.Response(503, headers=[(b"retry-after", "²".encode())])
    outcome = TWILIO.classify(answer)
    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_classify_failure_retries_transient_statuses(status: int) -> None:
    outcome = classify_failure(response(status, headers={"Retry-After": "4"}), "why", "E1")
    assert outcome == RetryLater("why", status, "E1", 4.0)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_classify_failure_rejects_other_client_errors(status: int) -> None:
    outcome = classify_failure(response(status, headers={"Retry-After": "4"}), "why", None)
    assert outcome == Rejected("why", status, None)


# --- Razorpay -----------------------------------------------------------------


def test_razorpay_request_shape() -> None:
    payload = order(notes={"invoice_id": "inv-1", "student": "Asha"})
    request = RAZORPAY.build_request(
        command("razorpay", payload), payload, T1, "http://sim/razorpay"
    )
    assert request.method == "POST"
    assert str(request.url) == "http://sim/razorpay/v1/orders"
    account = primary(T1, RazorpayAccount)
    assert basic_credentials(request) == (account.key_id, account.key_secret.get_secret_value())
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "amount": 150_000,
        "currency": "INR",
        "receipt": "rcpt-1",
        "notes": {"invoice_id": "inv-1", "student": "Asha"},
        "unique_receipt": True,
    }


def test_razorpay_request_keeps_only_the_first_15_notes() -> None:
    notes = {f"n{i:02d}": str(i) for i in range(20)}
    payload = order(notes=notes)
    request = RAZORPAY.build_request(command("razorpay", payload), payload, T1, "http://sim/rzp")
    sent = json.loads(request.content)["notes"]
    assert sent == {f"n{i:02d}": str(i) for i in range(15)}


@pytest.mark.parametrize("base", ["https://api.razorpay.com", "https://api.razorpay.com/"])
def test_razorpay_url_handles_a_trailing_slash(base: str) -> None:
    payload = order()
    request = RAZORPAY.build_request(command("razorpay", payload), payload, T1, base)
    assert str(request.url) == "https://api.razorpay.com/v1/orders"


def test_razorpay_without_account_is_missing_credentials() -> None:
    payload = order()
    with pytest.raises(MissingCredentialsError, match="bare"):
        RAZORPAY.build_request(command("razorpay", payload), payload, NO_ACCOUNTS, "http://x")


def test_razorpay_created_order_is_delivered_with_the_order_id() -> None:
    outcome = RAZORPAY.classify(response(200, razorpay_order("order_XYZ")))
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref == "order_XYZ"
    assert outcome.http_status == 200
    assert outcome.details["order_id"] == "order_XYZ"
    assert outcome.details["receipt"] == "rcpt-1"
    assert outcome.details["status"] == "created"
    assert outcome.details["amount"] == "150000"


def razorpay_error(code: str, description: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "description": description,
            "source": "business",
            "step": "payment_initiation",
            "reason": "input_validation_failed",
            "metadata": {},
            "field": "amount",
        }
    }


@pytest.mark.parametrize(
    ("status", "code", "description"),
    [
        (400, "BAD_REQUEST_ERROR", "The amount must be at least INR 1.00"),
        (401, "BAD_REQUEST_ERROR", "Authentication failed"),
        (404, "BAD_REQUEST_ERROR", "The requested URL was not found on the server."),
    ],
)
def test_razorpay_client_errors_are_rejected_with_code_and_description(
    status: int, code: str, description: str
) -> None:
    outcome = RAZORPAY.classify(response(status, razorpay_error(code, description)))
    assert outcome == Rejected(description, status, code)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_razorpay_transient_errors_retry_later(status: int) -> None:
    outcome = RAZORPAY.classify(
        response(status, razorpay_error("SERVER_ERROR", "The server encountered an error."))
    )
    assert outcome == RetryLater("The server encountered an error.", status, "SERVER_ERROR", None)


def test_razorpay_error_without_body_uses_the_reason_phrase() -> None:
    outcome = RAZORPAY.classify(response(502, content=b"<html>Bad gateway</html>"))
    assert outcome == RetryLater("Bad Gateway", 502, None, None)


@pytest.mark.parametrize(
    "body", [{"entity": "order"}, {"id": 123}, {"error": "weird"}, [razorpay_order()]]
)
def test_razorpay_200_with_unexpected_body_is_not_delivered(body: Any) -> None:
    outcome = RAZORPAY.classify(response(200, body))
    assert not isinstance(outcome, Delivered)


def test_razorpay_order_with_non_200_status_is_not_delivered() -> None:
    assert not isinstance(RAZORPAY.classify(response(500, razorpay_order())), Delivered)


# --- Twilio ---------------------------------------------------------------------


def test_twilio_request_shape() -> None:
    payload = sms(text="Fee received & thanks = 100%")
    request = TWILIO.build_request(command("twilio", payload), payload, T1, "http://sim/twilio/")
    account = primary(T1, TwilioAccount)
    sid = account.account_sid
    assert request.method == "POST"
    assert str(request.url) == f"http://sim/twilio/2010-04-01/Accounts/{sid}/Messages.json"
    assert basic_credentials(request) == (sid, account.auth_token.get_secret_value())
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode(), strict_parsing=True)
    assert form == {
        "To": [PHONE],
        "From": [account.from_number],
        "Body": ["Fee received & thanks = 100%"],
    }
    assert account.from_number == "+15005550006"  # the primary's, not the backup's


def test_twilio_from_number_is_the_tenants() -> None:
    fields = {**primary(T1, TwilioAccount).model_dump(), "from_number": "+15550001111"}
    fields["auth_token"] = "tok"
    account = providers.parse_account("twilio", "twilio-primary", fields)
    other = Tenant(id=T1.id, name=T1.name, accounts=(account,))
    payload = sms()
    request = TWILIO.build_request(command("twilio", payload), payload, other, "http://x")
    assert parse_qs(request.content.decode())["From"] == ["+15550001111"]


def test_twilio_without_account_is_missing_credentials() -> None:
    payload = sms()
    with pytest.raises(
        MissingCredentialsError, match="tenant 'bare' has no enabled twilio account"
    ):
        TWILIO.build_request(command("twilio", payload), payload, NO_ACCOUNTS, "http://x")


def test_twilio_sends_from_the_account_the_command_names() -> None:
    payload = sms()
    cmd = command("twilio", payload, account="twilio-backup")
    request = TWILIO.build_request(cmd, payload, T1, "http://sim/twilio")
    backup = T1.by_label("twilio-backup")
    assert backup is not None and isinstance(backup.config, TwilioAccount)
    assert backup.config.account_sid != primary(T1, TwilioAccount).account_sid
    sid = backup.config.account_sid
    assert str(request.url) == f"http://sim/twilio/2010-04-01/Accounts/{sid}/Messages.json"
    assert basic_credentials(request) == (sid, backup.config.auth_token.get_secret_value())
    assert parse_qs(request.content.decode())["From"] == ["+15005550007"]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        pytest.param("twilio-gone", "has no enabled account 'twilio-gone'", id="no-such-account"),
        pytest.param(
            "sendgrid-primary",
            "account 'sendgrid-primary' is a sendgrid account, not twilio",
            id="another-providers-account",
        ),
    ],
)
def test_twilio_with_an_account_it_cannot_use_is_missing_credentials(
    label: str, message: str
) -> None:
    payload = sms()
    with pytest.raises(MissingCredentialsError, match=message):
        TWILIO.build_request(command("twilio", payload, account=label), payload, T1, "http://x")


@pytest.mark.parametrize("status", [200, 201])
def test_twilio_message_is_delivered_with_its_sid(status: int) -> None:
    outcome = TWILIO.classify(response(status, twilio_message("SMabc")))
    assert isinstance(outcome, Delivered)
    assert outcome.provider_ref == "SMabc"
    assert outcome.http_status == status
    assert outcome.details == {"status": "queued", "num_segments": "1"}


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, 21211, "The 'To' number 12345 is not a valid phone number."),
        (401, 20003, "Authenticate"),
        (404, 20404, "The requested resource /2010-04-01/Accounts/AC1/Messages.json was not found"),
    ],
)
def test_twilio_client_errors_are_rejected_with_code_and_message(
    status: int, code: int, message: str
) -> None:
    outcome = TWILIO.classify(response(status, twilio_error(status, code, message)))
    assert outcome == Rejected(message, status, str(code))


@pytest.mark.parametrize(
    ("status", "code"), [(429, 20429), (500, 20500), (502, 20500), (503, 20500), (504, 20500)]
)
def test_twilio_transient_errors_retry_later(status: int, code: int) -> None:
    outcome = TWILIO.classify(
        response(status, twilio_error(status, code, "Try again"), headers={"Retry-After": "2"})
    )
    assert outcome == RetryLater("Try again", status, str(code), 2.0)


def test_twilio_retry_after_as_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    outcome = TWILIO.classify(
        response(429, twilio_error(429, 20429, "Too Many Requests"), headers={"Retry-After": when})
    )
    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after is not None
    assert 100 < outcome.retry_after <= 120


@pytest.mark.parametrize("body", [{"status": "queued"}, {"sid": None}, {"sid": 7}])
def test_twilio_200_with_unexpected_body_is_not_delivered(body: dict[str, Any]) -> None:
    assert not isinstance(TWILIO.classify(response(201, body)), Delivered)


def test_twilio_202_is_not_a_send() -> None:
    assert not isinstance(TWILIO.classify(response(202, twilio_message())), Delivered)


# --- SendGrid -------------------------------------------------------------------


def test_sendgrid_request_shape() -> None:
    payload = email()
    cmd = command("sendgrid", payload, key="receipt-42")
    request = SENDGRID.build_request(cmd, payload, T1, "http://sim/sendgrid")
    assert request.method == "POST"
    assert str(request.url) == "http://sim/sendgrid/v3/mail/send"
    api_key = primary(T1, SendGridAccount).api_key.get_secret_value()
    assert request.headers["authorization"] == f"Bearer {api_key}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "personalizations": [{"to": [{"email": "parent@example.com", "name": "Mrs. Sharma"}]}],
        "from": {"email": primary(T1, SendGridAccount).from_email, "name": "School One"},
        "subject": "Fee receipt",
        "content": [
            {"type": "text/plain", "value": "Thank you"},
            {"type": "text/html", "value": "<p>Thank you</p>"},
        ],
        "custom_args": {"idempotency_key": "receipt-42", "command_id": cmd.command_id},
    }


def test_sendgrid_text_only_mail_has_no_html_block_and_no_recipient_name() -> None:
    payload = email(html=None, to_name=None)
    request = SENDGRID.build_request(command("sendgrid", payload), payload, T1, "http://x/")
    body = json.loads(request.content)
    assert body["content"] == [{"type": "text/plain", "value": "Thank you"}]
    assert body["personalizations"] == [{"to": [{"email": "parent@example.com"}]}]
    assert str(request.url) == "http://x/v3/mail/send"


def test_sendgrid_sender_without_name() -> None:
    fields = {"api_key": "SG.k", "from_email": "fees@x.example", "from_name": ""}
    account = providers.parse_account("sendgrid", "sendgrid-primary", fields)
    other = Tenant(id=T1.id, name=T1.name, accounts=(account,))
    payload = email()
    request = SENDGRID.build_request(command("sendgrid", payload), payload, other, "http://x")
    assert json.loads(request.content)["from"] == {"email": "fees@x.example"}
    assert request.headers["authorization"] == "Bearer SG.k"


def test_sendgrid_without_account_is_missing_credentials() -> None:
    payload = email()
    with pytest.raises(MissingCredentialsError, match="'bare' has no enabled sendgrid account"):
        SENDGRID.build_request(command("sendgrid", payload), payload, NO_ACCOUNTS, "http://x")


def test_sendgrid_accepted_mail_is_delivered_with_the_message_id() -> None:
    outcome = SENDGRID.classify(response(202, headers={"X-Message-Id": "msg-123"}))
    assert outcome == Delivered("msg-123", 202, {"message_id": "msg-123"})


def sendgrid_error(message: str, field: str | None) -> dict[str, Any]:
    return {"errors": [{"message": message, "field": field, "help": None}]}


@pytest.mark.parametrize(
    ("status", "message", "field", "code"),
    [
        (
            400,
            "Does not contain a valid address.",
            "personalizations.0.to.0.email",
            "field:personalizations.0.to.0.email",
        ),
        (401, "The provided authorization grant is invalid, expired, or revoked", None, None),
        (404, "resource not found", None, None),
    ],
)
def test_sendgrid_client_errors_are_rejected_with_first_error(
    status: int, message: str, field: str | None, code: str | None
) -> None:
    body = sendgrid_error(message, field)
    body["errors"].append({"message": "second problem", "field": "subject", "help": None})
    outcome = SENDGRID.classify(response(status, body))
    assert outcome == Rejected(message, status, code)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_sendgrid_transient_errors_retry_later(status: int) -> None:
    outcome = SENDGRID.classify(
        response(
            status, sendgrid_error("internal server error", None), headers={"Retry-After": "9"}
        )
    )
    assert outcome == RetryLater("internal server error", status, None, 9.0)


@pytest.mark.parametrize("status", [200, 201])
def test_sendgrid_non_202_success_is_not_delivered(status: int) -> None:
    outcome = SENDGRID.classify(response(status, {"ok": True}, headers={"X-Message-Id": "m"}))
    assert not isinstance(outcome, Delivered)
