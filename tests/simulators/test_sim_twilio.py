"""Twilio Messages API: resource shape, segments, auth, validation error codes, and the
status callbacks a message created with a StatusCallback sends (the hub's receipts)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import httpx
import pytest
from sim_support import Receiver, basic, twilio_auth, twilio_path
from starlette.applications import Starlette
from starlette.testclient import TestClient
from tenant_accounts import primary
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client as TwilioClient

from core.tenants import Tenant, TenantDirectory
from processors.normalize import normalize
from providers.base import Delivered
from providers.spec import Delivery
from providers.twilio import Twilio, TwilioAccount
from schemas.events import (
    ConnectorCommand,
    DeliveryReceipt,
    EventHeader,
    RawWebhook,
    ReceiptStatus,
    SendSms,
)
from simulators.twilio import num_segments
from webhook_ingress.decision import accept, check_route

TO = "+919800000001"
OTHER = "+919800000002"
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


# --- status callbacks: the receipts, signed over the StatusCallback URL ---------------

CALLBACK = "http://ingress.test/webhooks/twilio/t1?batch=b-7"


async def received(receiver: Receiver, count: int, within: float = 5.0) -> list[httpx.Request]:
    """The callbacks the receiver got, once there are `count` (they are posted in the
    background, a moment after the send is answered)."""
    deadline = time.monotonic() + within
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} callbacks, not {count}"
        await asyncio.sleep(0.02)
    return list(receiver.requests)


def as_delivery(request: httpx.Request) -> Delivery:
    """A received callback as the hub's ingress sees it."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = dict(request.url.params)
    return Delivery(request.method, str(request.url), query, headers, request.content, None)


def through_the_hub(tenants: TenantDirectory, request: httpx.Request) -> DeliveryReceipt:
    """Verified by the ingress with the tenant's Twilio auth tokens, then normalized."""
    keys = check_route("twilio", "t1", tenants)
    assert isinstance(keys, list)
    raw = accept("twilio", "t1", keys, as_delivery(request))
    assert isinstance(raw, RawWebhook), raw
    found = normalize(raw)
    assert isinstance(found, DeliveryReceipt)
    return found


async def adapter_send(client: httpx.AsyncClient, t: Tenant, to: str = TO) -> Delivered:
    """The hub's own send: the adapter's request, with the hub's callback URL."""
    payload = SendSms(to=to, text="Fee of Rs 500 received.", callback_url=CALLBACK)
    header = EventHeader.new(ConnectorCommand.EVENT_TYPE, t.id, source="test")
    command = ConnectorCommand(
        header=header, idempotency_key="k-1", provider="twilio", payload=payload
    )
    request = Twilio().build_request(command, payload, t, "http://sim/twilio")
    outcome = Twilio().classify(await client.send(request))
    assert isinstance(outcome, Delivered), outcome
    return outcome


async def rule(client: httpx.AsyncClient, kind: str, address: str) -> None:
    body = {"addresses": [address], "provider": "twilio"}
    assert (await client.post(f"/_sim/messages/{kind}", json=body)).status_code == 200


@pytest.fixture
def frozen(app: Starlette) -> float:
    """A stopped clock: only the callbacks move a message on."""
    now = float(int(time.time()))
    app.state.sim.state.clock = lambda: now
    return now


