"""Paytm's "checksum": the signature of every API request and of the payment callback.

The algorithm of Paytm's own `paytmchecksum` utility (PaytmChecksum.py), with the
`cryptography` package instead of pycryptodome:

1. the text signed is a JSON body as sent, or a form's values in sorted-key order
   (None and "null", in any case, become "") joined with "|";
2. a random 4-character salt from [A-Za-z0-9];
3. hash = sha256_hex(text + "|" + salt) + salt (68 characters);
4. checksum = base64(AES-CBC(key = the merchant key, IV = "@@@@&&&&####$$$$", PKCS#7)(hash)).

Verifying decrypts, takes the salt from the last 4 characters and recomputes. There
is no timestamp in it, so a checksum never expires: no replay window is possible.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# Paytm's fixed initialisation vector: the same in every Paytm checksum kit.
IV = b"@@@@&&&&####$$$$"
SALT_LENGTH = 4
SALT_CHARS = string.ascii_letters + string.digits
# The form field carrying the checksum in a callback; never part of what is signed.
CHECKSUM_FIELD = "CHECKSUMHASH"
AES_KEY_SIZES = frozenset({16, 24, 32})  # Paytm issues 16-character keys (AES-128)

Params = str | Mapping[str, str | None]


def params_text(params: Params) -> str:
    """The text a checksum covers: a string as is, a form's values sorted by key."""
    if isinstance(params, str):
        return params
    values = []
    for key in sorted(k for k in params if k != CHECKSUM_FIELD):
        value = params[key]
        values.append("" if value is None or value.lower() == "null" else value)
    return "|".join(values)


def _salted_hash(text: str, salt: str) -> str:
    return hashlib.sha256(f"{text}|{salt}".encode()).hexdigest() + salt


def _cipher(key: str) -> Cipher[modes.CBC]:
    raw = key.encode()
    if len(raw) not in AES_KEY_SIZES:
        raise ValueError("a Paytm merchant key is 16 characters long")
    return Cipher(algorithms.AES(raw), modes.CBC(IV))


def _encrypt(plain: str, key: str) -> str:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain.encode()) + padder.finalize()
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


def _decrypt(checksum: str, key: str) -> str | None:
    """The hash a checksum encrypts, or None when it is no checksum made with `key`."""
    try:
        data = base64.b64decode(checksum, validate=True)
        decryptor = _cipher(key).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        # ValueError: not whole blocks, bad padding (a wrong key), a key of the wrong size.
        return None


def generate_signature(params: Params, key: str, salt: str | None = None) -> str:
    """Paytm's checksum of `params` (`salt` fixed only by tests with a known vector)."""
    if salt is None:
        salt = "".join(secrets.choice(SALT_CHARS) for _ in range(SALT_LENGTH))
    return _encrypt(_salted_hash(params_text(params), salt), key)


def verify_signature(params: Params, key: str, checksum: str) -> bool:
    decrypted = _decrypt(checksum.strip(), key)
    if decrypted is None or len(decrypted) != 64 + SALT_LENGTH:
        return False
    expected = _salted_hash(params_text(params), decrypted[-SALT_LENGTH:])
    return hmac.compare_digest(expected.encode(), decrypted.encode())
