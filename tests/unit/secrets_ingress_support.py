"""Webhook deliveries for the secrets-nowhere ingress tests (unit and on the broker): bodies
that quote the tenant's secrets, signed right, signed wrong, unsigned."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import orjson
from secrets_support import CANARY_TENANT, Found, RecordingSink, rendered_logs

import providers
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from webhook_ingress.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; httpx (the project's) still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

WEBHOOK_PROVIDERS = list(providers.with_webhooks())
# Whose deliveries a test cannot sign from the body and the secret alone (so none of the
# tries gets past the ingress's checks to the persist path); the rest must.
UNSIGNABLE = {
    "mailgun": "the signature is inside the JSON body (signature.token/timestamp)",
    "mpesa": "the source address must be on the account's allow-list",
    "paypal": "PayPal signs with its own private key",
    "paytm": "the CHECKSUMHASH is a field of the form body",
    "sendgrid": "an ECDSA signature; the canary is no public key",
    "twilio": "the signature covers the URL with its query",
}


def webhook_secret(tenant: Tenant, provider: str) -> str:
    declared = providers.get(provider).webhooks
    assert declared is not None
    account = tenant.accounts_for(provider)[0]
    value = getattr(account.config, declared.secret_field)
    return str(value.get_secret_value())


def quoting_body(tenant: Tenant, provider: str, body_format: str) -> bytes:
    """A delivery body that quotes every secret of the provider's account, as a confused
    sender (or an attacker probing for reflection) would."""
    account = tenant.accounts_for(provider)[0]
    values = [
        v.get_secret_value()
        for v in vars(account.config).values()
        if hasattr(v, "get_secret_value")
    ]
    user = next((v for v in vars(account.config).values() if isinstance(v, str) and v), "api")
    fields: dict[str, Any] = {
        "event": "payment.captured",
        "note": " ".join(f"key={v}" for v in values),
        "auth": "Basic " + base64.b64encode(f"{user}:{values[0]}".encode()).decode(),
        "payload": {"echo": values},
    }
    if body_format == "json":
        return orjson.dumps(fields)
    flat = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in fields.items()}
    return urlencode(flat).encode()


def deliveries(tenant: Tenant, provider: str) -> Iterator[tuple[str, bytes, dict[str, str], str]]:
    """(name, body, headers, query) of each delivery to try."""
    declared = providers.get(provider).webhooks
    assert declared is not None
    body_format = declared.body_format
    body = quoting_body(tenant, provider, body_format)
    secret = webhook_secret(tenant, provider)
    content_type = {
        "json": "application/json",
        "form": "application/x-www-form-urlencoded",
        "query": "application/json",
    }[body_format]
    base = {"content-type": content_type}
    # M-Pesa's token travels in the query; every provider gets it there once.
    token = urlencode({"token": secret, "hub.verify_token": secret})
    try:
        signed = {**base, **declared.verifier.signed_headers(body, secret)}
    except NotImplementedError:  # PayPal signs with its own private key: no one else can
        signed = base
    yield "signed", body, signed, token
    header = declared.verifier.signature_header or "x-signature"
    yield "secret-as-signature", body, {**base, header: secret}, ""
    yield "unsigned", body, base, ""
    yield "basic-auth", body, {**base, "authorization": f"Basic {secret}"}, f"key={secret}"


def run_deliveries(
    settings: Settings, tenants: TenantDirectory, provider: str
) -> tuple[list[int], list[Found]]:
    """Every delivery through the ingress app (its lifespan: a producer), every method the
    provider calls with; the statuses, and what the deliveries left: the answers, the log
    lines (rendered), the audit records."""
    tenant = tenants.get(CANARY_TENANT)
    assert tenant is not None
    declared = providers.get(provider).webhooks
    assert declared is not None
    sink = RecordingSink()
    statuses: list[int] = []
    texts: list[Found] = []
    app = create_app(settings, tenants, audit=sink)
    with rendered_logs() as logs, TestClient(app) as client:
        for _name, body, headers, query in deliveries(tenant, provider):
            url = f"/webhooks/{provider}/{CANARY_TENANT}" + (f"?{query}" if query else "")
            for method in declared.methods:
                answer = client.request(method, url, content=body, headers=headers)
                statuses.append(answer.status_code)
                texts += [("answer", answer.text), ("answer", str(answer.headers))]
    assert len(sink.entries) == len(statuses)  # every delivery answered is audited
    assert '"event": "webhook.' in logs.getvalue(), "the capture saw no ingress log line"
    return statuses, [*texts, ("log", logs.getvalue()), *sink.texts()]
