"""Envelope encryption of the catalog's secrets: AES-256-GCM, two layers.

Each sealed value has its own random data key; the data key is encrypted
("wrapped") by a master key. Rotating a master key then re-wraps 32-byte data
keys and never touches the ciphertexts, and a stolen database without the
master keys is noise. The AAD binds a ciphertext to its place (the catalog
uses "tenant/label"), so a blob copied onto another account fails to open.

Master keys come from HUB_MASTER_KEYS ("id:base64url,…", the last encrypts)
or from a JSON key file, mode 0600: {"keys": [{"id", "key", "created_at"}]}.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16

log = structlog.get_logger(__name__)


class KeyringError(ValueError):
    """The master keys are missing, malformed, or cannot do what was asked."""


class UnknownKeyError(KeyringError):
    """A sealed value names a master key the keyring does not hold."""


class DecryptError(KeyringError):
    """Tampered ciphertext, a wrong AAD, or the wrong key: never a partial plaintext."""


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise KeyringError(f"master key {self.key_id!r} must be {KEY_BYTES} bytes")
        if not self.key_id or any(c in self.key_id for c in ":, "):
            raise KeyringError(f"master key id {self.key_id!r} must be non-empty, no ':' ',' ' '")

    def __repr__(self) -> str:  # the key itself never reaches a log line
        return f"MasterKey(key_id={self.key_id!r})"


@dataclass(frozen=True)
class Sealed:
    key_id: str
    wrapped_key: bytes  # nonce || AESGCM(master).encrypt(data key, aad=key_id)
    ciphertext: bytes  # nonce || AESGCM(data key).encrypt(plaintext, aad)


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + _TAG_BYTES:
        raise DecryptError("sealed value is truncated")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptError("sealed value does not open: tampered, or a different AAD") from None


class Keyring:
    """Master keys by id; the last one given is the primary, which seals and wraps."""

    def __init__(self, keys: Sequence[MasterKey]) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one master key")
        self._keys = {k.key_id: k for k in keys}
        if len(self._keys) != len(keys):
            raise KeyringError("master key ids must be unique")
        self._primary = keys[-1]

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = False) -> Keyring:
        if settings.master_keys is not None:
            return cls(parse_master_keys(settings.master_keys.get_secret_value()))
        path = settings.master_key_path
        if path.exists():
            return cls.from_file(path)
        if create:
            add_master_key(path)
            return cls.from_file(path)
        raise KeyringError(
            f"no master keys: set HUB_MASTER_KEYS, or create the key file {path} "
            "(HUB_MASTER_KEY_FILE) with `hub keys rotate`"
        )

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        return cls(read_key_file(path))

    @property
    def primary(self) -> MasterKey:
        return self._primary

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def _key(self, key_id: str) -> MasterKey:
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(
                f"master key {key_id!r} is not in the keyring (have: {', '.join(self._keys)})"
            ) from None

    def _unwrap(self, sealed: Sealed) -> bytes:
        master = self._key(sealed.key_id)
        data_key = _decrypt(master.key, sealed.wrapped_key, sealed.key_id.encode())
        if len(data_key) != KEY_BYTES:
            raise DecryptError("wrapped data key has the wrong length")
        return data_key

    def _wrap(self, data_key: bytes) -> tuple[str, bytes]:
        primary = self._primary
        return primary.key_id, _encrypt(primary.key, data_key, primary.key_id.encode())

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        key_id, wrapped = self._wrap(data_key)
        return Sealed(key_id, wrapped, _encrypt(data_key, plaintext, aad))

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        return _decrypt(self._unwrap(sealed), sealed.ciphertext, aad)

    def rewrap(self, sealed: Sealed) -> Sealed:
        """The same ciphertext, its data key wrapped under the primary key."""
        key_id, wrapped = self._wrap(self._unwrap(sealed))
        return Sealed(key_id, wrapped, sealed.ciphertext)


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise KeyringError("master key is not base64url") from None


def _b64encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def parse_master_keys(text: str) -> list[MasterKey]:
    """HUB_MASTER_KEYS: "id1:base64url,id2:base64url"; the last one is the primary."""
    keys = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep:
            raise KeyringError("HUB_MASTER_KEYS entries are id:base64url-32-bytes")
        keys.append(MasterKey(key_id.strip(), _b64decode(encoded.strip())))
    if not keys:
        raise KeyringError("HUB_MASTER_KEYS is set but holds no key")
    return keys


def new_master_key() -> MasterKey:
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return MasterKey(f"mk-{stamp}-{secrets.token_hex(3)}", secrets.token_bytes(KEY_BYTES))


def format_master_key(key: MasterKey) -> str:
    """One HUB_MASTER_KEYS entry."""
    return f"{key.key_id}:{_b64encode(key.key)}"


def _read_entries(path: Path) -> list[dict[str, Any]]:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("master key file readable by others", path=str(path), mode=oct(mode))
    try:
        entries = json.loads(path.read_text())["keys"]
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyringError(f"{path} is not a master key file: {exc}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise KeyringError(f"{path} is not a master key file: keys is not a list of objects")
    return entries


def read_key_file(path: Path) -> list[MasterKey]:
    try:
        return [MasterKey(str(e["id"]), _b64decode(str(e["key"]))) for e in _read_entries(path)]
    except (KeyError, TypeError) as exc:
        raise KeyringError(f"{path}: a key entry lacks {exc}") from None


def _write_entries(path: Path, entries: list[dict[str, Any]]) -> None:
    # Written whole to a sibling and renamed: a crash leaves the old file or the new one.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"keys": entries}, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two `hub keys rotate` at once must not each drop the other's new key.
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add_master_key(path: Path) -> MasterKey:
    """Append a fresh primary key to the key file (created, mode 0600, when missing)."""
    key = new_master_key()
    with _locked(path):
        entries = _read_entries(path) if path.exists() else []
        entries.append({"id": key.key_id, "key": _b64encode(key.key), "created_at": _now_iso()})
        _write_entries(path, entries)
    return key


def remove_master_key(path: Path, key_id: str) -> None:
    """Drop a retired key. The primary (so the last) key is never removed."""
    with _locked(path):
        entries = _read_entries(path)
        ids = [str(e.get("id")) for e in entries]
        if key_id not in ids:
            raise UnknownKeyError(f"master key {key_id!r} is not in {path}")
        if ids[-1] == key_id:
            raise KeyringError(f"{key_id!r} is the primary master key: rotate first")
        _write_entries(path, [e for e in entries if str(e.get("id")) != key_id])


def key_file_info(path: Path) -> list[dict[str, str]]:
    """Ids and creation times of the file's keys (never the keys), oldest first."""
    return [
        {"id": str(e.get("id")), "created_at": str(e.get("created_at", ""))}
        for e in _read_entries(path)
    ]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
