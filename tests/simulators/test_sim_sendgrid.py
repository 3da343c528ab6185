"""SendGrid v3 mail send: 202 with X-Message-Id, auth and validation error lists, 413; and
each recipient's signed Event Webhook batch through the hub's ingress and normalizer
(sendgrid-python's EventWebhook as the signature's oracle)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from sendgrid.helpers.eventwebhook import EventWebhook
from sim_support import Receiver, basic, mail, sendgrid_auth
from tenant_accounts import primary

from core.tenants import Tenant, TenantDirectory
from providers.base import Delivered
from providers.sendgrid import SendGrid, SendGridAccount
from providers.sendgrid_events import normalize_sendgrid_events
from providers.spec import Delivery
from schemas.events import (
    ConnectorCommand,
    DeliveryReceipt,
    EventHeader,
    RawWebhook,
    ReceiptStatus,
    SendEmail,
)
from simulators.sendgrid import (
    BOUNCE_REASON,
    CONTENT_REQUIRED,
    FROM_REQUIRED,
    PERSONALIZATIONS_REQUIRED,
    PLAIN_FIRST,
    SUBJECT_REQUIRED,
)
from webhook_ingress.decision import accept, check_route

pytestmark = pytest.mark.anyio

SEND = "/sendgrid/v3/mail/send"


def problems(response: httpx.Response) -> list[tuple[str, str | None]]:
    return [(e["message"], e["field"]) for e in response.json()["errors"]]


async def test_send_is_202_with_empty_body_and_message_id(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    response = await client.post(SEND, json=mail(), headers=sendgrid_auth(t1))
    assert response.status_code == 202
    assert response.content == b""
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", response.headers["x-message-id"])


async def test_message_ids_differ(client: httpx.AsyncClient, t1: Tenant) -> None:
    ids = {
        (await client.post(SEND, json=mail(), headers=sendgrid_auth(t1))).headers["x-message-id"]
        for _ in range(3)
    }
    assert len(ids) == 3


@pytest.mark.parametrize("auth", ["missing", "wrong_key", "basic"])
async def test_bad_auth_is_401(client: httpx.AsyncClient, t1: Tenant, auth: str) -> None:
    headers = {
        "missing": {},
        "wrong_key": {"Authorization": "Bearer SG.nope.nope"},
        "basic": basic("apikey", primary(t1, SendGridAccount).api_key.get_secret_value()),
    }[auth]
    response = await client.post(SEND, json=mail(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "errors": [
            {
                "message": "The provided authorization grant is invalid, expired, or revoked",
                "field": None,
                "help": None,
            }
        ]
    }


def without(key: str) -> dict[str, Any]:
    body = mail()
    del body[key]
    return body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (without("from"), [(FROM_REQUIRED, "from")]),
        (
            {**mail(), "from": {"email": "not-an-email"}},
            [("The from email does not contain a valid address.", "from.email")],
        ),
        (without("personalizations"), [(PERSONALIZATIONS_REQUIRED, "personalizations")]),
        (mail(personalizations=[]), [(PERSONALIZATIONS_REQUIRED, "personalizations")]),
        (
            mail(to="parent-at-example.com"),
            [("Does not contain a valid address.", "personalizations.0.to.0.email")],
        ),
        (without("subject"), [(SUBJECT_REQUIRED, "subject")]),
        (without("content"), [(CONTENT_REQUIRED, "content")]),
        (
            mail(
                content=[
                    {"type": "text/html", "value": "<p>x</p>"},
                    {"type": "text/plain", "value": "x"},
                ]
            ),
            [(PLAIN_FIRST, "content.1.type")],
        ),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient,
    t1: Tenant,
    body: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    response = await client.post(SEND, json=body, headers=sendgrid_auth(t1))
    assert response.status_code == 400
    assert problems(response) == expected
    assert all(e["help"] is None or e["help"].startswith("http") for e in response.json()["errors"])


async def test_from_error_uses_the_documented_message(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    response = await client.post(SEND, json=without("from"), headers=sendgrid_auth(t1))
    assert response.json()["errors"][0]["message"] == (
        "The from object must be provided for every email send. It is an object that requires "
        "the email parameter, but may also contain a name parameter."
    )


async def test_every_problem_is_reported_at_once(client: httpx.AsyncClient, t1: Tenant) -> None:
    body: dict[str, Any] = {"personalizations": [{"to": []}]}
    response = await client.post(SEND, json=body, headers=sendgrid_auth(t1))
    assert response.status_code == 400
    assert [field for _, field in problems(response)] == [
        "from",
        "personalizations.0.to",
        "subject",
        "content",
    ]


async def test_subject_in_every_personalization_is_enough(
    client: httpx.AsyncClient, t1: Tenant
) -> None:
    body = without("subject")
    body["personalizations"] = [
        {"to": [{"email": "a@example.com"}], "subject": "A"},
        {"to": [{"email": "b@example.com"}], "subject": "B"},
    ]
    response = await client.post(SEND, json=body, headers=sendgrid_auth(t1))
    assert response.status_code == 202
    body["personalizations"].append({"to": [{"email": "c@example.com"}]})
    response = await client.post(SEND, json=body, headers=sendgrid_auth(t1))
    assert problems(response) == [(SUBJECT_REQUIRED, "subject")]


async def test_non_json_body_is_400(client: httpx.AsyncClient, t1: Tenant) -> None:
    response = await client.post(SEND, content=b"{not json", headers=sendgrid_auth(t1))
    assert response.status_code == 400
    assert problems(response) == [("Bad Request", None)]


async def test_payload_over_30mb_is_413(client: httpx.AsyncClient, t1: Tenant) -> None:
    big = b'{"x": "' + b"a" * (30 * 1024 * 1024) + b'"}'
    response = await client.post(
        SEND, content=big, headers={**sendgrid_auth(t1), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["field"] is None
    recorded = (await client.get("/_sim/requests", params={"provider": "sendgrid"})).json()
    assert recorded["requests"][0]["body"] == f"<{len(big)} bytes>"
    assert recorded["requests"][0]["response_status"] == 413


# --- the Event Webhook -----------------------------------------------------------------

ADAPTER = SendGrid()


def cmd(to: str = "parent@example.com", key: str = "key-1") -> ConnectorCommand:
    payload = SendEmail(to=to, subject="Fee receipt", text="Thank you")
    return ConnectorCommand(
        header=EventHeader.new(ConnectorCommand.EVENT_TYPE, "t1", source="test"),
        idempotency_key=key,
        provider="sendgrid",
        payload=payload,
    )


async def sent(client: httpx.AsyncClient, t: Tenant, command: ConnectorCommand) -> str:
    request = ADAPTER.build_request(command, command.payload, t, "http://sim/sendgrid")
    outcome = ADAPTER.classify(await client.send(request))
    assert isinstance(outcome, Delivered), outcome
    assert outcome.provider_ref is not None
    return outcome.provider_ref


async def deliveries(receiver: Receiver, count: int, wait: float = 3.0) -> list[httpx.Request]:
    """The event batches posted so far, once there are `count` (or after `wait` seconds)."""
    for _ in range(int(wait / 0.05)):
        if len(receiver.requests) >= count:
            break
        await asyncio.sleep(0.05)
    return list(receiver.requests)


def through_the_hub(request: httpx.Request, tenants: TenantDirectory) -> list[DeliveryReceipt]:
    assert str(request.url) == "http://ingress.test/webhooks/sendgrid/t1"
    headers = {k.lower(): v for k, v in request.headers.items()}
    delivery = Delivery("POST", str(request.url), {}, headers, request.content, "127.0.0.1")
    keys = check_route("sendgrid", "t1", tenants)
    assert isinstance(keys, list)
    raw = accept("sendgrid", "t1", keys, delivery)
    assert isinstance(raw, RawWebhook), raw
    receipts = normalize_sendgrid_events(raw, {"items": json.loads(raw.body)})
    assert receipts is not None
    return receipts


async def test_an_accepted_mail_is_a_signed_batch_the_hub_reads_as_delivered(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    message_id = await sent(client, t1, cmd(key="receipt-42"))
    [request] = await deliveries(receiver, 1)
    assert request.headers["user-agent"] == "SendGrid Event API"
    processed, delivered = through_the_hub(request, tenants)
    assert [(r.provider_status, r.status) for r in (processed, delivered)] == [
        ("processed", ReceiptStatus.SENT),
        ("delivered", ReceiptStatus.DELIVERED),
    ]
    assert processed.provider_ref == delivered.provider_ref == message_id
    assert (delivered.recipient, delivered.idempotency_key) == ("parent@example.com", "receipt-42")
    assert processed.provider_event_id != delivered.provider_event_id
    # sendgrid-python verifies it with the public key the tenant's account holds.
    public_key = primary(t1, SendGridAccount).webhook_public_key.get_secret_value()
    assert EventWebhook(public_key).verify_signature(
        request.content.decode(),
        request.headers["x-twilio-email-event-webhook-signature"],
        request.headers["x-twilio-email-event-webhook-timestamp"],
    )


async def test_an_undeliverable_address_bounces_with_5_1_1(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    rule = {"addresses": ["gone@example.com"], "provider": "sendgrid"}
    assert (await client.post("/_sim/messages/undeliverable", json=rule)).status_code == 200
    message_id = await sent(client, t1, cmd(to="gone@example.com"))
    [request] = await deliveries(receiver, 1)
    processed, bounce = through_the_hub(request, tenants)
    assert processed.status is ReceiptStatus.SENT
    assert (bounce.status, bounce.provider_status, bounce.provider_ref) == (
        ReceiptStatus.UNDELIVERED,
        "bounce",
        message_id,
    )
    assert (bounce.error_code, bounce.error_description) == ("5.1.1", BOUNCE_REASON)
    assert BOUNCE_REASON == "550 5.1.1 The email account that you tried to reach does not exist"


async def test_a_silent_address_gets_no_events(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver
) -> None:
    assert (
        await client.post("/_sim/messages/silent", json={"addresses": ["quiet@example.com"]})
    ).status_code == 200
    await sent(client, t1, cmd(to="quiet@example.com"))
    assert await deliveries(receiver, 1, wait=0.6) == []


async def test_each_recipient_gets_its_own_batch_with_the_mails_custom_args(
    client: httpx.AsyncClient, t1: Tenant, receiver: Receiver, tenants: TenantDirectory
) -> None:
    body = mail(to="a@example.com", custom_args={"idempotency_key": "k-9"})
    body["personalizations"].append({"to": [{"email": "b@example.com"}]})
    response = await client.post(SEND, json=body, headers=sendgrid_auth(t1))
    assert response.status_code == 202
    batches = [through_the_hub(r, tenants) for r in await deliveries(receiver, 2)]
    found = sorted((b[-1].recipient, b[-1].status, b[-1].idempotency_key) for b in batches)
    assert found == [
        ("a@example.com", ReceiptStatus.DELIVERED, "k-9"),
        ("b@example.com", ReceiptStatus.DELIVERED, "k-9"),
    ]
    refs = {r.provider_ref for b in batches for r in b}
    assert refs == {response.headers["x-message-id"]}
