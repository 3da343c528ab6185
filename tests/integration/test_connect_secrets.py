"""The Connect worker's secrets: sealed by Python, opened by the Java config provider.

The provider runs as Kafka Connect would load it (compiled against the worker's
own classpath); its self-check prints whether the opened value's SHA-256 is the
one expected, never the value."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from core.crypto import Keyring, format_master_key, new_master_key
from core.settings import Settings
from hub.cdc_source import DEBEZIUM_DIR
from hub.connect_secrets import PROVIDER_CLASS, build_provider, write_sealed
from hub.local_kafka import resolve_classpath

SECRET = "pa:ss=wörd,with}odd${chars}"


@pytest.fixture(scope="module")
def classpath(tmp_path_factory: pytest.TempPathFactory) -> str:
    jars = resolve_classpath(Settings().home, DEBEZIUM_DIR)
    classes = build_provider(tmp_path_factory.mktemp("provider"), jars)
    return f"{classes}:{jars}"


PATH = {"PATH": "/usr/bin:/bin"}


def check(
    classpath: str,
    sealed: Path,
    name: str,
    expected: str,
    env: dict[str, str],
    keys_file: str | None = None,
) -> str:
    digest = hashlib.sha256(expected.encode()).hexdigest()
    argv = ["java", "-cp", classpath, PROVIDER_CLASS, str(sealed), name, digest]
    argv += [keys_file] if keys_file else []
    answer = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=60)
    return (answer.stdout + answer.stderr).strip()


def test_java_opens_what_python_sealed_with_keys_from_the_environment(
    classpath: str, tmp_path: Path
) -> None:
    key = new_master_key()
    sealed = tmp_path / "secrets.sealed"
    write_sealed(sealed, Keyring([key]), {"database.password": SECRET})
    assert SECRET.encode() not in sealed.read_bytes()
    assert sealed.stat().st_mode & 0o777 == 0o600
    env = {"HUB_MASTER_KEYS": format_master_key(key), **PATH}
    assert check(classpath, sealed, "database.password", SECRET, env) == "match"
    assert check(classpath, sealed, "database.password", SECRET + "x", env) == "mismatch"


def test_java_reads_the_hub_key_file_and_refuses_tampering_and_other_names(
    classpath: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path)
    keyring = Keyring.from_settings(settings, create=True)
    sealed = tmp_path / "secrets.sealed"
    write_sealed(sealed, keyring, {"database.password": SECRET})
    keys_file = str(settings.master_key_path)
    assert check(classpath, sealed, "database.password", SECRET, PATH, keys_file) == "match"

    # The same ciphertext under another name: the AAD binds it to its own.
    name, _, value = sealed.read_text().strip().partition("=")
    moved = tmp_path / "moved.sealed"
    moved.write_text(f"other.password={value}\n")
    answer = check(classpath, moved, "other.password", SECRET, PATH, keys_file)
    assert answer == "error: hub config provider: other.password does not open (tampered?)"

    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    tampered = tmp_path / "tampered.sealed"
    tampered.write_text(f"{name}={flipped}\n")
    answer = check(classpath, tampered, name, SECRET, PATH, keys_file)
    assert answer == "error: hub config provider: database.password does not open (tampered?)"
    assert SECRET not in answer


def test_a_worker_without_the_sealing_key_says_which_key_it_lacks(
    classpath: str, tmp_path: Path
) -> None:
    sealing, other = new_master_key(), new_master_key()
    sealed = tmp_path / "secrets.sealed"
    write_sealed(sealed, Keyring([sealing]), {"database.password": SECRET})
    env = {"HUB_MASTER_KEYS": format_master_key(other), **PATH}
    answer = check(classpath, sealed, "database.password", SECRET, env)
    assert answer == (
        f"error: hub config provider: database.password is sealed with master key "
        f"{sealing.key_id}, which this worker does not hold"
    )
