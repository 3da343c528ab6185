"""Per-tenant provider credentials, from a TOML file or the environment.

A tenant is one school (one customer of the hub). Secrets are `SecretStr`, so
their `repr` is masked and they never reach a log line by accident.
"""

from __future__ import annotations

import json
import secrets
import tomllib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, SecretStr

from core.settings import Settings


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RazorpayAccount(_Model):
    key_id: str
    key_secret: SecretStr
    webhook_secret: SecretStr


class TwilioAccount(_Model):
    account_sid: str
    auth_token: SecretStr
    from_number: str


class SendGridAccount(_Model):
    api_key: SecretStr
    from_email: str
    from_name: str = ""


class GoogleServiceAccount(_Model):
    """A Google Cloud service account: the hub signs a JWT with its key to get an access token."""

    client_email: str
    private_key: SecretStr  # PEM, RSA
    private_key_id: str = ""


class GoogleWorkspaceAccount(GoogleServiceAccount):
    # Domain-wide delegation: the admin the service account acts for.
    admin_email: str


class FcmAccount(GoogleServiceAccount):
    project_id: str


class ApiKeyAccount(_Model):
    api_key: SecretStr


class Tenant(_Model):
    id: str
    name: str = ""
    razorpay: RazorpayAccount | None = None
    twilio: TwilioAccount | None = None
    sendgrid: SendGridAccount | None = None
    gworkspace: GoogleWorkspaceAccount | None = None
    fcm: FcmAccount | None = None
    mobileapp: ApiKeyAccount | None = None  # the school's own mobile app backend
    smsgateway: ApiKeyAccount | None = None  # the SMS gateway's contact book

    def webhook_secret(self, provider: str) -> SecretStr | None:
        account = getattr(self, provider, None)
        secret = getattr(account, "webhook_secret", None)
        return secret if isinstance(secret, SecretStr) else None


class TenantDirectory:
    def __init__(self, tenants: dict[str, Tenant]) -> None:
        self._tenants = tenants

    def get(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def __contains__(self, tenant_id: object) -> bool:
        return tenant_id in self._tenants

    def __len__(self) -> int:
        return len(self._tenants)

    def ids(self) -> list[str]:
        return sorted(self._tenants)

    def by_razorpay_key(self, key_id: str) -> Tenant | None:
        return next(
            (t for t in self._tenants.values() if t.razorpay and t.razorpay.key_id == key_id), None
        )


class TenantConfigError(ValueError):
    pass


def parse_tenants(raw: dict[str, Any]) -> TenantDirectory:
    table = raw.get("tenants", raw)
    if not isinstance(table, dict):
        raise TenantConfigError("tenant config must map tenant ids to their settings")
    try:
        tenants = {tid: Tenant(id=tid, **body) for tid, body in table.items()}
    except (TypeError, ValueError) as exc:
        raise TenantConfigError(f"invalid tenant config: {exc}") from exc
    return TenantDirectory(tenants)


def load_tenants(settings: Settings) -> TenantDirectory:
    if settings.tenants:
        return parse_tenants(json.loads(settings.tenants))
    if settings.tenants_file:
        path = settings.tenants_file.expanduser()
        if not path.exists():
            raise TenantConfigError(f"HUB_TENANTS_FILE={path} does not exist")
        return parse_tenants(tomllib.loads(path.read_text()))
    return TenantDirectory({})


def new_rsa_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def demo_tenant_config(tenant_id: str = "greenwood", name: str = "Greenwood High School") -> str:
    """A TOML tenant file with freshly generated secrets, for local runs and tests.

    The secrets are random per machine (never committed); they only ever meet
    the local provider simulators.
    """

    def token(n: int = 24) -> str:
        return secrets.token_hex(n)

    return f"""[tenants.{tenant_id}]
name = "{name}"

[tenants.{tenant_id}.razorpay]
key_id = "rzp_test_{secrets.token_hex(7)}"
key_secret = "{token()}"
webhook_secret = "{token()}"

[tenants.{tenant_id}.twilio]
account_sid = "AC{secrets.token_hex(16)}"
auth_token = "{token(16)}"
from_number = "+15005550006"

[tenants.{tenant_id}.sendgrid]
api_key = "SG.{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(32)}"
from_email = "fees@{tenant_id}.school.example"
from_name = "{name}"

[tenants.{tenant_id}.gworkspace]
client_email = "hub-sync@{tenant_id}-erp.iam.gserviceaccount.com"
private_key_id = "{secrets.token_hex(20)}"
private_key = '''{new_rsa_key_pem()}'''
admin_email = "it-admin@{tenant_id}.school.example"

[tenants.{tenant_id}.fcm]
client_email = "hub-push@{tenant_id}-app.iam.gserviceaccount.com"
private_key_id = "{secrets.token_hex(20)}"
private_key = '''{new_rsa_key_pem()}'''
project_id = "{tenant_id}-parent-app"

[tenants.{tenant_id}.mobileapp]
api_key = "{token(24)}"

[tenants.{tenant_id}.smsgateway]
api_key = "{token(16)}"
"""


# Bumped whenever the demo tenants gain accounts: an older generated file is
# rewritten (it holds nothing but random secrets for the local simulators).
DEMO_MARKER = "# generated by `hub run` for the local simulators, demo tenants v2"


def ensure_demo_tenants(path: Path) -> Path:
    """The hub's own demo file ($HUB_HOME/tenants.toml; your tenants go in HUB_TENANTS_FILE)."""
    current = path.read_text() if path.exists() else ""
    if not current.startswith(DEMO_MARKER):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{DEMO_MARKER}\n{demo_tenant_config()}")
        path.chmod(0o600)
    return path
