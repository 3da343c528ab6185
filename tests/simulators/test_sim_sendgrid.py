"""SendGrid v3 mail send: 202 with X-Message-Id, auth and validation error lists, 413."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sim_support import basic, mail, sendgrid_auth
from tenant_accounts import primary

from core.tenants import Tenant
from providers.sendgrid import SendGridAccount
from simulators.sendgrid import (
    CONTENT_REQUIRED,
    FROM_REQUIRED,
    PERSONALIZATIONS_REQUIRED,
    PLAIN_FIRST,
    SUBJECT_REQUIRED,
)

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
