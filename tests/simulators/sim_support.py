"""Helpers shared by the simulator tests (auth headers, signed JWTs, a fake webhook receiver)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import tomllib
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tenant_accounts import primary

from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.tenants import Tenant, TenantDirectory
from providers.fcm import FcmAccount
from providers.google_auth import GoogleServiceAccount
from providers.gworkspace import GoogleWorkspaceAccount
from providers.mobileapp import MobileAppAccount
from providers.razorpay import RazorpayAccount
from providers.sendgrid import SendGridAccount
from providers.smsgateway import SmsGatewayAccount
from providers.twilio import TwilioAccount

WEBHOOK_TEMPLATE = "http://ingress.test/webhooks/{provider}/{tenant}"


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
    account = primary(t, RazorpayAccount)
    return basic(account.key_id, account.key_secret.get_secret_value())


def twilio_auth(t: Tenant) -> dict[str, str]:
    account = primary(t, TwilioAccount)
    return basic(account.account_sid, account.auth_token.get_secret_value())


def twilio_path(t: Tenant) -> str:
    return f"/twilio/2010-04-01/Accounts/{primary(t, TwilioAccount).account_sid}/Messages.json"


def sendgrid_auth(t: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {primary(t, SendGridAccount).api_key.get_secret_value()}"}


def razorpay_signature(body: bytes, t: Tenant) -> str:
    secret = primary(t, RazorpayAccount).webhook_secret.get_secret_value().encode()
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


# --- Google service accounts, the mobile app backend, the SMS gateway ------------

TOKEN_URL = "http://sim/google/oauth2/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def google_claims(
    account: GoogleServiceAccount, scope: str, /, *, now: float | None = None, **overrides: Any
) -> dict[str, Any]:
    """Service-account claims as Google wants them; `overrides` replace or add (None drops)."""
    iat = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": account.client_email,
        "scope": scope,
        "aud": TOKEN_URL,
        "iat": iat,
        "exp": iat + 3600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign_jwt(
    claims: dict[str, Any], pem: str, *, kid: str | None = None, alg: str = "RS256"
) -> str:
    """A compact RS256 JWT signed with `pem` (`alg` only changes the header)."""
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def account_jwt(account: GoogleServiceAccount, claims: dict[str, Any]) -> str:
    return sign_jwt(claims, account.private_key.get_secret_value(), kid=account.private_key_id)


async def token_response(
    client: httpx.AsyncClient, assertion: str, grant_type: str = JWT_BEARER
) -> httpx.Response:
    data = {"grant_type": grant_type, "assertion": assertion}
    return await client.post("/google/oauth2/token", data=data)


async def google_token(
    client: httpx.AsyncClient, account: GoogleServiceAccount, scope: str, **claims: Any
) -> str:
    """A real access token from the simulated token endpoint."""
    response = await token_response(
        client, account_jwt(account, google_claims(account, scope, **claims))
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def directory_token(
    client: httpx.AsyncClient, t: Tenant, scope: str = DIRECTORY_SCOPE
) -> str:
    account = primary(t, GoogleWorkspaceAccount)
    return await google_token(client, account, scope, sub=account.admin_email)


async def fcm_token(client: httpx.AsyncClient, t: Tenant, scope: str = FCM_SCOPE) -> str:
    return await google_token(client, primary(t, FcmAccount), scope)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mobileapp_auth(t: Tenant) -> dict[str, str]:
    return bearer(primary(t, MobileAppAccount).api_key.get_secret_value())


def smsgateway_auth(t: Tenant) -> dict[str, str]:
    return {"authkey": primary(t, SmsGatewayAccount).api_key.get_secret_value()}


def school_domain(t: Tenant) -> str:
    return primary(t, GoogleWorkspaceAccount).admin_email.partition("@")[2]
