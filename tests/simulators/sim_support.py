"""Helpers shared by the simulator tests (auth headers, a fake webhook receiver)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import tomllib
from typing import Any

import httpx

from hub.tenants import Tenant, TenantDirectory, demo_tenant_config, parse_tenants

WEBHOOK_TEMPLATE = "http://ingress.test/webhooks/razorpay/{tenant}"


def make_tenants() -> TenantDirectory:
    raw = demo_tenant_config("t1", "School One") + "\n" + demo_tenant_config("t2", "School Two")
    return parse_tenants(tomllib.loads(raw))


def tenant(directory: TenantDirectory, tenant_id: str) -> Tenant:
    found = directory.get(tenant_id)
    assert found is not None
    return found


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def rzp_auth(t: Tenant) -> dict[str, str]:
    assert t.razorpay is not None
    return basic(t.razorpay.key_id, t.razorpay.key_secret.get_secret_value())


def twilio_auth(t: Tenant) -> dict[str, str]:
    assert t.twilio is not None
    return basic(t.twilio.account_sid, t.twilio.auth_token.get_secret_value())


def twilio_path(t: Tenant) -> str:
    assert t.twilio is not None
    return f"/twilio/2010-04-01/Accounts/{t.twilio.account_sid}/Messages.json"


def sendgrid_auth(t: Tenant) -> dict[str, str]:
    assert t.sendgrid is not None
    return {"Authorization": f"Bearer {t.sendgrid.api_key.get_secret_value()}"}


def razorpay_signature(body: bytes, t: Tenant) -> str:
    assert t.razorpay is not None
    secret = t.razorpay.webhook_secret.get_secret_value().encode()
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def mail(to: str = "parent@example.com", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personalizations": [{"to": [{"email": to, "name": "Parent"}]}],
        "from": {"email": "fees@t1.school.example", "name": "School One"},
        "subject": "Fee receipt",
        "content": [
            {"type": "text/plain", "value": "Thank you"},
            {"type": "text/html", "value": "<p>Thank you</p>"},
        ],
    }
    body.update(overrides)
    return body


class Receiver:
    """A webhook receiver behind `httpx.MockTransport`; keeps every request it got."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.status = 200
        self.refuse = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.refuse:
            raise httpx.ConnectError("connection refused", request=request)
        request.read()
        self.requests.append(request)
        return httpx.Response(self.status, json={"ok": True})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)
