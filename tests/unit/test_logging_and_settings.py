import json
import logging
import tomllib

import pytest
import structlog

from core.logging import MASK, configure_logging, mask_secrets
from core.settings import Settings
from core.tenants import (
    DEMO_MARKER,
    TenantConfigError,
    demo_tenant_config,
    ensure_demo_tenants,
    load_tenants,
    parse_tenants,
)
from hub.stack import settings_env, with_simulators


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


def test_no_secret_reaches_a_rendered_log_line(capsys: pytest.CaptureFixture[str]):
    tenants = parse_tenants(tomllib.loads(demo_tenant_config("t")))
    account = tenants.get("t").razorpay  # type: ignore[union-attr]
    assert account is not None
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
    assert tenant and tenant.twilio
    assert tenant.twilio.auth_token.get_secret_value() not in repr(tenant)


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
    with pytest.raises(TenantConfigError, match="invalid tenant config"):
        parse_tenants({"tenants": {"t": {"razorpay": {"key_id": "only"}}}})


def test_demo_tenants_are_generated_once_and_rewritten_when_outdated(tmp_path):
    path = tmp_path / "tenants.toml"
    ensure_demo_tenants(path)
    first = path.read_text()
    assert first.startswith(DEMO_MARKER)
    assert ensure_demo_tenants(path).read_text() == first, "kept: same secrets next time"
    # A file from before the demo tenants had Google accounts (and before the marker).
    path.write_text(first.split("\n", 1)[1].split("[tenants.greenwood.gworkspace]")[0])
    rewritten = ensure_demo_tenants(path).read_text()
    assert rewritten.startswith(DEMO_MARKER)
    tenant = load_tenants(Settings(tenants_file=path)).get("greenwood")
    assert tenant is not None and tenant.gworkspace and tenant.fcm
