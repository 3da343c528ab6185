"""Tenant files (TOML): what `hub tenants import FILE` reads, and the demo tenants.

The format names each account by its label:

    [tenants.greenwood]
    name = "Greenwood High School"

    [tenants.greenwood.accounts.twilio-primary]
    provider = "twilio"
    account_sid = "AC…"
    auth_token = "…"
    from_number = "+15005550006"

    [tenants.greenwood.routing]
    sms = ["twilio-primary", "twilio-backup"]

The older format, one table per provider (`[tenants.greenwood.twilio]`), is
read too: its account becomes `<provider>-primary`.
"""

from __future__ import annotations

import secrets
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

import providers
from core.tenants import ProviderAccount, Tenant, TenantDirectory
from providers.sendgrid_events import event_webhook_keypair

_TENANT_KEYS = frozenset({"name", "enabled", "accounts", "routing"})
_ACCOUNT_KEYS = frozenset({"provider", "priority", "enabled"})


class TenantFileError(ValueError):
    pass


def _account(tenant_id: str, label: str, body: Any, provider: str | None = None) -> ProviderAccount:
    if not isinstance(body, Mapping):
        raise TenantFileError(f"tenant {tenant_id!r}: account {label!r} must be a table")
    fields = {k: v for k, v in body.items() if k not in _ACCOUNT_KEYS}
    provider = provider or body.get("provider")
    if not isinstance(provider, str):
        raise TenantFileError(f"tenant {tenant_id!r}: account {label!r} names no provider")
    try:
        return providers.parse_account(
            provider,
            label,
            fields,
            priority=int(body.get("priority", 0)),
            enabled=bool(body.get("enabled", True)),
        )
    except (providers.AccountError, providers.UnknownProviderError) as exc:
        raise TenantFileError(f"tenant {tenant_id!r}, account {label!r}: {exc}") from None


def _tenant(tenant_id: str, body: Any) -> Tenant:
    if not isinstance(body, Mapping):
        raise TenantFileError(f"tenant {tenant_id!r} must be a table")
    accounts = [
        _account(tenant_id, label, account)
        for label, account in dict(body.get("accounts", {})).items()
    ]
    # The older format: a table named after the provider.
    accounts += [
        _account(tenant_id, f"{key}-primary", value, provider=key)
        for key, value in body.items()
        if key not in _TENANT_KEYS
    ]
    routing = {str(k): tuple(v) for k, v in dict(body.get("routing", {})).items()}
    try:
        return Tenant(
            id=tenant_id,
            name=str(body.get("name", "")),
            enabled=bool(body.get("enabled", True)),
            accounts=tuple(accounts),
            routing=routing,
        )
    except ValidationError as exc:
        raise TenantFileError(f"tenant {tenant_id!r}: {exc.errors()[0]['msg']}") from None


def parse_tenants(raw: Mapping[str, Any]) -> TenantDirectory:
    return TenantDirectory({t.id: t for t in tenants_of(raw)})


def tenants_of(raw: Mapping[str, Any]) -> list[Tenant]:
    table = raw.get("tenants", raw)
    if not isinstance(table, Mapping):
        raise TenantFileError("a tenant file maps tenant ids to their settings ([tenants.<id>])")
    return [_tenant(str(tenant_id), body) for tenant_id, body in table.items()]


