"""Twilio Messages API: resource shape, segments, auth and validation error codes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from sim_support import basic, twilio_auth, twilio_path
from tenant_accounts import primary

from core.tenants import Tenant
from providers.twilio import TwilioAccount
from simulators.twilio import num_segments

TO = "+919800000001"
FROM = "+15005550006"


def form(**fields: str) -> dict[str, str]:
    base = {"To": TO, "From": FROM, "Body": "Fee of ₹500 received. Thank you."}
    base.update(fields)
    return {k: v for k, v in base.items() if v != ""}


def assert_twilio_error(response: httpx.Response, status: int, code: int, message: str) -> None:
    assert response.status_code == status
    assert response.json() == {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@pytest.mark.anyio
async def test_send_message_returns_201_message_resource(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    sid = primary(t1, TwilioAccount).account_sid
    response = await client.post(twilio_path(t1), data=form(), headers=twilio_auth(t1))
    assert response.status_code == 201
    msg = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", msg["sid"])
    assert msg["uri"] == f"/2010-04-01/Accounts/{sid}/Messages/{msg['sid']}.json"
    assert msg["subresource_uris"] == {
        "media": f"/2010-04-01/Accounts/{sid}/Messages/{msg['sid']}/Media.json"
    }
    assert re.fullmatch(
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000", msg["date_created"]
    )
    created = parsedate_to_datetime(msg["date_created"])
    assert abs(datetime.now(UTC) - created) < timedelta(seconds=5)
    assert msg["date_updated"] == msg["date_created"]
    fixed = {
        k: msg[k]
        for k in msg
        if k not in {"sid", "uri", "subresource_uris", "date_created", "date_updated"}
    }
    assert fixed == {
        "account_sid": sid,
        "api_version": "2010-04-01",
        "body": "Fee of ₹500 received. Thank you.",
        "date_sent": None,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": FROM,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "status": "queued",
        "to": TO,
    }


@pytest.mark.anyio
async def test_messaging_service_sid_may_replace_from(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    mg = "MG" + "a" * 32
    response = await client.post(
        twilio_path(t1), data=form(From="", MessagingServiceSid=mg), headers=twilio_auth(t1)
    )
    assert response.status_code == 201
    assert response.json()["messaging_service_sid"] == mg
    assert response.json()["from"] is None


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension-table characters take two septets
        ("€" * 81, 2),
        ("अ" * 70, 1),  # outside GSM-7: UCS-2, 70 per single segment, 67 when split
        ("अ" * 71, 2),
        ("अ" * 135, 3),
    ],
)
def test_num_segments(body: str, segments: int) -> None:
    assert num_segments(body) == segments


@pytest.mark.anyio
async def test_segments_are_reported_as_a_string(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await client.post(twilio_path(t1), data=form(Body="₹" * 71), headers=twilio_auth(t1))
    assert response.json()["num_segments"] == "2"


@pytest.mark.anyio
@pytest.mark.parametrize("auth", ["missing", "wrong_token", "unknown_sid"])
async def test_bad_auth_is_20003(client: httpx.AsyncClient, t1: Tenant, auth: str) -> None:
    account = primary(t1, TwilioAccount)
    headers = {
        "missing": {},
        "wrong_token": basic(account.account_sid, "wrong"),
        "unknown_sid": basic("AC" + "0" * 32, account.auth_token.get_secret_value()),
    }[auth]
    response = await client.post(twilio_path(t1), data=form(), headers=headers)
    assert_twilio_error(response, 401, 20003, "Authenticate")
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.anyio
async def test_other_accounts_path_is_20404(
    client: httpx.AsyncClient, t1: Tenant, t2: Tenant
) -> None:
    response = await client.post(twilio_path(t2), data=form(), headers=twilio_auth(t1))
    path = f"/2010-04-01/Accounts/{primary(t2, TwilioAccount).account_sid}/Messages.json"
    assert_twilio_error(response, 404, 20404, f"The requested resource {path} was not found")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"To": ""}, 21604, "A 'To' phone number is required."),
        ({"From": ""}, 21603, "A 'From' phone number is required."),
        ({"Body": ""}, 21602, "Message body is required."),
        ({"To": "9800000001"}, 21211, "The 'To' number 9800000001 is not a valid phone number."),
        ({"To": "+0123456789"}, 21211, "The 'To' number +0123456789 is not a valid phone number."),
        (
            {"Body": "x" * 1601},
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, t1: Tenant, fields: dict[str, str], code: int, message: str
) -> None:
    response = await client.post(twilio_path(t1), data=form(**fields), headers=twilio_auth(t1))
    assert_twilio_error(response, 400, code, message)


@pytest.mark.anyio
async def test_body_of_exactly_1600_chars_is_accepted(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    response = await client.post(
        twilio_path(t1), data=form(Body="x" * 1600), headers=twilio_auth(t1)
    )
    assert response.status_code == 201
    assert response.json()["num_segments"] == "11"


@pytest.mark.anyio
async def test_json_body_is_not_read_like_twilio(client: httpx.AsyncClient, t1: Tenant) -> None:
    payload: dict[str, Any] = form()
    response = await client.post(twilio_path(t1), json=payload, headers=twilio_auth(t1))
    assert_twilio_error(response, 400, 21604, "A 'To' phone number is required.")
