"""The admin API's OpenAPI document, and the `hub admin` / `hub api-keys` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from admin_support import make_settings
from test_admin_api import MATRIX
from typer.testing import CliRunner

from admin_api.routes import document, render
from catalog.service import CatalogService
from hub.cli import app

COMMITTED = Path(__file__).parents[2] / "deploy" / "openapi.json"
runner = CliRunner()


def test_the_committed_document_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == render(), (
        "deploy/openapi.json is out of date: regenerate with "
        "`hub admin openapi > deploy/openapi.json` and commit it"
    )


def test_the_document_has_every_route_with_its_roles() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    found = [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]
    assert sorted(found) == sorted((m, p) for m, p, _ in MATRIX)
    paths = doc["paths"]
    assert paths["/v1/tenants/{tenant_id}/accounts/{label}/test"]["post"]["x-roles"] == [
        "operator",
        "admin",
    ]
    assert paths["/v1/api-keys"]["get"]["x-roles"] == ["admin"]
    assert paths["/v1/tenants"]["get"]["x-roles"] == ["viewer", "operator", "admin"]
    assert paths["/healthz"]["get"]["security"] == []


def test_every_guarded_operation_documents_its_refusals() -> None:
    for method, path, role in MATRIX:
        responses = document()["paths"][path][method.lower()]["responses"]
        assert ("401" in responses) == (role is not None), (method, path)
        assert ("403" in responses) == (role in ("operator", "admin")), (method, path)
    create = document()["paths"]["/v1/tenants/{tenant_id}/accounts"]["post"]
    assert sorted(create["responses"]) == ["201", "401", "403", "404", "409", "413", "422"]
    assert [p["name"] for p in create["parameters"]] == ["tenant_id"]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves_and_bodies_forbid_unknown_fields() -> None:
    doc = document()
    refs = _refs(doc)
    assert "#/components/schemas/AccountCreate" in refs
    for ref in refs:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref
    account = doc["components"]["schemas"]["AccountCreate"]
    assert account["additionalProperties"] is False
    assert account["required"] == ["label", "provider"]
    assert "token" not in doc["components"]["schemas"]["ApiKeyOut"]["properties"]


# --- the commands --------------------------------------------------------------


def test_the_admin_commands_have_help() -> None:
    for command in (
        ["admin"],
        ["admin", "serve"],
        ["admin", "openapi"],
        ["api-keys"],
        ["api-keys", "create"],
        ["api-keys", "list"],
        ["api-keys", "revoke"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


def test_hub_admin_openapi_prints_the_committed_document() -> None:
    result = runner.invoke(app, ["admin", "openapi"])
    assert result.exit_code == 0
    assert result.stdout == COMMITTED.read_text()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HUB_HOME": str(tmp_path), "COLUMNS": "200"}


def test_api_keys_are_created_listed_and_revoked_from_the_cli(
    env: dict[str, str], tmp_path: Path
) -> None:
    created = runner.invoke(
        app, ["api-keys", "create", "deploy-bot", "--role", "operator"], env=env
    )
    assert created.exit_code == 0, created.output
    assert "not shown again" in created.output
    token = next(line for line in created.stdout.splitlines() if line.startswith("hubk_"))
    service = CatalogService.open(make_settings(tmp_path))
    info = service.authenticate(token)
    assert info is not None and (info.name, info.role) == ("deploy-bot", "operator")

    listed = runner.invoke(app, ["api-keys", "list", "--json"], env=env)
    assert listed.exit_code == 0
    keys = json.loads(listed.stdout)
    assert [(k["id"], k["name"], k["role"], k["revoked"]) for k in keys] == [
        (info.id, "deploy-bot", "operator", False)
    ]
    assert token not in listed.stdout
    table = runner.invoke(app, ["api-keys", "list"], env=env)
    assert "deploy-bot" in table.output and "active" in table.output

    revoked = runner.invoke(app, ["api-keys", "revoke", info.id], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert service.authenticate(token) is None
    assert "revoked" in runner.invoke(app, ["api-keys", "list"], env=env).output


def test_the_cli_refuses_an_unknown_role_and_an_unknown_key(env: dict[str, str]) -> None:
    bad_role = runner.invoke(app, ["api-keys", "create", "x", "--role", "root"], env=env)
    assert bad_role.exit_code == 1 and "unknown role 'root'" in bad_role.output
    unknown = runner.invoke(app, ["api-keys", "revoke", "0123456789abcdef"], env=env)
    assert unknown.exit_code == 1 and "no API key '0123456789abcdef'" in unknown.output
