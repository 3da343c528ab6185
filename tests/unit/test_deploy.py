"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine), so keep
them honest: compose runs exactly the components `hub run` runs (bar the
development-only simulators), every command exists, every variable is a setting."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from catalog.tenant_file import parse_tenants
from core.settings import Settings
from hub import erp
from hub.cli import app
from hub.stack import components

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCKERFILE = (ROOT / "deploy/Dockerfile").read_text()
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
# Services built from the hub's image (not kafka's or postgres's).
HUB_SERVICES = {n: s for n, s in SERVICES.items() if "build" in s}
# What the components need, not components themselves (catalog-import: the tenant
# file, loaded into the catalog once).
INFRASTRUCTURE = {"kafka", "postgres", "topics", "erp-demo-schema", "catalog-import"}


def test_compose_runs_every_component_hub_run_runs_and_nothing_else() -> None:
    assert set(SERVICES) >= INFRASTRUCTURE
    composed = {
        name: tuple(service.get("command", ()))
        for name, service in SERVICES.items()
        if name not in INFRASTRUCTURE
    }
    deployed = {c.name: c.args for c in components(simulators=False, cdc=True)}
    assert sorted(set(deployed) - set(composed)) == [], "components compose does not run"
    assert sorted(set(composed) - set(deployed)) == [], "services that are no component"
    assert composed == deployed  # and each with the same hub subcommand


def test_compose_runs_no_development_only_component() -> None:
    dev_only = {c.name for c in components(simulators=True, cdc=True) if c.dev_only}
    assert dev_only == {"simulators"}
    assert not dev_only & set(SERVICES)


def test_the_cdc_source_captures_a_compose_postgres_with_logical_decoding() -> None:
    postgres = SERVICES["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "wal_level=logical" in postgres["command"] and "healthcheck" in postgres
    source = SERVICES["cdc-source"]
    dsn = urlsplit(source["environment"]["HUB_POSTGRES_DSN"])
    assert (dsn.hostname, dsn.port) == ("postgres", 5432)
    assert dsn.path == f"/{postgres['environment']['POSTGRES_DB']}"
    assert int(source["environment"]["HUB_CDC_CONNECT_PORT"]) > 0
    # The source starts once the database is healthy and has the ERP tables.
    schema = source["depends_on"]["erp-demo-schema"]
    assert schema["condition"] == "service_completed_successfully"
    assert SERVICES["erp-demo-schema"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(n for n, s in HUB_SERVICES.items() if "command" in s))
def test_every_compose_service_runs_a_real_hub_command(name: str) -> None:
    result = CliRunner().invoke(app, [*HUB_SERVICES[name]["command"], "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", sorted(HUB_SERVICES))
def test_every_variable_compose_sets_is_a_setting(name: str) -> None:
    fields = {f"HUB_{f.upper()}" for f in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS"}
    assert set(HUB_SERVICES[name]["environment"]) <= fields


def test_the_image_contains_every_package_of_the_distribution() -> None:
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    copied = set(re.findall(r"^COPY (\S+) ", DOCKERFILE, re.M))
    assert set(wheel["packages"]) <= copied
    # The wheel cannot be built without the directories it force-includes.
    assert set(wheel["force-include"]) <= copied


def test_the_example_tenant_file_is_valid() -> None:
    tenants = parse_tenants(tomllib.loads((ROOT / "deploy/tenants.example.toml").read_text()))
    greenwood = tenants.get("greenwood")
    assert greenwood is not None
    assert [p for p in ("razorpay", "twilio", "sendgrid") if not greenwood.has(p)] == []


def test_the_demo_schema_service_installs_into_the_compose_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = SERVICES["erp-demo-schema"]
    python, flag, code = service["entrypoint"]
    assert (python, flag) == ("python", "-c")
    calls: list[object] = []

    def engine_for(dsn: str) -> str:
        calls.append(dsn)
        return "engine"

    monkeypatch.setattr(erp, "engine_for", engine_for)
    monkeypatch.setattr(erp, "install", lambda engine, *_a, **_kw: calls.append(engine))
    for variable, value in service["environment"].items():
        monkeypatch.setenv(variable, value)
    # Run compose's snippet against the fakes: it names real functions and settings.
    exec(compile(code, "erp-demo-schema", "exec"), {})
    assert calls == [service["environment"]["HUB_POSTGRES_DSN"], "engine"]
