"""A validly signed delivery of every provider with webhooks, as the ingress receives it.

Each provider signs its callbacks its own way (a header HMAC, a timestamped one, a
certificate, a token in the URL, a checksum inside a form); `SPECS` says, for each,
how to build a delivery it would send, where its proof travels (what a forger would
garble) and what the proof covers (what tampering must break it). A provider with
webhooks and no spec fails tests/fuzz/: a new provider cannot go unfuzzed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, SecretStr

from core.tenants import Tenant
from fuzz.signing import (
    FORM,
    JSON,
    OUTSIDE_EVERY_WINDOW,
    REMOTE_ADDR,
    Build,
    Signed,
    Spec,
    as_json,
    decoded,
    make_delivery,
    raw_body,
    webhooks,
)
from providers import cashfree_webhooks, mailgun_receipts, paypal_webhooks, stripe_webhooks
from providers.paytm_checksum import CHECKSUM_FIELD as CHECKSUM
from providers.paytm_webhooks import signed_form
from providers.sendgrid_events import event_webhook_keypair, sign_events
from providers.spec import Delivery
from providers.twilio_status import SIGNATURE_HEADER as TWILIO_SIGNATURE
from providers.twilio_status import signature as twilio_signature

# --- header HMACs -------------------------------------------------------------------


def _razorpay(b: Build) -> Delivery:
    body = as_json({"entity": "event", "event": "fuzz.ping", "fuzz": b.marker, "payload": {}})
    verifier = webhooks("razorpay").verifier
    headers = {"content-type": JSON, "x-razorpay-event-id": f"evt_{b.marker}"}
    return make_delivery(b.url, body, headers | verifier.signed_headers(body, b.secret))


def _whatsapp(b: Build) -> Delivery:
    body = as_json({"object": "whatsapp_business_account", "entry": [], "fuzz": b.marker})
    verifier = webhooks("whatsapp").verifier
    return make_delivery(
        b.url, body, {"content-type": JSON} | verifier.signed_headers(body, b.secret)
    )


def _flutterwave(b: Build) -> Delivery:
    body = as_json({"event": "fuzz.ping", "data": {"id": b.marker}})
    return make_delivery(b.url, body, {"content-type": JSON, "verif-hash": b.secret})


def _stripe(b: Build) -> Delivery:
    body = as_json({"id": f"evt_{b.marker}", "object": "event", "type": "fuzz.ping", "data": {}})
    stamp = str(int(b.at))
    digest = stripe_webhooks.StripeVerifier().sign(stamp.encode() + b"." + body, b.secret)
    signature = f"t={stamp},{stripe_webhooks.SCHEME}={digest}"
    return make_delivery(b.url, body, {"content-type": JSON, "stripe-signature": signature})


def _cashfree(b: Build) -> Delivery:
    body = as_json({"type": "FUZZ_PING", "data": {"fuzz": b.marker}})
    stamp = str(int(b.at * 1000))
    signature = cashfree_webhooks.CashfreeVerifier().sign(stamp.encode() + body, b.secret)
    headers = {
        "content-type": JSON,
        "x-webhook-timestamp": stamp,
        "x-webhook-signature": signature,
    }
    return make_delivery(b.url, body, headers)


def _mailgun(b: Build) -> Delivery:
    block = mailgun_receipts.signature_block(b.secret, f"tok{b.marker}", int(b.at))
    body = as_json({"signature": block, "event-data": {"id": b.marker, "event": "fuzz"}})
    return make_delivery(b.url, body, {"content-type": JSON})


def _mailgun_covers(d: Delivery) -> object:
    try:
        parsed = json.loads(d.body)
    except ValueError:
        return d.body
    block = parsed.get("signature") if isinstance(parsed, dict) else parsed
    if not isinstance(block, dict):
        return block
    # A hex signature is one whatever its letters' case (the verifier lower-cases it).
    signature = block.get("signature")
    if isinstance(signature, str):
        block = {**block, "signature": signature.strip().lower()}
    return block


# --- keys and certificates ----------------------------------------------------------


def _sendgrid_key(account: BaseModel) -> str:
    api_key = getattr(account, "api_key", None)
    # The demo and simulated accounts' key pair is derived from the API key.
    return api_key.get_secret_value() if isinstance(api_key, SecretStr) else ""


def _sendgrid(b: Build) -> Delivery:
    body = as_json([{"event": "fuzz", "sg_event_id": b.marker, "timestamp": int(b.at)}])
    keys = event_webhook_keypair(_sendgrid_key(b.account))
    headers = {"content-type": JSON, **sign_events(body, keys.private_key, int(b.at))}
    return make_delivery(b.url, body, headers)


def _sendgrid_wrong(account: BaseModel, secret: str, other: str) -> tuple[str, BaseModel]:
    return event_webhook_keypair(f"other:{other}").public_key, account


@dataclass
class PayPalSigner:
    """A certificate and its key standing in for PayPal's (the far side of its API)."""

    cert_url: str = "https://api.paypal.com/v1/notifications/certs/CERT-fuzz-0001"
    fetched: list[str] = field(default_factory=list)

    def fetch(self, url: str) -> bytes | None:
        """What a CertificateStore fetches: this certificate at its URL, nothing elsewhere."""
        self.fetched.append(url)
        return _identity().certificate_pem if url == self.cert_url else None


