"""Provider accounts over the admin API: secrets go in, never come out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_support import (
    SENDGRID_KEY,
    TWILIO_FIELDS,
    TWILIO_TOKEN,
    TWILIO_TOKEN_2,
    Api,
    open_api,
)
from pydantic import BaseModel, ValidationError, field_validator

from admin_api.errors import one_field, validation_failed

ACCOUNTS = "/v1/tenants/greenwood/accounts"
PRIMARY = f"{ACCOUNTS}/primary"
NUMERIC_SECRET = 987654321987


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path)


@pytest.fixture
def tenant(api: Api) -> str:
    assert api.call("POST", "/v1/tenants", json={"id": "greenwood"}).status_code == 201
    return "greenwood"


def twilio(label: str = "primary", **fields: str) -> dict[str, object]:
    return {"label": label, "provider": "twilio", "fields": {**TWILIO_FIELDS, **fields}}


def stored_token(api: Api, label: str = "primary") -> str:
    account = api.service.load_tenant("greenwood").by_label(label)
    assert account is not None
    return str(account.config.auth_token.get_secret_value())  # type: ignore[attr-defined]


def test_an_account_is_created_with_its_secrets_sealed_and_unshown(api: Api, tenant: str) -> None:
    response = api.call("POST", ACCOUNTS, json={**twilio(), "priority": 2})
    assert response.status_code == 201
    body = response.json()
    assert body["settings"] == {"account_sid": "AC0123456789abcdef", "from_number": "+15005550006"}
    assert body["secrets_set"] == ["auth_token"]
    assert (body["label"], body["provider"], body["priority"], body["enabled"]) == (
        "primary",
        "twilio",
        2,
        True,
    )
    assert body["key_id"]
    assert TWILIO_TOKEN not in response.text
    assert stored_token(api) == TWILIO_TOKEN


def test_accounts_are_listed_and_read_without_secrets(api: Api, tenant: str) -> None:
    api.call("POST", ACCOUNTS, json=twilio())
    sendgrid = {"api_key": SENDGRID_KEY, "from_email": "fees@greenwood.example"}
    api.call("POST", ACCOUNTS, json={"label": "mail", "provider": "sendgrid", "fields": sendgrid})
    listed = api.call("GET", ACCOUNTS, "viewer")
    assert listed.status_code == 200
    assert [(a["label"], a["secrets_set"]) for a in listed.json()["accounts"]] == [
        ("mail", ["api_key"]),
        ("primary", ["auth_token"]),
    ]
    one = api.call("GET", f"{ACCOUNTS}/mail", "viewer")
    assert one.status_code == 200
    assert one.json()["settings"] == {"from_email": "fees@greenwood.example"}
    assert api.call("GET", "/v1/tenants/greenwood", "viewer").json()["accounts"] == 2


def test_an_update_merges_fields_and_keeps_an_unsent_secret(api: Api, tenant: str) -> None:
    api.call("POST", ACCOUNTS, json=twilio())
    moved = api.call("PATCH", PRIMARY, json={"fields": {"from_number": "+15005550001"}})
    assert moved.status_code == 200
    assert moved.json()["settings"]["from_number"] == "+15005550001"
    assert stored_token(api) == TWILIO_TOKEN
    rotated = api.call("PATCH", PRIMARY, json={"fields": {"auth_token": TWILIO_TOKEN_2}})
    assert rotated.json()["secrets_set"] == ["auth_token"]
    assert stored_token(api) == TWILIO_TOKEN_2
    disabled = api.call("PATCH", PRIMARY, json={"enabled": False, "priority": 5})
    assert (disabled.json()["enabled"], disabled.json()["priority"]) == (False, 5)


def test_an_account_is_removed(api: Api, tenant: str) -> None:
    api.call("POST", ACCOUNTS, json=twilio())
    api.call("PUT", "/v1/tenants/greenwood/routing", json={"routing": {"sms": ["primary"]}})
    removed = api.call("DELETE", PRIMARY)
    assert (removed.status_code, removed.content) == (204, b"")
    assert api.call("GET", PRIMARY).status_code == 404
    # Its label left the routing with it.
    assert api.call("GET", "/v1/tenants/greenwood/routing").json()["routing"] == {}


def test_unknown_accounts_are_404(api: Api, tenant: str) -> None:
    for method, body in [("GET", None), ("PATCH", {"priority": 1}), ("DELETE", None)]:
        response = api.call(method, f"{ACCOUNTS}/ghost", json=body)
        assert response.status_code == 404, (method, response.text)
        assert response.json() == {"error": "account 'greenwood/ghost' not found"}
    probe = api.call("POST", f"{ACCOUNTS}/ghost/test", "operator")
    assert (probe.status_code, probe.json()) == (404, {"error": "account 'ghost' not found"})


def test_a_second_account_with_the_same_label_is_a_conflict(api: Api, tenant: str) -> None:
    api.call("POST", ACCOUNTS, json=twilio())
    again = api.call("POST", ACCOUNTS, json=twilio())
    assert again.status_code == 409
    assert again.json() == {"error": "tenant 'greenwood' already has an account 'primary'"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (twilio(account_sid="not-a-sid"), "fields.account_sid"),
        (
            {"label": "primary", "provider": "twilio", "fields": {"auth_token": TWILIO_TOKEN}},
            "fields.account_sid",
        ),
        (twilio(colour="blue"), "fields.colour"),
        ({**twilio(), "provider": "pigeon"}, "provider"),
        ({**twilio(), "label": "Primary Account"}, "label"),
        ({**twilio(), "priority": "first"}, "priority"),
        ({**twilio(), "secret": TWILIO_TOKEN}, "secret"),
        (
            {**twilio(), "fields": {**TWILIO_FIELDS, "auth_token": NUMERIC_SECRET}},
            "fields.auth_token",
        ),
    ],
)
def test_an_invalid_account_is_422_naming_the_field_and_echoing_no_value(
    api: Api, tenant: str, body: dict[str, object], field: str
) -> None:
    response = api.call("POST", ACCOUNTS, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation failed"
    assert [f["field"] for f in response.json()["fields"]] == [field]
    assert TWILIO_TOKEN not in response.text and str(NUMERIC_SECRET) not in response.text
    assert api.call("GET", ACCOUNTS).json()["accounts"] == []


def test_an_invalid_update_is_422_and_changes_nothing(api: Api, tenant: str) -> None:
    api.call("POST", ACCOUNTS, json=twilio())
    bad = api.call(
        "PATCH", PRIMARY, json={"fields": {"auth_token": TWILIO_TOKEN_2, "account_sid": "x"}}
    )
    assert bad.status_code == 422
    assert [f["field"] for f in bad.json()["fields"]] == ["fields.account_sid"]
    typo = api.call("PATCH", PRIMARY, json={"field": {"auth_token": TWILIO_TOKEN_2}})
    assert [f["field"] for f in typo.json()["fields"]] == ["field"]
    assert TWILIO_TOKEN_2 not in bad.text + typo.text
    assert stored_token(api) == TWILIO_TOKEN


def test_a_message_quoting_a_submitted_secret_is_scrubbed() -> None:
    class Strict(BaseModel):
        token: str

        @field_validator("token")
        @classmethod
        def _refuse(cls, value: str) -> str:
            raise ValueError(f"token {value} was revoked")

    with pytest.raises(ValidationError) as caught:
        Strict(token=TWILIO_TOKEN)
    error = validation_failed(caught.value, [TWILIO_TOKEN])
    assert [(f.field, f.message) for f in error.fields or []] == [
        ("token", "Value error, token *** was revoked")
    ]
    scrubbed = one_field("fields.auth_token", f"{TWILIO_TOKEN} is too short", [TWILIO_TOKEN])
    assert scrubbed.fields is not None and scrubbed.fields[0].message == "*** is too short"


def test_no_route_returns_a_secret_in_any_answer(api: Api, tenant: str) -> None:
    """Every route, successes and failures, with secrets in the requests."""
    api.call("POST", ACCOUNTS, json=twilio())
    api.call("POST", ACCOUNTS, json=twilio())  # 409
    api.call("POST", ACCOUNTS, json=twilio("second", account_sid="bad"))  # 422
    api.call("POST", ACCOUNTS, json={**twilio("third"), "extra": TWILIO_TOKEN_2})  # 422
    api.call("POST", ACCOUNTS, content=f'{{"fields": {{"auth_token": "{TWILIO_TOKEN}"'.encode())
    api.call("PATCH", PRIMARY, json={"fields": {"auth_token": TWILIO_TOKEN_2}})
    api.call("PATCH", PRIMARY, json={"fields": {"auth_token": TWILIO_TOKEN, "account_sid": "x"}})
    api.call("PATCH", PRIMARY, "viewer", json={"fields": {"auth_token": TWILIO_TOKEN}})  # 403
    api.call("PUT", "/v1/tenants/greenwood/routing", json={"routing": {"sms": ["primary"]}})
    for path in [
        "/v1/tenants",
        "/v1/tenants/greenwood",
        "/v1/tenants/greenwood/routing",
        ACCOUNTS,
        PRIMARY,
        "/v1/api-keys",
        "/v1/audit",
        "/openapi.json",
    ]:
        assert api.call("GET", path).status_code == 200, path
    api.call("POST", "/v1/api-keys", json={"name": "ci", "role": "viewer"})
    api.call("POST", f"{PRIMARY}/test", "operator")
    api.call("DELETE", PRIMARY)
    api.call("DELETE", "/v1/tenants/greenwood")
    assert len(api.recorder.bodies) >= 20
    assert api.recorder.leaks() == []
