"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine), so keep
them honest: every command they run exists, every variable they set is a setting."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hub.cli import app
from hub.settings import Settings
from hub.tenants import parse_tenants

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
HUB_SERVICES = {n: s for n, s in COMPOSE["services"].items() if "command" in s}


@pytest.mark.parametrize("name", sorted(HUB_SERVICES))
def test_every_compose_service_runs_a_real_hub_command(name: str) -> None:
    result = CliRunner().invoke(app, [*HUB_SERVICES[name]["command"], "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", sorted(HUB_SERVICES))
def test_every_variable_compose_sets_is_a_setting(name: str) -> None:
    fields = {f"HUB_{f.upper()}" for f in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS"}
    assert set(HUB_SERVICES[name]["environment"]) <= fields


def test_the_image_contains_every_package_of_the_distribution() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    copied = set(re.findall(r"^COPY (\w+) ", (ROOT / "deploy/Dockerfile").read_text(), re.M))
    assert set(packages) <= copied


def test_the_example_tenant_file_is_valid() -> None:
    tenants = parse_tenants(tomllib.loads((ROOT / "deploy/tenants.example.toml").read_text()))
    greenwood = tenants.get("greenwood")
    assert greenwood and greenwood.razorpay and greenwood.twilio and greenwood.sendgrid
