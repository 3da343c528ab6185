"""Secrets of the Kafka Connect worker, sealed: never on disk in plain text.

A connector's config names its secrets as `${hub:<sealed file>:<name>}`; Kafka
Connect resolves them through the hub's config provider
(deploy/debezium/provider/SealedConfigProvider.java), which opens the values
with the same master keys (HUB_MASTER_KEYS or the key file) and the same
AES-256-GCM envelope as the catalog's secrets (core/crypto.py). The properties
files under HUB_HOME then hold references and ciphertext only, and Connect's
own config topic or REST answers never see a password either.

The provider is one Java class compiled with the JDK's javac against the
worker's classpath the first time it is needed, and cached by its source's hash.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from core.crypto import Keyring
from core.settings import Settings
from hub.local_kafka import DEPLOY_DIR, KafkaSetupError

PROVIDER = "hub"
PROVIDER_CLASS = "hub.connect.SealedConfigProvider"
SOURCE = DEPLOY_DIR.parent / "debezium" / "provider" / "SealedConfigProvider.java"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def aad(name: str) -> bytes:
    """Binds a sealed value to its name: copied under another one, it does not open."""
    return f"connect/{name}".encode()


def sealed_line(keyring: Keyring, name: str, value: str) -> str:
    sealed = keyring.seal(value.encode(), aad(name))
    return f"{name}=v1:{sealed.key_id}:{_b64(sealed.wrapped_key)}:{_b64(sealed.ciphertext)}\n"


def write_sealed(path: Path, keyring: Keyring, values: Mapping[str, str]) -> None:
    """The sealed values, one per line, written whole (0600) and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(sealed_line(keyring, name, value) for name, value in values.items())
    os.replace(tmp, path)


def reference(sealed_file: Path, name: str) -> str:
    """What a connector's config holds instead of the secret."""
    return f"${{{PROVIDER}:{sealed_file}:{name}}}"


def provider_properties(settings: Settings) -> dict[str, object]:
    """The worker's config lines that install the provider. The master keys reach it the
    way they reach every hub process: HUB_MASTER_KEYS in the environment, else the file."""
    lines: dict[str, object] = {
        "config.providers": PROVIDER,
        f"config.providers.{PROVIDER}.class": PROVIDER_CLASS,
    }
    if settings.master_keys is None:
        lines[f"config.providers.{PROVIDER}.param.keys.file"] = settings.master_key_path
    return lines


def build_provider(home: Path, classpath: str, source: Path = SOURCE) -> Path:
    """The provider's compiled classes (a classpath entry), built once per source version."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out = home / "cdc" / f"config-provider-{digest}"
    marker = out / ".built"
    if marker.exists():
        return out
    javac = shutil.which("javac")
    if javac is None:
        raise KafkaSetupError(
            "javac is not installed: the hub compiles its Kafka Connect config provider "
            "(install a JDK 17+, e.g. apt-get install openjdk-17-jdk-headless)"
        )
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(  # noqa: S603 - argv built here, no shell
        [javac, "-nowarn", "-encoding", "UTF-8", "-cp", classpath, "-d", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise KafkaSetupError(f"javac could not build {source.name}:\n{result.stderr}")
    marker.touch()
    return out
