"""The admin API over a real SQLite catalog: who may call what, and what each route answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_support import (
    SECRETS,
    TWILIO_FIELDS,
    TWILIO_TOKEN,
    Api,
    open_api,
)
from structlog.testing import capture_logs

from admin_api.auth import allows, presented_key
from admin_api.routes import ENDPOINTS

# The role matrix, written out: every route, the lowest role it admits (None: open).
MATRIX = [
    ("GET", "/v1/tenants", "viewer"),
    ("POST", "/v1/tenants", "admin"),
    ("GET", "/v1/tenants/{tenant_id}", "viewer"),
    ("PATCH", "/v1/tenants/{tenant_id}", "admin"),
    ("DELETE", "/v1/tenants/{tenant_id}", "admin"),
    ("GET", "/v1/tenants/{tenant_id}/routing", "viewer"),
    ("PUT", "/v1/tenants/{tenant_id}/routing", "admin"),
    ("GET", "/v1/tenants/{tenant_id}/accounts", "viewer"),
    ("POST", "/v1/tenants/{tenant_id}/accounts", "admin"),
    ("GET", "/v1/tenants/{tenant_id}/accounts/{label}", "viewer"),
    ("PATCH", "/v1/tenants/{tenant_id}/accounts/{label}", "admin"),
    ("DELETE", "/v1/tenants/{tenant_id}/accounts/{label}", "admin"),
    ("POST", "/v1/tenants/{tenant_id}/accounts/{label}/test", "operator"),
    ("GET", "/v1/api-keys", "admin"),
    ("POST", "/v1/api-keys", "admin"),
    ("DELETE", "/v1/api-keys/{key_id}", "admin"),
    ("GET", "/v1/audit", "viewer"),
    ("GET", "/healthz", None),
    ("GET", "/openapi.json", None),
]
GUARDED = [(m, p, r) for m, p, r in MATRIX if r is not None]
BELOW = {"admin": ["viewer", "operator"], "operator": ["viewer"], "viewer": []}


def concrete(path: str) -> str:
    return path.format(tenant_id="greenwood", label="primary", key_id="0123456789abcdef")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path)


@pytest.fixture
def tenant(api: Api) -> str:
    assert api.call("POST", "/v1/tenants", json={"id": "greenwood"}).status_code == 201
    return "greenwood"


@pytest.fixture
def account(api: Api, tenant: str) -> str:
    body = {"label": "primary", "provider": "twilio", "fields": TWILIO_FIELDS}
    response = api.call("POST", f"/v1/tenants/{tenant}/accounts", json=body)
    assert response.status_code == 201, response.text
    return "primary"


def test_the_route_table_is_the_role_matrix() -> None:
    assert [(e.method, e.path, e.role) for e in ENDPOINTS] == MATRIX


@pytest.mark.parametrize(("method", "path", "role"), GUARDED)
def test_every_guarded_route_refuses_a_caller_without_a_valid_key(
    api: Api, method: str, path: str, role: str
) -> None:
    url = concrete(path)
    revoked, _ = api.service.create_api_key("leaver", "admin"), None
    api.service.revoke_api_key(revoked[0].id)
    for headers in (
        {},
        {"Authorization": "Bearer hubk_0000000000000000_not-a-key"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"X-API-Key": "garbage"},
        {"Authorization": f"Bearer {revoked[1]}"},
    ):
        response = api.client.request(method, url, headers=headers, json={})
        assert response.status_code == 401, (headers, response.text)
        assert response.json() == {"error": "missing or invalid API key"}
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "role"), [g for g in GUARDED if BELOW[g[2]]])
def test_every_route_refuses_a_role_below_its_own(
    api: Api, method: str, path: str, role: str
) -> None:
    for lower in BELOW[role]:
        response = api.call(method, concrete(path), lower, json={})
        assert response.status_code == 403, (lower, response.text)
        assert response.json() == {"error": f"requires role {role}"}


def test_open_routes_need_no_key(api: Api) -> None:
    assert api.call("GET", "/healthz", None).json() == {"status": "ok"}
    document = api.call("GET", "/openapi.json", None).json()
    assert document["openapi"] == "3.1.0"


def test_the_key_may_come_in_either_header(api: Api) -> None:
    token = api.tokens["viewer"]
    assert api.client.get("/v1/tenants", headers={"X-API-Key": token}).status_code == 200
    assert api.client.get("/v1/tenants", headers={"Authorization": f"bearer {token}"}).json() == {
        "tenants": []
    }


def test_key_extraction_and_the_role_ladder() -> None:
    assert presented_key({"authorization": "Bearer  abc "}) == "abc"
    assert presented_key({"authorization": "Basic abc", "x-api-key": "k"}) == "k"
    assert presented_key({"authorization": "Bearer "}) is None
    assert presented_key({}) is None
    assert allows("admin", "operator") and allows("operator", "operator")
    assert not allows("viewer", "operator") and not allows("root", "viewer")


# --- tenants -------------------------------------------------------------------


def test_tenant_lifecycle(api: Api) -> None:
    created = api.call("POST", "/v1/tenants", json={"id": "greenwood", "name": "Greenwood High"})
    assert created.status_code == 201
    body = created.json()
    assert (body["id"], body["name"], body["enabled"], body["accounts"]) == (
        "greenwood",
        "Greenwood High",
        True,
        0,
    )
    listed = api.call("GET", "/v1/tenants", "viewer").json()["tenants"]
    assert [t["id"] for t in listed] == ["greenwood"]
    patched = api.call("PATCH", "/v1/tenants/greenwood", json={"enabled": False})
    assert patched.status_code == 200
    assert (patched.json()["name"], patched.json()["enabled"]) == ("Greenwood High", False)
    assert patched.json()["version"] > body["version"]
    assert api.call("GET", "/v1/tenants/greenwood", "viewer").json()["enabled"] is False
    deleted = api.call("DELETE", "/v1/tenants/greenwood")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert api.call("GET", "/v1/tenants/greenwood").status_code == 404


def test_unknown_tenants_are_404_on_every_tenant_route(api: Api) -> None:
    for method, path, body in [
        ("GET", "/v1/tenants/nowhere", None),
        ("PATCH", "/v1/tenants/nowhere", {"name": "x"}),
        ("DELETE", "/v1/tenants/nowhere", None),
        ("GET", "/v1/tenants/nowhere/routing", None),
        ("PUT", "/v1/tenants/nowhere/routing", {"routing": {}}),
        ("GET", "/v1/tenants/nowhere/accounts", None),
        (
            "POST",
            "/v1/tenants/nowhere/accounts",
            {"label": "a", "provider": "twilio", "fields": TWILIO_FIELDS},
        ),
        ("GET", "/v1/tenants/nowhere/accounts/a", None),
        ("PATCH", "/v1/tenants/nowhere/accounts/a", {"priority": 1}),
        ("DELETE", "/v1/tenants/nowhere/accounts/a", None),
        ("POST", "/v1/tenants/nowhere/accounts/a/test", None),
    ]:
        response = api.call(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"error": "tenant 'nowhere' not found"}


def test_a_duplicate_tenant_is_a_conflict(api: Api, tenant: str) -> None:
    response = api.call("POST", "/v1/tenants", json={"id": "greenwood"})
    assert response.status_code == 409
    assert "greenwood" in response.json()["error"]


def test_tenant_bodies_are_validated_field_by_field(api: Api, tenant: str) -> None:
    bad_id = api.call("POST", "/v1/tenants", json={"id": "Not An Id"})
    assert bad_id.status_code == 422
    assert bad_id.json()["error"] == "validation failed"
    assert [f["field"] for f in bad_id.json()["fields"]] == ["id"]
    typo = api.call("PATCH", "/v1/tenants/greenwood", json={"enable": False})
    assert [f["field"] for f in typo.json()["fields"]] == ["enable"]
    wrong_type = api.call("PATCH", "/v1/tenants/greenwood", json={"enabled": "perhaps"})
    assert [f["field"] for f in wrong_type.json()["fields"]] == ["enabled"]
    not_json = api.call("POST", "/v1/tenants", content=b"{id: greenwood")
    assert not_json.status_code == 422
    assert not_json.json()["fields"] == [{"field": "body", "message": "the body is not valid JSON"}]
    empty = api.call("POST", "/v1/tenants", content=b"")
    assert empty.json()["fields"] == [{"field": "body", "message": "a JSON object is required"}]


# --- routing -------------------------------------------------------------------


def test_routing_is_replaced_whole_and_read_back(api: Api, account: str) -> None:
    path = "/v1/tenants/greenwood/routing"
    put = api.call("PUT", path, json={"routing": {"sms": ["primary"]}})
    assert put.status_code == 200
    assert put.json() == {"tenant_id": "greenwood", "routing": {"sms": ["primary"]}}
    assert api.call("GET", path, "viewer").json()["routing"] == {"sms": ["primary"]}


def test_routing_to_an_unknown_label_or_of_the_wrong_shape_is_422(api: Api, account: str) -> None:
    path = "/v1/tenants/greenwood/routing"
    unknown = api.call("PUT", path, json={"routing": {"sms": ["ghost"]}})
    assert unknown.status_code == 422
    assert "ghost" in unknown.json()["fields"][0]["message"]
    shape = api.call("PUT", path, json={"routing": {"sms": "primary"}})
    assert shape.status_code == 422
    assert [f["field"] for f in shape.json()["fields"]] == ["routing.sms"]
    bare = api.call("PUT", path, json={"sms": ["primary"]})
    assert sorted(f["field"] for f in bare.json()["fields"]) == ["routing", "sms"]


# --- the action log --------------------------------------------------------------


def test_each_action_is_logged_with_the_actor_and_never_the_key(api: Api) -> None:
    with capture_logs() as logs:
        api.call("POST", "/v1/tenants", json={"id": "riverside"})
        api.call("POST", "/v1/tenants", "viewer", json={"id": "elsewhere"})
    actions = [e for e in logs if e["event"] == "admin.action"]
    assert [(e["action"], e["actor"]) for e in actions] == [("tenants.create", "admin-key")]
    assert actions[0]["actor_id"] == api.service.authenticate(api.tokens["admin"]).id
    refused = [e for e in logs if e["event"] == "admin.refused"]
    assert [(e["status"], e["actor"], e["security_event"]) for e in refused] == [
        (403, "viewer-key", True)
    ]
    assert not [e for e in logs if any(t in str(e) for t in api.tokens.values())]


def test_no_secret_reached_any_response_of_these_tests(api: Api, account: str) -> None:
    # The fixture's client recorded every body; the account holds TWILIO_TOKEN.
    api.call("GET", "/v1/tenants/greenwood/accounts/primary")
    assert api.recorder.bodies and TWILIO_TOKEN in SECRETS
    assert api.recorder.leaks() == []


def test_an_oversized_body_or_an_unknown_path_answers_json(api: Api) -> None:
    huge = api.call("POST", "/v1/tenants", content=b'{"name": "' + b"a" * 70_000 + b'"}')
    assert (huge.status_code, huge.json()) == (413, {"error": "the body is over 65536 bytes"})
    nowhere = api.call("GET", "/v2/tenants")
    assert (nowhere.status_code, nowhere.json()) == (404, {"error": "Not Found"})
