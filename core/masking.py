"""Masking of secrets and sensitive data, before anything is logged or audited.

Two nets, both always applied, because either alone leaks:

- by key: a value under a key that names a secret (`password`, `AuthToken`,
  `X-Api-Key`, `cvv` ...) is replaced whatever it looks like;
- by value: every secret the hub has loaded (each tenant account's SecretStr
  fields, registered by the catalog view into `MASKER`) is replaced wherever it
  appears, under any key or inside free text (an error message, a URL, an SMS body).

Card numbers (13-19 digits passing the Luhn check, spaces or dashes allowed)
keep their last four digits. E-mail addresses and phone numbers are kept: they
are the message data operators need to answer "did the parent get the SMS?".
Pure functions, except the one process-wide registry of secret values.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import orjson

MASK = "***"
# Shorter values ("1", "true", "INR") would mask ordinary data wherever it appears.
MIN_SECRET_LENGTH = 6
TRUNCATED = "…[truncated {dropped} chars]"

# A key is split into words (camelCase, snake_case, kebab-case, spaces); a key holding
# one of these words names a secret ("X-Api-Key", "AuthToken", "upi_pin").
_SENSITIVE_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "authkey",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "signature",
        "cvv",
        "cvv2",
        "cvc",
        "otp",
        "pin",
        "pan",
        "privatekey",
        "assertion",  # OAuth 2.0 JWT-bearer grants: a signed credential
    }
)
# Glued spellings the word split cannot see ("clientsecret", "x-apikey", "cardnumber").
_SENSITIVE_PARTS = (
    "password",
    "secret",
    "token",
    "apikey",
    "authkey",
    "privatekey",
    "accesskey",
    "cardnumber",
    "creditcard",
    "signature",
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# An HTTP credential quoted in free text (a provider's error echoing the request's
# headers): "Basic <base64 of user:secret>" holds a secret no value net sees.
_AUTH_CREDENTIAL = re.compile(r"(?i)\b(Basic|Bearer|Digest|Token)(\s+)([A-Za-z0-9._~+/=-]{6,})")
_PLAIN_WORD = re.compile(r"[A-Z]?[a-z]+")  # "Basic authentication failed" names no credential
_CARD = re.compile(r"(?<![A-Za-z0-9])\d(?:[ -]?\d){12,18}(?![A-Za-z0-9])")


def is_sensitive_key(key: str) -> bool:
    words = [w.lower() for w in _WORD.findall(key)]
    compact = "".join(words)
    if any(w in _SENSITIVE_WORDS for w in words):
        return True
    return any(part in compact for part in _SENSITIVE_PARTS)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match[0])
    if not 13 <= len(digits) <= 19 or not _luhn(digits):
        return match[0]
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_cards(text: str) -> str:
    """Card numbers (Luhn-valid, 13-19 digits) to their last four digits."""
    return _CARD.sub(_mask_card, text)


_Trie = dict[str, "_Trie"]
_END = ""  # a key no character can be: a value ends at this node


def _node_pattern(node: _Trie) -> str:
    """The regex of a trie node. A chain of single children is one literal run, so the
    nesting (and this recursion) grows with the branch points only, not the length of a
    value (a service account's private key is ~1700 characters)."""
    run = []
    while len(node) == 1 and _END not in node:
        ((char, node),) = node.items()
        run.append(re.escape(char))
    branches = [
        re.escape(char) + _node_pattern(child) for char, child in sorted(node.items()) if char
    ]
    if not branches:
        return "".join(run)
    alternatives = (
        "(?:" + "|".join(branches) + ")" if len(branches) > 1 or _END in node else branches[0]
    )
    # Greedy: the longer value is tried before the one that ends here (longest first).
    return "".join(run) + (alternatives + "?" if _END in node else alternatives)


def trie_pattern(values: Iterable[str]) -> str:
    """One regex matching any of `values`, the longest at each position. As a trie, not an
    alternation of every value: matching costs one branch per character, not one try per
    value, whatever the number of tenants' secrets."""
    root: _Trie = {}
    for value in values:
        node = root
        for char in value:
            node = node.setdefault(char, {})
        node[_END] = {}
    return _node_pattern(root) if root else "(?!)"  # no value: match nothing, not everywhere


def _base64_forms(value: bytes) -> set[str]:
    """Standard and URL-safe base64, padded, and their whole groups alone: what the encoding
    of any longer text that starts with the value (or holds it 3-byte aligned) contains."""
    forms = set()
    for encoded in (base64.b64encode(value).decode(), base64.urlsafe_b64encode(value).decode()):
        forms |= {encoded, encoded[: len(value) // 3 * 4]}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class Masker:
    """The secret values to mask wherever they appear. Thread-safe: the catalog view
    registers from its consumer thread while request handlers mask."""

    def __init__(self, values: Iterable[str] = (), then: Masker | None = None) -> None:
        self._then = then  # masks after this one (see `including`)
        self._lock = threading.Lock()
        self._raw: frozenset[str] = frozenset()
        self._values: frozenset[str] = frozenset()  # the raw values and their encoded forms
        self._pattern: re.Pattern[str] | None = None
        self.register(values)

    @staticmethod
    def _forms(values: Iterable[str]) -> set[str]:
        # A secret also travels URL-encoded (a form body, a query string) and base64'd.
        forms: set[str] = set()
        for value in values:
            if len(value) >= MIN_SECRET_LENGTH:
                forms |= {value, quote_plus(value), quote(value, safe="")}
                forms |= _base64_forms(value.encode())
        return forms

    def register(self, values: Iterable[str]) -> None:
        raw = {v for v in values if len(v) >= MIN_SECRET_LENGTH}
        with self._lock:
            if raw <= self._raw:
                return
            self._raw = self._raw | raw
            self._values = self._values | self._forms(raw)
            self._pattern = re.compile(trie_pattern(self._values))

    def including(self, values: Iterable[str]) -> Masker:
        """This masker if it knows `values` already, else one that masks the new ones and
        then hands over to this one: never a recompiled copy of every registered secret."""
        extra = {v for v in values if len(v) >= MIN_SECRET_LENGTH} - self._raw
        return Masker(extra, then=self) if extra else self

    def mask_text(self, text: str) -> str:
        pattern = self._pattern  # one read: register() swaps it whole
        masked = text if pattern is None else pattern.sub(MASK, text)
        return masked if self._then is None else self._then.mask_text(masked)

    def clear(self) -> None:
        with self._lock:
            self._raw = self._values = frozenset()
            self._pattern = None


# Process-wide: every loaded tenant secret, registered by the catalog view.
MASKER = Masker()


def mask_text(text: str, masker: Masker = MASKER) -> str:
    """Every registered secret value replaced by MASK, the credentials of an HTTP auth
    scheme quoted in the text too ("Basic ***"), and card numbers by their last four."""
    return mask_cards(_AUTH_CREDENTIAL.sub(_mask_credential, masker.mask_text(text)))


def _mask_credential(match: re.Match[str]) -> str:
    scheme, space, credential = match.groups()
    return match[0] if _PLAIN_WORD.fullmatch(credential) else f"{scheme}{space}{MASK}"


def mask_mapping(obj: Any, masker: Masker = MASKER) -> Any:
    """A copy of dicts and lists with sensitive keys' values masked at any depth,
    and every string masked by value and for card numbers."""
    if isinstance(obj, Mapping):
        return {
            k: MASK if v is not None and is_sensitive_key(str(k)) else mask_mapping(v, masker)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [mask_mapping(v, masker) for v in obj]
    if isinstance(obj, str):
        return mask_text(obj, masker)
    return obj


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _mask_json(text: str, masker: Masker) -> str | None:
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(mask_mapping(parsed, masker)).decode()


def _mask_form(text: str, masker: Masker) -> str:
    pairs = parse_qsl(text, keep_blank_values=True)
    masked = [(k, MASK if is_sensitive_key(k) else mask_text(v, masker)) for k, v in pairs]
    return urlencode(masked, safe="*")


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATED.format(dropped=len(text) - limit)


def mask_body(
    body: bytes | str | None, content_type: str | None, limit: int, masker: Masker = MASKER
) -> str:
    """A request or response body fit to store: masked by key (JSON, forms), by value and
    for card numbers (always), then cut to `limit` characters with a marker."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    media = _media_type(content_type)
    masked: str | None = None
    if media == "application/json" or media.endswith("+json"):
        masked = _mask_json(text, masker)
    elif media == "application/x-www-form-urlencoded":
        masked = _mask_form(text, masker)
    # The structured pass may re-encode a secret it did not recognise by key: mask by value after.
    return truncate(mask_text(text if masked is None else masked, masker), limit)


def mask_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], masker: Masker = MASKER
) -> dict[str, str]:
    """Headers with lowercase names; credentials (Authorization, Cookie, X-Api-Key,
    any *-Signature, authkey ...) masked, every value masked by value too."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    masked: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        masked[key] = MASK if is_sensitive_key(key) else mask_text(value, masker)
    return masked


def mask_url(url: str, masker: Masker = MASKER) -> str:
    """The URL without user info, its query values masked by key and by value."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = _mask_form(parts.query, masker) if parts.query else ""
    path = mask_text(parts.path, masker)
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def mask_dsn(url: str) -> str:
    """A database URL fit to show: its password (if any) masked, the rest as it is
    (mask_url would drop the user, and the `//` of an `sqlite:////path`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def mask_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: sensitive keys masked at any depth, every string value masked
    by value (a registered secret inside a message or an exception's text)."""
    for key in list(event_dict):
        value = event_dict[key]
        if is_sensitive_key(key) and value is not None:
            event_dict[key] = MASK
        elif isinstance(value, str | Mapping | list):  # not exc_info's tuple: renderers read it
            event_dict[key] = mask_mapping(value)
    return event_dict