def read_tenant_file(path: Path) -> list[Tenant]:
    path = path.expanduser()
    if not path.exists():
        raise TenantFileError(f"{path} does not exist")
    try:
        return tenants_of(tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise TenantFileError(f"{path} is not valid TOML: {exc}") from None


def new_rsa_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


# Safaricom's published M-Pesa callback addresses, and the local simulator's.
MPESA_DEMO_ALLOWED_IPS = ",".join(
    f"196.201.{n}/32"
    for n in (
        "214.200", "214.206", "213.114", "214.207", "214.208", "213.44",
        "212.127", "212.138", "212.129", "212.136", "212.74", "212.69",
    )
) + ",127.0.0.1/32"  # fmt: skip


def demo_tenant_config(
    tenant_id: str = "greenwood",
    name: str = "Greenwood High School",
    payment: tuple[str, ...] = ("razorpay-primary",),
) -> str:
    """A TOML tenant file with freshly generated secrets, for local runs and tests.

    The secrets are random per machine (never committed); they only ever meet
    the local provider simulators. Twilio has a backup account, as a school
    with two SMS accounts would.
    """

    def token(n: int = 24) -> str:
        return secrets.token_hex(n)

    t = tenant_id
    sendgrid_key = f"SG.{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(32)}"
    return f"""[tenants.{t}]
name = "{name}"

[tenants.{t}.accounts.razorpay-primary]
provider = "razorpay"
key_id = "rzp_test_{secrets.token_hex(7)}"
key_secret = "{token()}"
webhook_secret = "{token()}"

[tenants.{t}.accounts.cashfree-primary]
provider = "cashfree"
client_id = "CF{secrets.token_hex(10)}"
client_secret = "cfsk_ma_test_{token()}"

[tenants.{t}.accounts.flutterwave-primary]
provider = "flutterwave"
secret_key = "FLWSECK_TEST-{token(16)}-X"
secret_hash = "{token()}"
default_customer_email = "fees@{t}.school.example"
redirect_url = "https://{t}.school.example/fees/paid"

[tenants.{t}.accounts.pesapal-primary]
provider = "pesapal"
consumer_key = "{token(16)}"
consumer_secret = "{token(14)}="
ipn_id = "{uuid.uuid4()}"
ipn_token = "{token()}"
callback_url = "https://{t}.school.example/fees/paid"

[tenants.{t}.accounts.paytm-primary]
provider = "paytm"
mid = "HUB{secrets.token_hex(4).upper()}{secrets.randbelow(10**9):09d}"
merchant_key = "{secrets.token_urlsafe(12)}"
website = "WEBSTAGING"

[tenants.{t}.accounts.stripe-primary]
provider = "stripe"
secret_key = "sk_test_{token()}"
webhook_secret = "whsec_{token()}"
return_url = "https://{t}.school.example/fees/paid"

[tenants.{t}.accounts.paypal-primary]
provider = "paypal"
client_id = "AY{secrets.token_hex(20)}"
client_secret = "E{token()}"
webhook_id = "{secrets.token_hex(8).upper()}"

[tenants.{t}.accounts.mpesa-primary]
provider = "mpesa"
consumer_key = "{secrets.token_urlsafe(36)}"
consumer_secret = "{secrets.token_urlsafe(48)}"
shortcode = "{174379 + secrets.randbelow(800000)}"
passkey = "{token(32)}"
callback_token = "{token(20)}"
allowed_ips = "{MPESA_DEMO_ALLOWED_IPS}"
# The local ingress (its default address): reversal results and paybill confirmations.
hub_callback_url = "http://127.0.0.1:8080/webhooks/mpesa/{t}"
initiator_name = "hub-reversals"
security_credential = "{token(32)}"

[tenants.{t}.accounts.twilio-primary]
provider = "twilio"
account_sid = "AC{secrets.token_hex(16)}"
auth_token = "{token(16)}"
from_number = "+15005550006"

[tenants.{t}.accounts.twilio-backup]
provider = "twilio"
priority = 10
account_sid = "AC{secrets.token_hex(16)}"
auth_token = "{token(16)}"
from_number = "+15005550007"

[tenants.{t}.accounts.sendgrid-primary]
provider = "sendgrid"
api_key = "{sendgrid_key}"
from_email = "fees@{t}.school.example"
from_name = "{name}"
# Derived from the API key for the simulator to sign with; a real account pastes
# the Event Webhook's verification key from SendGrid's dashboard.
webhook_public_key = "{event_webhook_keypair(sendgrid_key).public_key}"

[tenants.{t}.accounts.mailgun-primary]
provider = "mailgun"
domain = "mg.{t}.school.example"
api_key = "{secrets.token_hex(16)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
from_email = "fees@mg.{t}.school.example"
from_name = "{name}"
webhook_signing_key = "{token(16)}"
region = "us"

[tenants.{t}.accounts.whatsapp-primary]
provider = "whatsapp"
phone_number_id = "{10**14 + secrets.randbelow(9 * 10**14)}"
access_token = "EAAG{secrets.token_urlsafe(48)}"
app_secret = "{secrets.token_hex(16)}"
verify_token = "{token(16)}"
waba_id = "{10**14 + secrets.randbelow(9 * 10**14)}"

[tenants.{t}.accounts.msg91-primary]
provider = "msg91"
authkey = "{secrets.randbelow(900000) + 100000}A{secrets.token_hex(9)}"
sender = "SCHOOL"
webhook_token = "{token(20)}"

[tenants.{t}.accounts.africastalking-primary]
provider = "africastalking"
username = "{t}-school"
api_key = "atsk_{token(32)}"
webhook_token = "{token(20)}"

[tenants.{t}.accounts.ses-primary]
provider = "ses"
access_key_id = "AKIA{secrets.token_hex(8).upper()}"
secret_access_key = "{secrets.token_urlsafe(30)}"
region = "ap-south-1"
from_email = "notices@{t}.school.example"

[tenants.{t}.accounts.smtp-primary]
provider = "smtp"
host = "smtp.{t}.school.example"
port = 587
username = "hub@{t}.school.example"
password = "{token(16)}"
from_email = "office@{t}.school.example"
# The simulators' SMTP sink speaks no TLS (a real server: keep STARTTLS on).
starttls = false

[tenants.{t}.accounts.gworkspace-primary]
provider = "gworkspace"
client_email = "hub-sync@{t}-erp.iam.gserviceaccount.com"
private_key_id = "{secrets.token_hex(20)}"
private_key = '''{new_rsa_key_pem()}'''
admin_email = "it-admin@{t}.school.example"

[tenants.{t}.accounts.fcm-primary]
provider = "fcm"
client_email = "hub-push@{t}-app.iam.gserviceaccount.com"
private_key_id = "{secrets.token_hex(20)}"
private_key = '''{new_rsa_key_pem()}'''
project_id = "{t}-parent-app"

[tenants.{t}.accounts.mobileapp-primary]
provider = "mobileapp"
api_key = "{token(24)}"

[tenants.{t}.accounts.smsgateway-primary]
provider = "smsgateway"
api_key = "{token(16)}"

[tenants.{t}.routing]
# Seed 000: Twilio first, MSG91 behind it (for its DLT templates), Twilio's second
# number last; seed 002: SendGrid with Amazon SES as the backup.
sms = ["twilio-primary", "msg91-primary", "twilio-backup"]
email = ["sendgrid-primary", "ses-primary"]
whatsapp = ["whatsapp-primary"]
payment = [{", ".join(f'"{label}"' for label in payment)}]
"""
