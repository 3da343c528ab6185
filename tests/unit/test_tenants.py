"""core.tenants: a tenant's labelled accounts, which one is used, and the directory."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from catalog.tenant_file import parse_tenants
from core.tenants import MissingCredentialsError, ProviderAccount, Tenant, TenantDirectory
from providers.razorpay import RazorpayAccount
from providers.sendgrid import SendGridAccount
from providers.twilio import TwilioAccount

# Two Twilio accounts (the backup listed first: priority, not file order, makes the
# primary), a third one switched off, and an email account.
SCHOOL = """
[tenants.oakridge]
name = "Oakridge School"

[tenants.oakridge.accounts.twilio-backup]
provider = "twilio"
priority = 10
account_sid = "AC00000000000000000000000000000002"
auth_token = "backup-token"
from_number = "+15005550007"

[tenants.oakridge.accounts.twilio-primary]
provider = "twilio"
account_sid = "AC00000000000000000000000000000001"
auth_token = "primary-token"
from_number = "+15005550006"

[tenants.oakridge.accounts.twilio-old]
provider = "twilio"
priority = -5
enabled = false
account_sid = "AC00000000000000000000000000000000"
auth_token = "old-token"
from_number = "+15005550000"

[tenants.oakridge.accounts.sendgrid-primary]
provider = "sendgrid"
api_key = "SG.key.secret"
from_email = "fees@oakridge.school.example"

[tenants.oakridge.accounts.razorpay-primary]
provider = "razorpay"
key_id = "rzp_test_oak"
key_secret = "rzp-key-secret"
webhook_secret = "rzp-webhook-secret"

[tenants.closed]
name = "Closed School"
enabled = false

[tenants.closed.accounts.razorpay-primary]
provider = "razorpay"
key_id = "rzp_test_closed"
key_secret = "closed-key-secret"
webhook_secret = "closed-webhook-secret"
"""

DIRECTORY = parse_tenants(tomllib.loads(SCHOOL))


def oakridge() -> Tenant:
    found = DIRECTORY.get("oakridge")
    assert found is not None
    return found


def test_the_primary_is_the_enabled_account_with_the_lowest_priority() -> None:
    # twilio-old has the lowest priority of all, but it is switched off.
    assert oakridge().account("twilio", TwilioAccount).account_sid == (
        "AC00000000000000000000000000000001"
    )


def test_a_label_picks_that_account() -> None:
    backup = oakridge().account("twilio", TwilioAccount, "twilio-backup")
    assert backup.from_number == "+15005550007"
    assert backup.auth_token.get_secret_value() == "backup-token"


def test_accounts_for_lists_the_enabled_ones_primary_first() -> None:
    assert [a.label for a in oakridge().accounts_for("twilio")] == [
        "twilio-primary",
        "twilio-backup",
    ]
    assert oakridge().accounts_for("fcm") == []


@pytest.mark.parametrize(
    ("provider", "label", "message"),
    [
        pytest.param(
            "twilio",
            "twilio-old",
            "tenant 'oakridge' has no enabled account 'twilio-old'",
            id="off",
        ),
        pytest.param(
            "twilio", "nowhere", "tenant 'oakridge' has no enabled account 'nowhere'", id="unknown"
        ),
        pytest.param(
            "twilio",
            "sendgrid-primary",
            "tenant 'oakridge': account 'sendgrid-primary' is a sendgrid account, not twilio",
            id="another-providers",
        ),
        pytest.param("fcm", None, "tenant 'oakridge' has no enabled fcm account", id="none"),
    ],
)
def test_an_account_that_cannot_be_used_is_missing_credentials(
    provider: str, label: str | None, message: str
) -> None:
    with pytest.raises(MissingCredentialsError) as caught:
        oakridge().account(provider, TwilioAccount, label)
    assert str(caught.value) == message


def test_asking_for_the_wrong_account_model_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="account 'twilio-primary' is not a SendGridAccount"):
        oakridge().account("twilio", SendGridAccount)


def test_has_and_by_label() -> None:
    tenant = oakridge()
    assert tenant.has("twilio") and tenant.has("sendgrid")
    assert not tenant.has("fcm")
    old = tenant.by_label("twilio-old")
    assert old is not None and (old.provider, old.enabled, old.priority) == ("twilio", False, -5)
    assert tenant.by_label("nowhere") is None


def test_secret_values_are_every_accounts_secrets_and_nothing_else() -> None:
    assert sorted(oakridge().secret_values()) == [
        "SG.key.secret",
        "backup-token",
        "old-token",
        "primary-token",
        "rzp-key-secret",
        "rzp-webhook-secret",
    ]
    # The directory's: every tenant's, the disabled one's too (a log line may still hold them).
    assert DIRECTORY.secret_values() >= {"primary-token", "rzp-webhook-secret"}


def test_no_secret_is_in_a_repr() -> None:
    shown = repr(oakridge()) + str(oakridge().accounts)
    for secret in oakridge().secret_values():
        assert secret not in shown


def test_webhook_secrets_are_the_enabled_accounts() -> None:
    secrets = oakridge().webhook_secrets("razorpay")
    assert [s.get_secret_value() for s in secrets] == ["rzp-webhook-secret"]
    assert oakridge().webhook_secrets("twilio") == []
    assert oakridge().webhook_secret("twilio") is None


def test_a_disabled_tenant_is_not_served() -> None:
    assert "closed" not in DIRECTORY
    assert DIRECTORY.get("closed") is None
    assert DIRECTORY.ids() == ["closed", "oakridge"]  # still known (the catalog has it)
    assert len(DIRECTORY) == 2


def test_find_account_finds_the_tenant_by_an_account_field() -> None:
    found = DIRECTORY.find_account("razorpay", key_id="rzp_test_oak")
    assert found is not None
    tenant, account = found
    assert (tenant.id, account.label) == ("oakridge", "razorpay-primary")
    assert isinstance(account.config, RazorpayAccount)
    assert DIRECTORY.find_account("razorpay", key_id="rzp_test_closed") is None  # tenant off
    assert DIRECTORY.find_account("razorpay", key_id="rzp_test_nobody") is None


def test_replace_swaps_the_whole_directory() -> None:
    directory = TenantDirectory({"oakridge": oakridge()})
    directory.replace([Tenant(id="elm", name="Elm School")])
    assert directory.ids() == ["elm"]
    assert directory.get("oakridge") is None


@pytest.mark.parametrize("label", ["Twilio", "twilio primary", "-twilio", ""])
def test_labels_are_url_and_key_safe(label: str) -> None:
    config = oakridge().account("twilio", TwilioAccount)
    with pytest.raises(ValidationError):
        ProviderAccount(label=label, provider="twilio", config=config)


def test_the_older_file_format_gives_primary_accounts() -> None:
    old = parse_tenants(
        {
            "tenants": {
                "elm": {
                    "sendgrid": {"api_key": "SG.a.b", "from_email": "fees@elm.example"},
                }
            }
        }
    ).get("elm")
    assert old is not None
    assert [(a.label, a.provider, a.priority) for a in old.accounts] == [
        ("sendgrid-primary", "sendgrid", 0)
    ]
    assert old.account("sendgrid", SendGridAccount).from_email == "fees@elm.example"
    assert dict(old.routing) == {}
