"""The shared parts of fuzz.deliveries: what a spec says, what a builder is given."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel

import providers
from providers.spec import Delivery, Webhooks

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# The one address every test and load run calls from: M-Pesa's allow-list admits it.
REMOTE_ADDR = "127.0.0.1"
# Beyond every provider's replay window (PayPal's ten minutes is the widest).
OUTSIDE_EVERY_WINDOW = 15 * 60


@dataclass(frozen=True)
class Signed:
    """One delivery and the account it is signed for (the ingress's key)."""

    provider: str
    delivery: Delivery
    secret: str
    account: BaseModel
    marker: str  # unique text inside the body (or query): finds it on the raw topic


@dataclass(frozen=True)
class Build:
    """What a builder is given: the account, the route's URL, a unique marker, the time."""

    account: BaseModel
    secret: str
    url: str  # http://host/webhooks/<provider>/<tenant>, no query
    marker: str
    at: float  # unix seconds the provider signs at


@dataclass(frozen=True)
class Spec:
    build: Callable[[Build], Delivery]
    # Where the proof travels: these headers and query parameters (garbled by the tests).
    proof_headers: tuple[str, ...] = ()
    proof_query: tuple[str, ...] = ()
    # What the proof covers, from a delivery; None: the body is not covered at all
    # (a token in the URL, Flutterwave's echoed hash). A tampered delivery whose
    # covered value is unchanged may verify; one whose value changed must not.
    covers: Callable[[Delivery], object] | None = None
    # The replay window in seconds; None: the provider signs no time.
    window: float | None = None
    # Hex digests compared case-insensitively (Razorpay, Meta): an upper-cased one is
    # the same proof, not a forgery.
    case_insensitive: bool = False
    # Proof headers compared as the bytes their base64 spells (SendGrid's, PayPal's
    # signatures): another spelling of the same bytes is the same proof.
    base64_headers: tuple[str, ...] = ()
    # Proof headers holding a URL (PayPal's certificate's): one in another spelling
    # (an upper-case scheme) is the same URL.
    url_headers: tuple[str, ...] = ()
    # The proof header is itself a comma list (Stripe's t=..,v1=..): a folded duplicate
    # of the same value is the same proof.
    comma_list: bool = False
    # The account another secret is put into (PayPal's is its webhook id, SendGrid's a
    # public key): (secret, account) for a wrong secret drawn as text.
    wrong: Callable[[BaseModel, str, str], tuple[str, BaseModel]] | None = None
    notes: str = ""


def make_delivery(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str] | None = None,
    method: str = "POST",
) -> Delivery:
    query = dict(query or {})
    full = f"{url}?{urlencode(query)}" if query else url
    lowered = {k.lower(): v for k, v in headers.items()}
    return Delivery(method, full, query, lowered, body, REMOTE_ADDR)


def as_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def raw_body(d: Delivery) -> bytes:
    return d.body


def decoded(text: str) -> object:
    # Base64 text has spellings of the same bytes (the unused low bits of its last
    # character): the checksum is its bytes.
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        return text


def webhooks(provider: str) -> Webhooks:
    declared = providers.get(provider).webhooks
    if declared is None:
        raise ValueError(f"{provider} declares no webhooks")
    return declared
