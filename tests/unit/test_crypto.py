import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from core.crypto import (
    DecryptError,
    Keyring,
    KeyringError,
    MasterKey,
    Sealed,
    UnknownKeyError,
    add_master_key,
    format_master_key,
    parse_master_keys,
    read_key_file,
    remove_master_key,
)
from core.settings import Settings

K1 = MasterKey("k1", bytes(range(32)))
K2 = MasterKey("k2", bytes(range(32, 64)))
AAD = b"greenwood/twilio-primary"


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_sealed_value_opens_with_its_aad() -> None:
    keyring = Keyring([K1])
    sealed = keyring.seal(b'{"auth_token": "s3cret"}', AAD)
    assert sealed.key_id == "k1"
    assert keyring.open(sealed, AAD) == b'{"auth_token": "s3cret"}'
    assert b"s3cret" not in sealed.ciphertext and b"s3cret" not in sealed.wrapped_key


def test_the_layout_is_nonce_then_aes_gcm_in_both_layers() -> None:
    # Built with cryptography directly, as the contract describes it: any reader can open it.
    data_key, n1, n2 = bytes([7]) * 32, bytes([1]) * 12, bytes([2]) * 12
    wrapped = n1 + AESGCM(K1.key).encrypt(n1, data_key, b"k1")
    ciphertext = n2 + AESGCM(data_key).encrypt(n2, b"hello", AAD)
    assert Keyring([K1]).open(Sealed("k1", wrapped, ciphertext), AAD) == b"hello"
    sealed = Keyring([K1]).seal(b"hello", AAD)
    assert len(sealed.wrapped_key) == 12 + 32 + 16
    assert len(sealed.ciphertext) == 12 + 5 + 16


def test_each_seal_uses_a_fresh_data_key_and_nonce() -> None:
    keyring = Keyring([K1])
    first, second = keyring.seal(b"same", AAD), keyring.seal(b"same", AAD)
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext != second.ciphertext


@pytest.mark.parametrize("at", [0, 12, 20, -1])
def test_one_tampered_byte_of_the_ciphertext_does_not_open(at: int) -> None:
    keyring = Keyring([K1])
    sealed = keyring.seal(b"secret", AAD)
    tampered = Sealed(sealed.key_id, sealed.wrapped_key, flip(sealed.ciphertext, at))
    with pytest.raises(DecryptError):
        keyring.open(tampered, AAD)


def test_one_tampered_byte_of_the_wrapped_key_does_not_open() -> None:
    keyring = Keyring([K1])
    sealed = keyring.seal(b"secret", AAD)
    with pytest.raises(DecryptError):
        keyring.open(Sealed("k1", flip(sealed.wrapped_key, 30), sealed.ciphertext), AAD)


def test_a_truncated_value_does_not_open() -> None:
    keyring = Keyring([K1])
    sealed = keyring.seal(b"secret", AAD)
    with pytest.raises(DecryptError):
        keyring.open(Sealed("k1", sealed.wrapped_key, sealed.ciphertext[:20]), AAD)


def test_the_wrong_aad_does_not_open() -> None:
    keyring = Keyring([K1])
    sealed = keyring.seal(b"secret", AAD)
    with pytest.raises(DecryptError):
        keyring.open(sealed, b"riverside/twilio-primary")


def test_a_value_wrapped_under_an_unknown_key_is_refused_by_name() -> None:
    sealed = Keyring([K2]).seal(b"secret", AAD)
    with pytest.raises(UnknownKeyError, match="'k2'"):
        Keyring([K1]).open(sealed, AAD)


def test_another_key_with_the_same_id_does_not_open() -> None:
    sealed = Keyring([K1]).seal(b"secret", AAD)
    with pytest.raises(DecryptError):
        Keyring([MasterKey("k1", bytes(32))]).open(sealed, AAD)


def test_rewrap_keeps_the_ciphertext_and_opens_once_the_old_key_is_gone() -> None:
    old = Keyring([K1]).seal(b"secret", AAD)
    rewrapped = Keyring([K1, K2]).rewrap(old)
    assert rewrapped.key_id == "k2"
    assert rewrapped.ciphertext == old.ciphertext
    assert rewrapped.wrapped_key != old.wrapped_key
    assert Keyring([K2]).open(rewrapped, AAD) == b"secret"


def test_the_last_key_is_the_primary_and_ids_are_unique() -> None:
    assert Keyring([K1, K2]).primary == K2
    assert Keyring([K1, K2]).key_ids == ["k1", "k2"]
    with pytest.raises(KeyringError):
        Keyring([K1, MasterKey("k1", bytes(32))])
    with pytest.raises(KeyringError):
        Keyring([])


def test_master_keys_must_be_32_bytes_and_never_show_in_a_repr() -> None:
    with pytest.raises(KeyringError):
        MasterKey("short", b"x" * 16)
    assert repr(K1) == "MasterKey(key_id='k1')"


def test_hub_master_keys_parses_ids_and_base64url_last_one_primary() -> None:
    text = f"k1:{base64.urlsafe_b64encode(K1.key).decode()}, {format_master_key(K2)}"
    assert parse_master_keys(text) == [K1, K2]
    for bad in ["", "k1", "k1:not base64!", "k1:" + base64.urlsafe_b64encode(b"short").decode()]:
        with pytest.raises(KeyringError):
            parse_master_keys(bad)


def test_the_key_file_is_created_mode_0600_and_grows_a_new_primary(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master-keys.json"
    first = add_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = add_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert [k["id"] for k in document["keys"]] == [first.key_id, second.key_id]
    assert all(set(k) == {"id", "key", "created_at"} for k in document["keys"])
    assert base64.urlsafe_b64decode(document["keys"][1]["key"] + "=") == second.key
    assert Keyring.from_file(path).primary == second


def test_removing_a_key_never_removes_the_primary(tmp_path: Path) -> None:
    path = tmp_path / "master-keys.json"
    first, second = add_master_key(path), add_master_key(path)
    with pytest.raises(KeyringError, match="primary"):
        remove_master_key(path, second.key_id)
    with pytest.raises(UnknownKeyError):
        remove_master_key(path, "nope")
    remove_master_key(path, first.key_id)
    assert read_key_file(path) == [second]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_from_settings_without_keys_says_what_to_set(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(KeyringError, match="HUB_MASTER_KEYS"):
        Keyring.from_settings(settings)
    assert not (tmp_path / "master-keys.json").exists()
    created = Keyring.from_settings(settings, create=True)
    assert Keyring.from_settings(settings).primary == created.primary
    assert stat.S_IMODE((tmp_path / "master-keys.json").stat().st_mode) == 0o600


def test_hub_master_keys_wins_over_the_key_file(tmp_path: Path) -> None:
    add_master_key(tmp_path / "master-keys.json")
    settings = Settings(
        home=tmp_path, master_keys=SecretStr(f"{format_master_key(K1)},{format_master_key(K2)}")
    )
    keyring = Keyring.from_settings(settings, create=True)
    assert keyring.key_ids == ["k1", "k2"] and keyring.primary.key_id == "k2"


def test_a_malformed_key_file_is_a_keyring_error(tmp_path: Path) -> None:
    path = tmp_path / "master-keys.json"
    for content in ["not json", '{"nokeys": []}', '{"keys": [{"id": "k"}]}', '{"keys": 3}']:
        path.write_text(content)
        with pytest.raises(KeyringError):
            Keyring.from_file(path)