@pytest.mark.anyio
async def test_a_delivered_message_calls_back_sent_then_delivered(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    sent = await adapter_send(client, t1)
    assert sent.details == {"status": "queued", "num_segments": "1"}
    first, second = await received(receiver, 2)
    for request in (first, second):
        assert (request.method, str(request.url)) == ("POST", CALLBACK)
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.headers["user-agent"] == "TwilioProxy/1.1"
    account = primary(t1, TwilioAccount)
    assert parse_qs(first.content.decode()) == {
        "SmsSid": [sent.provider_ref],
        "SmsStatus": ["sent"],
        "MessageStatus": ["sent"],
        "To": [TO],
        "MessageSid": [sent.provider_ref],
        "AccountSid": [account.account_sid],
        "From": [FROM],
        "ApiVersion": ["2010-04-01"],
    }
    receipts = [through_the_hub(tenants, r) for r in (first, second)]
    assert [(r.status, r.provider_status) for r in receipts] == [
        (ReceiptStatus.SENT, "sent"),
        (ReceiptStatus.DELIVERED, "delivered"),
    ]
    assert {r.provider_ref for r in receipts} == {sent.provider_ref}
    assert receipts[1].provider_event_id == f"{sent.provider_ref}:delivered"
    assert receipts[1].error_code is None


@pytest.mark.anyio
async def test_the_signature_is_twilios_over_that_exact_url(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    await adapter_send(client, t1)
    _, delivered = await received(receiver, 2)
    fields = dict(parse_qsl(delivered.content.decode(), keep_blank_values=True))
    token = primary(t1, TwilioAccount).auth_token.get_secret_value()
    sdk = RequestValidator(token)
    assert sdk.validate(CALLBACK, fields, delivered.headers["x-twilio-signature"])
    elsewhere = CALLBACK.replace("b-7", "b-8")
    assert not sdk.validate(elsewhere, fields, delivered.headers["x-twilio-signature"])
    assert not RequestValidator("not-the-token").validate(
        CALLBACK, fields, delivered.headers["x-twilio-signature"]
    )


@pytest.mark.anyio
async def test_an_undeliverable_address_calls_back_undelivered_with_30003(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    await rule(client, "undeliverable", TO)
    sent = await adapter_send(client, t1)
    _, final = await received(receiver, 2)
    assert parse_qs(final.content.decode())["ErrorCode"] == ["30003"]
    found = through_the_hub(tenants, final)
    assert (found.status, found.provider_status, found.provider_ref) == (
        ReceiptStatus.UNDELIVERED,
        "undelivered",
        sent.provider_ref,
    )
    assert (found.error_code, found.error_description) == (
        "30003",
        "Unreachable destination handset",
    )


@pytest.mark.anyio
async def test_a_silent_address_gets_no_callback_while_others_do(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    await rule(client, "silent", OTHER)
    await adapter_send(client, t1, to=OTHER)
    await adapter_send(client, t1, to=TO)
    await received(receiver, 2)
    await asyncio.sleep(0.5)  # the silent one had as long
    assert [parse_qs(r.content.decode())["To"] for r in receiver.requests] == [[TO], [TO]]


@pytest.mark.anyio
async def test_without_a_status_callback_twilio_calls_nobody(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    response = await client.post(twilio_path(t1), data=form(), headers=twilio_auth(t1))
    assert response.status_code == 201
    with_callback = await client.post(
        twilio_path(t1), data=form(To=OTHER, StatusCallback=CALLBACK), headers=twilio_auth(t1)
    )
    assert with_callback.status_code == 201
    await received(receiver, 2)
    await asyncio.sleep(0.5)
    assert {r.url.params.get("batch") for r in receiver.requests} == {"b-7"}
    assert [parse_qs(r.content.decode())["To"] for r in receiver.requests] == [[OTHER], [OTHER]]


@pytest.mark.anyio
async def test_refused_credentials_create_nothing_and_call_nobody(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    headers = basic(primary(t1, TwilioAccount).account_sid, "wrong")
    response = await client.post(
        twilio_path(t1), data=form(StatusCallback=CALLBACK), headers=headers
    )
    assert_twilio_error(response, 401, 20003, "Authenticate")
    await asyncio.sleep(0.5)
    assert receiver.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    ["ingress.test/webhooks", "ftp://ingress.test/x", "http://bad_host.test/x", "http://"],
)
async def test_an_invalid_status_callback_is_21609(
    client: httpx.AsyncClient, t1: Tenant, url: str
) -> None:
    response = await client.post(
        twilio_path(t1), data=form(StatusCallback=url), headers=twilio_auth(t1)
    )
    assert_twilio_error(response, 400, 21609, f"The StatusCallback URL {url} is not a valid URL.")


@pytest.mark.anyio
async def test_the_stored_message_moves_with_its_callbacks(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, frozen: float
) -> None:
    await rule(client, "undeliverable", OTHER)
    delivered = await adapter_send(client, t1)
    undelivered = await adapter_send(client, t1, to=OTHER)
    await received(receiver, 4)
    path = twilio_path(t1).removesuffix(".json")
    stamp = format_datetime(datetime.fromtimestamp(frozen, UTC))
    ok = (await client.get(f"{path}/{delivered.provider_ref}.json", headers=twilio_auth(t1))).json()
    assert (ok["status"], ok["date_sent"], ok["date_updated"]) == ("delivered", stamp, stamp)
    assert (ok["error_code"], ok["error_message"]) == (None, None)
    failed = (
        await client.get(f"{path}/{undelivered.provider_ref}.json", headers=twilio_auth(t1))
    ).json()
    assert (failed["status"], failed["error_code"], failed["error_message"]) == (
        "undelivered",
        30003,
        "Unreachable destination handset",
    )
    listed = (await client.get(twilio_path(t1), headers=twilio_auth(t1))).json()["messages"]
    assert [(m["sid"], m["status"]) for m in listed] == [
        (undelivered.provider_ref, "undelivered"),
        (delivered.provider_ref, "delivered"),
    ]


@pytest.mark.anyio
async def test_without_callbacks_the_age_decides_and_an_undeliverable_one_fails(
    app: Starlette, client: httpx.AsyncClient, t1: Tenant
) -> None:
    now = [float(int(time.time()))]
    app.state.sim.state.clock = lambda: now[0]
    await rule(client, "undeliverable", OTHER)
    await rule(client, "silent", "+919800000003")
    sids = []
    for to in (TO, OTHER, "+919800000003"):
        response = await client.post(twilio_path(t1), data=form(To=to), headers=twilio_auth(t1))
        sids.append(response.json()["sid"])
    now[0] += 5
    path = twilio_path(t1).removesuffix(".json")
    shown = [
        (await client.get(f"{path}/{sid}.json", headers=twilio_auth(t1))).json() for sid in sids
    ]
    assert [(m["status"], m["error_code"]) for m in shown] == [
        ("delivered", None),
        ("undelivered", 30003),
        ("sent", None),  # the carrier never reported
    ]


@pytest.mark.anyio
async def test_the_control_plane_lists_the_receipts_sent(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    sent = await adapter_send(client, t1)
    await received(receiver, 2)
    listed = (await client.get("/_sim/messages/receipts", params={"provider": "twilio"})).json()
    assert [(r["order_id"], r["event"], r["tenant"], r["url"]) for r in listed["receipts"]] == [
        (sent.provider_ref, "sent", "t1", CALLBACK),
        (sent.provider_ref, "delivered", "t1", CALLBACK),
    ]
    assert [r["deliveries"][0]["status"] for r in listed["receipts"]] == [200, 200]


# --- the official SDK against the simulator, in process ------------------------------


class AppHttpClient(HttpClient):
    """twilio-python's HTTP client, answered by the simulator app through a TestClient."""

    def __init__(self, app: TestClient) -> None:
        super().__init__(logging.getLogger("twilio.test"), is_async=False)
        self.app = app

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        answer = self.app.request(
            method,
            uri,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
        )
        return TwilioResponse(answer.status_code, answer.text, answer.headers)


def test_the_twilio_sdk_sends_with_a_status_callback_and_fetches_it_delivered(
    app: Starlette, t1: Tenant, receiver: Receiver
) -> None:
    account = primary(t1, TwilioAccount)
    token = account.auth_token.get_secret_value()
    with TestClient(app, base_url="http://sim") as http:
        client = TwilioClient(account.account_sid, token, http_client=AppHttpClient(http))
        client.api.base_url = "http://sim/twilio"  # the SDK's requests go to the simulator
        created = client.messages.create(
            to=TO, from_=account.from_number, body="Fee received", status_callback=CALLBACK
        )
        assert created.status == "queued"
        deadline = time.monotonic() + 5
        while len(receiver.requests) < 2:
            assert time.monotonic() < deadline, "no callbacks"
            time.sleep(0.02)
        fetched = client.messages(created.sid).fetch()
        assert (fetched.sid, fetched.status, fetched.body) == (
            created.sid,
            "delivered",
            "Fee received",
        )
        with pytest.raises(TwilioRestException) as missing:
            client.messages("SM" + "0" * 32).fetch()
        assert (missing.value.status, missing.value.code) == (404, 20404)
    validator = RequestValidator(token)
    for request in receiver.requests:
        fields = dict(parse_qsl(request.content.decode()))
        assert fields["MessageSid"] == created.sid
        assert validator.validate(CALLBACK, fields, request.headers["x-twilio-signature"])
