"""API keys and the audit trail over the admin API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_support import Api, at, audit_record, open_api

from schemas.events import AuditOutcome


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path)


# --- API keys --------------------------------------------------------------------


def test_a_created_key_is_shown_once_and_works_at_its_role(api: Api) -> None:
    created = api.call("POST", "/v1/api-keys", json={"name": "ci-bot", "role": "operator"})
    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["role"], body["revoked"], body["last_used_at"]) == (
        "ci-bot",
        "operator",
        False,
        None,
    )
    token = body["token"]
    assert token.startswith(f"hubk_{body['id']}_") and token.startswith(body["prefix"])
    headers = {"X-API-Key": token}
    assert api.client.get("/v1/tenants", headers=headers).status_code == 200
    refused = api.client.post("/v1/tenants", headers=headers, json={"id": "x"})
    assert refused.json() == {"error": "requires role admin"}


def test_keys_are_listed_without_tokens_or_hashes(api: Api) -> None:
    listed = api.call("GET", "/v1/api-keys")
    assert listed.status_code == 200
    keys = listed.json()["api_keys"]
    assert sorted((k["name"], k["role"]) for k in keys) == [
        ("admin-key", "admin"),
        ("operator-key", "operator"),
        ("viewer-key", "viewer"),
    ]
    assert set(keys[0]) == {"id", "name", "role", "prefix", "created_at", "last_used_at", "revoked"}
    assert not [t for t in api.tokens.values() if t in listed.text]


def test_a_revoked_key_authenticates_nothing(api: Api) -> None:
    created = api.call("POST", "/v1/api-keys", json={"name": "temp", "role": "viewer"}).json()
    revoked = api.call("DELETE", f"/v1/api-keys/{created['id']}")
    assert (revoked.status_code, revoked.content) == (204, b"")
    after = api.client.get("/v1/tenants", headers={"X-API-Key": created["token"]})
    assert after.status_code == 401
    listed = {k["id"]: k["revoked"] for k in api.call("GET", "/v1/api-keys").json()["api_keys"]}
    assert listed[created["id"]] is True


def test_revoking_an_unknown_key_is_404(api: Api) -> None:
    response = api.call("DELETE", "/v1/api-keys/0123456789abcdef")
    assert response.status_code == 404
    assert response.json() == {"error": "API key '0123456789abcdef' not found"}


def test_key_bodies_are_validated(api: Api) -> None:
    role = api.call("POST", "/v1/api-keys", json={"name": "x", "role": "root"})
    assert role.status_code == 422
    assert [f["field"] for f in role.json()["fields"]] == ["role"]
    name = api.call("POST", "/v1/api-keys", json={"name": "", "role": "viewer"})
    assert [f["field"] for f in name.json()["fields"]] == ["name"]
    missing = api.call("POST", "/v1/api-keys", json={"role": "viewer"})
    assert [f["field"] for f in missing.json()["fields"]] == ["name"]


# --- the audit trail -----------------------------------------------------------------


@pytest.fixture
def trail(api: Api) -> Api:
    api.audit.extend(
        [
            audit_record("greenwood", "twilio", 201, AuditOutcome.DELIVERED, at(1)),
            audit_record("greenwood", "twilio", 503, AuditOutcome.RETRY, at(2)),
            audit_record("riverside", "sendgrid", 202, AuditOutcome.DELIVERED, at(3)),
            audit_record("greenwood", "sendgrid", None, AuditOutcome.ERROR, at(4)),
        ]
    )
    return api


def _statuses(api: Api, query: str) -> list[tuple[str, str, int | None]]:
    response = api.call("GET", f"/v1/audit{query}", "viewer")
    assert response.status_code == 200, response.text
    records = response.json()["records"]
    assert response.json()["count"] == len(records)
    return [(r["header"]["tenant"], r["provider"], r["http_status"]) for r in records]


def test_the_audit_trail_is_read_and_filtered(trail: Api) -> None:
    assert _statuses(trail, "") == [
        ("greenwood", "twilio", 201),
        ("greenwood", "twilio", 503),
        ("riverside", "sendgrid", 202),
        ("greenwood", "sendgrid", None),
    ]
    assert _statuses(trail, "?tenant=riverside") == [("riverside", "sendgrid", 202)]
    assert _statuses(trail, "?provider=twilio&status=5xx") == [("greenwood", "twilio", 503)]
    assert _statuses(trail, "?status=none") == [("greenwood", "sendgrid", None)]
    assert _statuses(trail, "?since=2026-03-01T10:03:00Z") == [
        ("riverside", "sendgrid", 202),
        ("greenwood", "sendgrid", None),
    ]
    assert _statuses(trail, "?limit=1") == [("greenwood", "sendgrid", None)]


def test_a_record_comes_whole(trail: Api) -> None:
    record = trail.call("GET", "/v1/audit?limit=1", "viewer").json()["records"][0]
    assert (record["outcome"], record["direction"], record["method"]) == (
        "error",
        "outbound",
        "POST",
    )
    assert record["at"] == "2026-03-01T10:04:00Z"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=many", "limit"),
        ("?since=yesterday", "since"),
        ("?status=teapot", "status"),
        ("?tenant_id=greenwood", "tenant_id"),
    ],
)
def test_an_invalid_audit_query_is_422_naming_the_parameter(
    trail: Api, query: str, field: str
) -> None:
    response = trail.call("GET", f"/v1/audit{query}", "viewer")
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == [field]
