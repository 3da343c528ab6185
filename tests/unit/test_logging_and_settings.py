import json
import logging
import tomllib
from collections.abc import Iterator

import pytest
import structlog
from tenant_accounts import primary

from catalog.tenant_file import TenantFileError, demo_tenant_config, parse_tenants
from core.logging import MASK, configure_logging, mask_secrets
from core.settings import Settings
from hub.stack import settings_env, with_simulators
from hub.tenants_seed import demo_tenants
from providers import names as provider_names
from providers.razorpay import RazorpayAccount
from providers.twilio import TwilioAccount


def test_secrets_are_masked_at_any_depth():
    event = mask_secrets(
        None,
        "info",
        {
            "event": "x",
            "authorization": "Basic abc",
            "api_key": "SG.1",
            "nested": {"webhook_secret": "s", "auth_token": "t", "ok": 1},
            "x-razorpay-signature": "deadbeef",
        },
    )
    assert event["authorization"] == event["api_key"] == event["x-razorpay-signature"] == MASK
    assert event["nested"] == {"webhook_secret": MASK, "auth_token": MASK, "ok": 1}


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging binds to this test's captured stderr: put back what was before, or
    a later test's log line (alembic's, under a CLI test) writes to a closed file."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
def test_no_secret_reaches_a_rendered_log_line(capsys: pytest.CaptureFixture[str]):
    tenants = parse_tenants(tomllib.loads(demo_tenant_config("t")))
    tenant = tenants.get("t")
    assert tenant is not None
    account = primary(tenant, RazorpayAccount)
    secret = account.key_secret.get_secret_value()
    configure_logging("INFO", "json", component="test")
    log = structlog.get_logger("t")
    log.info(
        "calling provider",
        account=account.model_dump(),
        key_secret=secret,
        headers={"Authorization": f"Basic {secret}"},
        tenant="t",
    )
    logging.getLogger("lib").warning("stdlib line with %s", "args")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert secret not in err
    assert lines[0]["component"] == "test" and lines[0]["tenant"] == "t"
    assert lines[1]["event"] == "stdlib line with args" and lines[1]["component"] == "test"


def test_secret_values_do_not_leak_through_repr():
    tenants = parse_tenants(tomllib.loads(demo_tenant_config("t")))
    tenant = tenants.get("t")
    assert tenant is not None
    token = primary(tenant, TwilioAccount).auth_token.get_secret_value()
    assert token not in repr(tenant)
    assert token not in repr(tenant.accounts)
    assert token not in str(tenant)


def test_children_rebuild_exactly_the_same_settings(monkeypatch: pytest.MonkeyPatch):
    original = with_simulators(
        Settings(kafka_bootstrap_servers="h:1", ingress_port=1234, retry_base_seconds=0.05)
    )
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def test_kafka_bootstrap_servers_env_selects_an_external_cluster(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    s = Settings()
    assert s.bootstrap_servers == "kafka-1:9092,kafka-2:9092" and not s.uses_local_broker
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    assert Settings(kafka_port=1).bootstrap_servers == "127.0.0.1:1"


def test_invalid_tenant_config_is_a_clear_error():
    # It names the tenant, the account and the field.
    with pytest.raises(TenantFileError) as caught:
        parse_tenants({"tenants": {"t": {"razorpay": {"key_id": "only"}}}})
    assert str(caught.value) == "tenant 't', account 'razorpay-primary': key_secret: Field required"


def test_demo_tenants_have_every_provider_and_fresh_secrets():
    # `hub run` seeds these into an empty catalog (and only then: the catalog keeps them).
    first, again = demo_tenants(), demo_tenants()
    assert [t.id for t in first] == ["greenwood", "riverside", "sunrise"]
    # Seed 004's school collects through Cashfree first, with Razorpay behind it.
    assert [t.routing["payment"] for t in first] == [
        ("razorpay-primary",),
        ("razorpay-primary",),
        ("cashfree-primary", "razorpay-primary"),
    ]
    for tenant in first:
        assert [p for p in provider_names() if not tenant.has(p)] == []
        assert [a.label for a in tenant.accounts_for("twilio")] == [
            "twilio-primary",
            "twilio-backup",
        ]
        assert tenant.routing["sms"] == ("twilio-primary", "msg91-primary", "twilio-backup")
        assert tenant.routing["email"] == ("sendgrid-primary", "ses-primary")
    greenwood, riverside, _sunrise = first
    assert not set(greenwood.secret_values()) & set(riverside.secret_values())
    assert not set(greenwood.secret_values()) & set(again[0].secret_values())
