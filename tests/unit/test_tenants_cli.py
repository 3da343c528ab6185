"""`hub tenants`, `hub accounts`, `hub keys` against an SQLite catalog; Kafka is a port nobody
listens on, so every change must be saved and say it will be published later."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from catalog_cases import TENANT_FILE
from typer.testing import CliRunner

from catalog.service import CatalogService
from core.ports import free_port
from core.settings import Settings
from hub.cli import app, catalog_support

runner = CliRunner()
TWILIO_SETS = ["--set", "account_sid=AC0001", "--set", "from_number=+15005550006"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setattr(catalog_support, "PUBLISH_TIMEOUT", 0.5)
    return {
        "HUB_HOME": str(tmp_path),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "COLUMNS": "200",
    }


def hub(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env, input=stdin)
    return result.exit_code, result.output


def catalog(env: dict[str, str]) -> CatalogService:
    return CatalogService.open(Settings(home=Path(env["HUB_HOME"])))


def with_account(env: dict[str, str]) -> None:
    assert hub(env, "tenants", "create", "greenwood", "--name", "Greenwood High")[0] == 0
    code, out = hub(
        env,
        "accounts", "add", "greenwood", "twilio-primary", "--provider", "twilio",
        *TWILIO_SETS, "--secret", "auth_token",
        stdin="tw-token-1\n",
    )  # fmt: skip
    assert code == 0, out
    assert "tw-token-1" not in out


def test_every_catalog_command_has_help() -> None:
    for command in [
        ["tenants"], ["tenants", "list"], ["tenants", "show"], ["tenants", "create"],
        ["tenants", "update"], ["tenants", "delete"], ["tenants", "import"], ["tenants", "route"],
        ["accounts"], ["accounts", "list"], ["accounts", "show"], ["accounts", "add"],
        ["accounts", "update"], ["accounts", "remove"],
        ["keys"], ["keys", "list"], ["keys", "rotate"], ["keys", "retire"], ["keys", "rewrap"],
        ["keys", "generate"],
    ]:  # fmt: skip
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_a_change_is_saved_when_kafka_is_away_and_says_who_publishes_it(
    env: dict[str, str],
) -> None:
    code, out = hub(env, "tenants", "create", "greenwood", "--name", "Greenwood High")
    assert code == 0, out
    assert "tenant greenwood created (version 1)" in out
    assert "Saved, not published yet" in out and env["KAFKA_BOOTSTRAP_SERVERS"] in out
    assert "hub admin serve" in out
    code, out = hub(env, "tenants", "list", "--json")
    assert code == 0
    assert [(t["id"], t["name"], t["version"]) for t in json.loads(out)] == [
        ("greenwood", "Greenwood High", 1)
    ]


def test_secrets_are_prompted_hidden_or_read_from_a_variable_never_echoed(
    env: dict[str, str],
) -> None:
    with_account(env)
    code, out = hub(
        env,
        "accounts", "add", "greenwood", "rzp", "--provider", "razorpay",
        "--set", "key_id=rzp_test_1", "--secret-from-env", "key_secret=RZP_SECRET",
        "--secret-from-env", "webhook_secret=RZP_HOOK", "--priority", "3",
    )  # fmt: skip
    assert code == 1 and "RZP_SECRET is not set" in out
    env = {**env, "RZP_SECRET": "rzp-secret-1", "RZP_HOOK": "whsec-1"}
    code, out = hub(
        env,
        "accounts", "add", "greenwood", "rzp", "--provider", "razorpay",
        "--set", "key_id=rzp_test_1", "--secret-from-env", "key_secret=RZP_SECRET",
        "--secret-from-env", "webhook_secret=RZP_HOOK", "--priority", "3",
    )  # fmt: skip
    assert code == 0, out
    code, listed = hub(env, "accounts", "list", "greenwood", "--json")
    assert [(a["label"], a["priority"], a["secrets_set"]) for a in json.loads(listed)] == [
        ("twilio-primary", 0, ["auth_token"]),
        ("rzp", 3, ["key_secret", "webhook_secret"]),
    ]
    _, shown = hub(env, "tenants", "show", "greenwood")
    _, shown_json = hub(env, "tenants", "show", "greenwood", "--json")
    for output in (out, listed, shown, shown_json):
        for secret in ("tw-token-1", "rzp-secret-1", "whsec-1"):
            assert secret not in output
    assert sorted(catalog(env).load_tenant("greenwood").secret_values()) == [
        "rzp-secret-1", "tw-token-1", "whsec-1",
    ]  # fmt: skip


def test_a_secret_given_with_set_is_refused_before_anything_is_saved(env: dict[str, str]) -> None:
    assert hub(env, "tenants", "create", "greenwood")[0] == 0
    code, out = hub(
        env, "accounts", "add", "greenwood", "tw", "-p", "twilio", *TWILIO_SETS,
        "--set", "auth_token=leaked",
    )  # fmt: skip
    assert code == 1 and "auth_token is secret for twilio" in out and "--secret" in out
    code, out = hub(env, "accounts", "add", "greenwood", "tw", "-p", "twilio", "--secret", "nope")
    assert code == 1 and "not a secret field of twilio" in out
    code, out = hub(env, "accounts", "add", "greenwood", "tw", "-p", "nosuch")
    assert code == 1 and "no provider 'nosuch'" in out
    assert catalog(env).list_accounts("greenwood") == []


def test_update_keeps_the_secrets_it_is_not_given(env: dict[str, str]) -> None:
    with_account(env)
    code, out = hub(
        env, "accounts", "update", "greenwood", "twilio-primary",
        "--set", "from_number=+15005550007", "--disable",
    )  # fmt: skip
    assert code == 0, out
    code, out = hub(env, "accounts", "show", "greenwood", "twilio-primary", "--json")
    shown = json.loads(out)
    assert (shown["settings"]["from_number"], shown["enabled"]) == ("+15005550007", False)
    assert catalog(env).load_tenant("greenwood").secret_values() == ["tw-token-1"]
    code, out = hub(env, "accounts", "update", "greenwood", "twilio-primary", "--set", "x=1")
    assert code == 1 and "x:" in out


def test_routing_removal_and_deletion(env: dict[str, str]) -> None:
    with_account(env)
    code, out = hub(env, "tenants", "route", "greenwood", "sms", "twilio-primary", "msg91")
    assert code == 1 and "no account 'msg91'" in out
    assert hub(env, "tenants", "route", "greenwood", "sms", "twilio-primary")[0] == 0
    _, out = hub(env, "tenants", "show", "greenwood", "--json")
    assert json.loads(out)["routing"] == {"sms": ["twilio-primary"]}
    assert hub(env, "accounts", "remove", "greenwood", "twilio-primary", "--yes")[0] == 0
    _, out = hub(env, "tenants", "show", "greenwood", "--json")
    assert (json.loads(out)["routing"], json.loads(out)["accounts"]) == ({}, [])
    code, out = hub(env, "tenants", "delete", "greenwood", stdin="n\n")
    assert code == 1 and "Aborted" in out
    assert hub(env, "tenants", "delete", "greenwood", "--yes")[0] == 0
    code, out = hub(env, "tenants", "show", "greenwood")
    assert code == 2 and "no tenant 'greenwood'" in out


def test_import_reports_what_it_did_and_changes_nothing_the_second_time(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(TENANT_FILE)
    code, out = hub(env, "tenants", "import", str(path))
    assert code == 0, out
    assert "tenants: 1 created, 0 updated, 0 unchanged" in out
    assert "accounts: 2 created, 0 updated, 0 unchanged" in out
    code, out = hub(env, "tenants", "import", str(path))
    assert "tenants: 0 created, 0 updated, 1 unchanged" in out
    assert "accounts: 0 created, 0 updated, 2 unchanged" in out
    code, out = hub(env, "tenants", "import", str(tmp_path / "missing.toml"))
    assert code == 1 and "does not exist" in out


def test_keys_rotate_then_retire_the_old_one(env: dict[str, str]) -> None:
    with_account(env)
    _, out = hub(env, "keys", "list", "--json")
    [old] = json.loads(out)
    assert (old["primary"], old["accounts"]) == (True, 1)
    code, out = hub(env, "keys", "rotate")
    assert code == 0 and "1 account(s) re-wrapped in 1 tenant(s)" in out
    _, out = hub(env, "keys", "list", "--json")
    keys = json.loads(out)
    assert [(k["id"] == old["id"], k["primary"], k["accounts"]) for k in keys] == [
        (True, False, 0),
        (False, True, 1),
    ]
    code, out = hub(env, "keys", "retire", keys[1]["id"])
    assert code == 1 and "primary" in out
    code, out = hub(env, "keys", "retire", old["id"])
    assert code == 0, out
    _, out = hub(env, "keys", "list", "--json")
    assert [k["id"] for k in json.loads(out)] == [keys[1]["id"]]
    assert catalog(env).load_tenant("greenwood").secret_values() == ["tw-token-1"]


def test_keys_from_the_environment_are_the_operators_to_rotate(env: dict[str, str]) -> None:
    code, entry = hub(env, "keys", "generate")
    assert code == 0
    env = {**env, "HUB_MASTER_KEYS": entry.strip()}
    with_account(env)
    code, out = hub(env, "keys", "rotate")
    assert code == 1 and "HUB_MASTER_KEYS" in out and "hub keys rewrap" in out
    _, second = hub(env, "keys", "generate")
    env = {**env, "HUB_MASTER_KEYS": f"{entry.strip()},{second.strip()}"}
    code, out = hub(env, "keys", "rewrap")
    assert code == 0 and "1 account(s) re-wrapped" in out
    assert not (Path(env["HUB_HOME"]) / "master-keys.json").exists()


def test_the_first_command_creates_the_key_file_and_says_to_back_it_up(
    env: dict[str, str],
) -> None:
    result = runner.invoke(app, ["tenants", "list", "--json"], env=env)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "Created the master key file" in result.stderr and "Back it" in result.stderr
    second = runner.invoke(app, ["tenants", "list", "--json"], env=env)
    assert "master key file" not in second.output