@cache
def _identity() -> Any:
    # simulators.paypal_webhooks.SigningIdentity; imported here so that code which
    # never builds a PayPal delivery does not generate an RSA key.
    from simulators.paypal_webhooks import identity  # noqa: PLC0415

    return identity()


SIGNER = PayPalSigner()


def _paypal(b: Build) -> Delivery:
    body = as_json({"id": f"WH-{b.marker}", "event_type": "FUZZ.PING", "resource": {}})
    transmission_id = str(uuid.uuid4())
    sent = datetime.fromtimestamp(int(b.at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    webhook_id = str(getattr(b.account, "webhook_id", ""))
    message = paypal_webhooks.signed_message(transmission_id, sent, webhook_id, body)
    headers = {
        "content-type": JSON,
        "paypal-transmission-id": transmission_id,
        "paypal-transmission-time": sent,
        "paypal-transmission-sig": _identity().sign(message),
        "paypal-cert-url": SIGNER.cert_url,
        "paypal-auth-algo": paypal_webhooks.AUTH_ALGO,
    }
    return make_delivery(b.url, body, headers)


def _paypal_wrong(account: BaseModel, secret: str, other: str) -> tuple[str, BaseModel]:
    return secret, account.model_copy(update={"webhook_id": f"WH{other}"})


# --- URL signatures, tokens and checksums ---------------------------------------------


def _twilio(b: Build) -> Delivery:
    pairs = [
        ("MessageSid", f"SM{b.marker}"),
        ("MessageStatus", "fuzz"),
        ("AccountSid", str(getattr(b.account, "account_sid", ""))),
    ]
    body = urlencode(pairs).encode()
    headers = {"content-type": FORM, TWILIO_SIGNATURE: twilio_signature(b.url, pairs, b.secret)}
    return make_delivery(b.url, body, headers)


def _twilio_covers(d: Delivery) -> object:
    try:
        pairs = parse_qsl(d.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return d.body
    # What Twilio signs: the URL, then each name once in code-point order followed by
    # each of its distinct values, all run together. Without separators a form can be
    # rewritten and still spell the same text ("Status=sent" as "Status&sent"): the
    # scheme's own ambiguity (twilio-python's RequestValidator has it too).
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    return d.url + "".join(n + v for n in sorted(values) for v in sorted(values[n]))


def _paytm(b: Build) -> Delivery:
    fields = {
        "MID": str(getattr(b.account, "mid", "")),
        "ORDERID": f"ORD{b.marker}",
        "TXNID": f"TXN{b.marker}",
        "STATUS": "PENDING",
        "TXNAMOUNT": "1.00",
    }
    return make_delivery(b.url, signed_form(fields, b.secret), {"content-type": FORM})


def _paytm_covers(d: Delivery) -> object:
    try:
        fields = dict(parse_qsl(d.body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return d.body
    # Paytm's checksum covers the values in the order of their sorted keys, not the
    # keys themselves (its own checksum library does the same), and "null" as "".
    values = [v if v.lower() != "null" else "" for k, v in sorted(fields.items()) if k != CHECKSUM]
    return fields.get("MID"), values, decoded(fields.get(CHECKSUM, ""))


def _tokenas_json(kind: str | None = None) -> Callable[[Build], Delivery]:
    def build(b: Build) -> Delivery:
        query = {"token": b.secret, **({"kind": kind} if kind else {})}
        body = as_json({"requestId": b.marker, "number": "919800000000", "status": "fuzz"})
        return make_delivery(b.url, body, {"content-type": JSON}, query)

    return build


def _africastalking(b: Build) -> Delivery:
    body = urlencode({"id": b.marker, "phoneNumber": "+254700000000"}).encode()
    return make_delivery(b.url, body, {"content-type": FORM}, {"token": b.secret})


def _pesapal(b: Build) -> Delivery:
    query = {
        "token": b.secret,
        "OrderTrackingId": b.marker,
        "OrderMerchantReference": "fuzz",
        "OrderNotificationType": "CALLBACKURL",  # not an IPNCHANGE: the hub asks nothing
    }
    return make_delivery(b.url, b"", {}, query, method="GET")


SPECS: Mapping[str, Spec] = {
    "razorpay": Spec(_razorpay, ("x-razorpay-signature",), covers=raw_body, case_insensitive=True),
    "whatsapp": Spec(_whatsapp, ("x-hub-signature-256",), covers=raw_body, case_insensitive=True),
    "flutterwave": Spec(_flutterwave, ("verif-hash",), notes="the hash is echoed: no body bound"),
    "stripe": Spec(
        _stripe,
        ("stripe-signature",),
        covers=raw_body,
        window=stripe_webhooks.TOLERANCE_SECONDS,
        comma_list=True,
    ),
    "cashfree": Spec(
        _cashfree,
        ("x-webhook-signature", "x-webhook-timestamp"),
        covers=raw_body,
        window=cashfree_webhooks.TIMESTAMP_TOLERANCE_MS / 1000,
    ),
    "mailgun": Spec(
        _mailgun,
        covers=_mailgun_covers,
        window=mailgun_receipts.TOLERANCE_SECONDS,
        notes="signs timestamp + token inside the body, not the event data",
    ),
    "sendgrid": Spec(
        _sendgrid,
        ("x-twilio-email-event-webhook-signature", "x-twilio-email-event-webhook-timestamp"),
        covers=raw_body,
        base64_headers=("x-twilio-email-event-webhook-signature",),
        # SendGrid signs its timestamp and documents no window; five minutes, as
        # Stripe, Cashfree and Mailgun (the verifier checks none: see tests/fuzz/).
        window=300,
        wrong=_sendgrid_wrong,
    ),
    "paypal": Spec(
        _paypal,
        (
            "paypal-transmission-sig",
            "paypal-transmission-id",
            "paypal-transmission-time",
            "paypal-cert-url",
            "paypal-auth-algo",
        ),
        covers=raw_body,
        base64_headers=("paypal-transmission-sig",),
        url_headers=("paypal-cert-url",),
        window=paypal_webhooks.TRANSMISSION_TOLERANCE_SECONDS,
        wrong=_paypal_wrong,
    ),
    "twilio": Spec(
        _twilio,
        (TWILIO_SIGNATURE,),
        covers=_twilio_covers,
        notes="URL + names and values run together: separators are not signed",
    ),
    "paytm": Spec(
        _paytm, covers=_paytm_covers, notes="CHECKSUMHASH inside the form, over its values"
    ),
    "mpesa": Spec(_tokenas_json("validation"), proof_query=("token",), notes="token + source"),
    "msg91": Spec(_tokenas_json(), proof_query=("token",), notes="token in the URL"),
    "africastalking": Spec(_africastalking, proof_query=("token",), notes="token in the URL"),
    "pesapal": Spec(_pesapal, proof_query=("token",), notes="token in the URL"),
}


def secret_of(provider: str, account: BaseModel) -> str:
    value = getattr(account, webhooks(provider).secret_field, None)
    return value.get_secret_value() if isinstance(value, SecretStr) else ""


def route(base_url: str, provider: str, tenant: str) -> str:
    return f"{base_url.rstrip('/')}/webhooks/{provider}/{tenant}"


def signed(
    provider: str,
    tenant: Tenant,
    base_url: str,
    *,
    marker: str | None = None,
    at: float | None = None,
) -> Signed:
    """A delivery `provider` would send to `tenant`'s route, signed at `at` (default now)."""
    spec = SPECS.get(provider)
    if spec is None:
        raise LookupError(f"no way to build a valid {provider} delivery: add it to fuzz.SPECS")
    account = tenant.accounts_for(provider)[0].config
    secret = secret_of(provider, account)
    marker = marker or uuid.uuid4().hex
    build = Build(
        account,
        secret,
        route(base_url, provider, tenant.id),
        marker,
        time.time() if at is None else at,
    )
    return Signed(provider, spec.build(build), secret, account, marker)


def verifies(provider: str, delivery: Delivery, secret: str, account: BaseModel) -> bool:
    """The verifier's verdict, asked the way the ingress asks (the whole delivery if it can)."""
    verifier = webhooks(provider).verifier
    whole = getattr(verifier, "verify_delivery", None)
    if whole is not None:
        return bool(whole(delivery, secret, account))
    return verifier.verify(delivery.body, delivery.headers, secret)


def paypal_certificates() -> paypal_webhooks.CertificateStore:
    """A certificate store that finds SIGNER's certificate (PayPal's servers are not
    reachable from tests): put it into the PayPal verifier as its `certificates`."""
    return paypal_webhooks.CertificateStore(SIGNER.fetch)


__all__ = [
    "FORM",
    "JSON",
    "OUTSIDE_EVERY_WINDOW",
    "REMOTE_ADDR",
    "SIGNER",
    "SPECS",
    "Build",
    "PayPalSigner",
    "Signed",
    "Spec",
    "decoded",
    "paypal_certificates",
    "route",
    "secret_of",
    "signed",
    "verifies",
    "webhooks",
]
