"""No child process gets a secret in its environment, except the master key.

A process's environment is readable by others (/proc/<pid>/environ, `ps e`) and inherited by
everything it starts, so `hub run`'s components get each secret setting as HUB_<NAME>_FILE,
a 0600 file under HUB_HOME, and the parent's own secret variables are not passed on.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr, ValidationError

from core.masking import mask_dsn
from core.settings import (
    Settings,
    env_variable,
    env_variables,
    file_variable,
    secret_setting_names,
)
from hub import local_kafka
from hub.stack import HubStack, child_env, inherited_env, secret_values, settings_env

PASSWORD = "canary-dbpass-7f3a9c"
CATALOG = f"postgresql+psycopg://hub:{PASSWORD}-catalog@db.internal:5432/catalog"
SOURCE = f"postgresql://erp:{PASSWORD}-source@db.internal:5432/school_erp"
REGISTRY = f"https://reg:{PASSWORD}-registry@registry.internal"
MASTER = "k1:" + "A" * 43


# Every SecretStr setting (a SASL password ...), whichever there are: a canary each.
SECRET_STRS = {
    name: f"{PASSWORD}-{name}"
    for name in secret_setting_names(Settings)
    if "SecretStr" in str(Settings.model_fields[name].annotation)
}


def canaries() -> list[str]:
    forms = [f"{PASSWORD}-catalog", f"{PASSWORD}-source", f"{PASSWORD}-registry"]
    forms += SECRET_STRS.values()
    return [*forms, *(quote(f, safe="") for f in forms), PASSWORD]


def secret_settings(home: Path) -> Settings:
    return Settings(
        home=home,
        catalog_url=CATALOG,
        postgres_dsn=SOURCE,
        schema_registry_url=REGISTRY,
        master_keys=SecretStr(MASTER),
        **{name: SecretStr(value) for name, value in SECRET_STRS.items()},
    )


def leaks(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items() for c in canaries() if c in v or c in k]


def test_the_secret_settings_are_the_dsns_and_every_secretstr_but_the_master_key() -> None:
    names = set(secret_setting_names(Settings))
    assert {"catalog_url", "postgres_dsn", "schema_registry_url"} <= names
    assert "master_keys" not in names
    # Every SecretStr setting (a SASL password another part adds) is one too.
    for name, field in Settings.model_fields.items():
        if "SecretStr" in str(field.annotation) and name != "master_keys":
            assert name in names


def test_component_env_holds_no_secret_but_the_master_key(tmp_path: Path) -> None:
    settings = secret_settings(tmp_path / "home")
    # The operator's shell had them exported as values, too: they are not passed on.
    parent = {
        "PATH": "/usr/bin",
        env_variable("catalog_url"): CATALOG,
        env_variable("postgres_dsn"): SOURCE,
    }
    env = child_env(settings, parent)
    assert leaks(env) == []
    assert env["HUB_MASTER_KEYS"] == MASTER
    assert env["PATH"] == "/usr/bin"
    for name in ("catalog_url", "postgres_dsn", "schema_registry_url"):
        assert env_variable(name) not in env


def test_secret_files_are_0600_in_a_0700_dir_and_hold_the_values(tmp_path: Path) -> None:
    settings = secret_settings(tmp_path / "home")
    env = child_env(settings, {})
    expected = {"catalog_url": CATALOG, "postgres_dsn": SOURCE, "schema_registry_url": REGISTRY}
    expected |= SECRET_STRS
    for name, value in expected.items():
        path = Path(env[file_variable(name)])
        assert path.read_text() == value
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.parent == tmp_path / "home" / "secrets"
    assert stat.S_IMODE((tmp_path / "home" / "secrets").stat().st_mode) == 0o700


def test_a_child_rebuilds_the_same_settings_from_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = secret_settings(tmp_path / "home")
    for key in list(os.environ):
        if key.startswith("HUB_") or key == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(key)
    for key, value in child_env(settings, {}).items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings


def test_a_real_child_process_reads_its_dsn_from_the_file_not_its_environment(
    tmp_path: Path,
) -> None:
    settings = secret_settings(tmp_path / "home")
    env = {**child_env(settings, os.environ)}
    script = (
        "import os; from core.settings import Settings; s = Settings(); "
        "print(s.postgres_dsn == os.environ['EXPECTED']); "
        "print(any('canary' in v for v in os.environ.values() if v != os.environ['EXPECTED']))"
    )
    # EXPECTED is this test's own variable, to compare with: not something a component gets.
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "EXPECTED": SOURCE},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.split() == ["True", "False"]


def test_without_secrets_no_files_are_written(tmp_path: Path) -> None:
    env = child_env(Settings(home=tmp_path / "home"), {})
    assert not (tmp_path / "home" / "secrets").exists()
    assert not [k for k in env if k.endswith("_FILE") and k != "HUB_MASTER_KEY_FILE"]


def test_settings_env_never_holds_a_secret_value_even_without_files(tmp_path: Path) -> None:
    assert leaks(settings_env(secret_settings(tmp_path))) == []
    assert set(secret_values(secret_settings(tmp_path))) == {
        "catalog_url",
        "postgres_dsn",
        "schema_registry_url",
        *SECRET_STRS,
    }


def test_inherited_env_drops_secret_variables_and_stale_files() -> None:
    parent = {"HOME": "/root", "HUB_POSTGRES_DSN": SOURCE, "HUB_CATALOG_URL_FILE": "/old"}
    assert inherited_env(parent) == {"HOME": "/root"}


def test_the_stack_hands_every_component_the_clean_env(tmp_path: Path) -> None:
    stack = HubStack(secret_settings(tmp_path / "home"), tmp_path / "logs")
    env = stack.supervisor.env
    assert leaks(env) == []
    assert Path(env[file_variable("catalog_url")]).read_text() == CATALOG


def test_both_a_value_and_a_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "dsn"
    secret.write_text(SOURCE + "\n")
    monkeypatch.setenv(file_variable("postgres_dsn"), str(secret))
    assert Settings().postgres_dsn == SOURCE  # the final newline is not part of it
    monkeypatch.setenv(env_variable("postgres_dsn"), SOURCE)
    with pytest.raises((ValueError, ValidationError), match="both HUB_POSTGRES_DSN"):
        Settings()


def test_an_unreadable_file_names_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(file_variable("catalog_url"), str(tmp_path / "missing"))
    with pytest.raises((ValueError, ValidationError), match="HUB_CATALOG_URL_FILE"):
        Settings()


def test_a_settings_aliases_are_its_variables_too() -> None:
    # What inherited_env drops for a secret setting with an alias (KAFKA_…), like this one.
    assert env_variables(Settings, "kafka_bootstrap_servers") == {
        "HUB_KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_BOOTSTRAP_SERVERS",
    }
    assert env_variables(Settings, "postgres_dsn") == {"HUB_POSTGRES_DSN"}


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (SOURCE, "postgresql://erp:***@db.internal:5432/school_erp"),
        (
            "postgresql://hub@127.0.0.1:15432/school_erp",
            "postgresql://hub@127.0.0.1:15432/school_erp",
        ),
        ("sqlite:////root/.cache/catalog.db", "sqlite:////root/.cache/catalog.db"),
    ],
)
def test_a_dsn_on_screen_has_its_password_masked(dsn: str, shown: str) -> None:
    # What `hub run` and `hub postgres status` print for the databases they use.
    assert mask_dsn(dsn) == shown


def test_servers_the_hub_starts_get_no_hub_or_kafka_variables() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "HUB_MASTER_KEYS": "mk:canary-master",
        "HUB_KAFKA_SASL_PASSWORD": "canary-sasl",
        "hub_postgres_dsn": "postgresql://u:canary-pw@h/db",
        "KAFKA_SASL_PASSWORD": "canary-plain",
    }
    assert local_kafka.server_env(environ) == {"PATH": "/usr/bin", "HOME": "/root"}
