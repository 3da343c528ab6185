"""Every declared provider is whole: simulated, in the catalog, in the README, conforming.

A provider is one module under providers/ ending with `PROVIDER = Provider(...)`;
these tests are what keeps "everything else is derived from it" true.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

import providers
from catalog.fields import fields_of
from catalog.service import CatalogService
from catalog.tenant_file import demo_tenant_config, parse_tenants
from core.settings import Settings
from core.topics import commands_topic, connector_stage, dlq_topic, ledger_topic, results_topic
from hub.stack import with_simulators
from providers.base import Category
from providers.spec import API, Provider
from simulators.app import simulated

ROOT = Path(__file__).resolve().parents[2]
NAMES = providers.names()
CATEGORIES = set(Category.__args__)  # type: ignore[attr-defined]


def test_the_registry_finds_todays_providers() -> None:
    assert set(NAMES) == {
        "razorpay",
        "twilio",
        "sendgrid",
        "gworkspace",
        "fcm",
        "mobileapp",
        "smsgateway",
        "cashfree",
        "paypal",
        "flutterwave",
        "pesapal",
        "paytm",
        "stripe",
        "mpesa",
        "msg91",
        "africastalking",
        "whatsapp",
        "mailgun",
        "ses",
        "smtp",
    }


@pytest.mark.parametrize("name", NAMES)
def test_the_declaration_is_complete(name: str) -> None:
    declared = providers.get(name)
    assert declared.name == name == declared.adapter.name
    assert declared.category in CATEGORIES
    assert declared.title and declared.summary
    assert issubclass(declared.account_model, BaseModel)
    assert declared.operations, "an adapter names the operation it performs"
    # The real API (SMTP's real default is the account's own server, smtp://host:port).
    assert declared.base_urls[API].startswith(("https://", "smtp://")), "not a real API default"


@pytest.mark.parametrize("name", NAMES)
def test_the_adapter_conforms_to_the_protocol(name: str) -> None:
    adapter = providers.get(name).adapter
    for method in ("build_request", "classify", "auth"):
        assert callable(getattr(adapter, method, None)), f"{name} adapter lacks {method}"
    declared = adapter.payload_type
    # One payload type, or several (payment gateways: create, status, refund ...).
    types = declared if isinstance(declared, tuple) else (declared,)
    assert types and all(isinstance(t, type) for t in types)
    assert adapter.category == providers.get(name).category


@pytest.mark.parametrize("name", NAMES)
def test_every_base_url_is_simulated(name: str) -> None:
    mounts = set(simulated())
    for path in providers.get(name).simulator_paths.values():
        mount = "/" + path.strip("/").split("/")[0]
        assert mount in mounts, f"{name}: no simulator serves {path}"


@pytest.mark.parametrize("name", NAMES)
def test_simulator_settings_point_every_base_url_at_the_simulator(name: str) -> None:
    s = with_simulators(Settings(simulator_port=8123))
    for which in providers.get(name).base_urls:
        assert providers.base_url(s, name, which).startswith("http://127.0.0.1:8123/")


def test_a_configured_base_url_wins_over_the_declared_default() -> None:
    s = Settings(provider_base_urls={"twilio": "https://eu1.twilio.example", "fcm.token": "x"})
    assert providers.base_url(s, "twilio") == "https://eu1.twilio.example"
    assert providers.base_url(s, "fcm", "token") == "x"
    assert providers.base_url(s, "sendgrid") == "https://api.sendgrid.com"


@pytest.mark.parametrize("name", NAMES)
def test_the_topic_catalog_has_the_providers_topics(name: str) -> None:
    topics = {spec.name for spec in providers.topics()}
    for topic in (commands_topic(name), results_topic(name), ledger_topic(name)):
        assert topic in topics
    assert dlq_topic(connector_stage(name)) in topics
    assert connector_stage(name) in providers.stages()


@pytest.mark.parametrize("name", NAMES)
def test_a_demo_tenant_holds_a_valid_account_of_every_provider(name: str) -> None:
    tenant = parse_tenants(tomllib.loads(demo_tenant_config("t1", "One"))).get("t1")
    assert tenant is not None
    account = tenant.accounts_for(name)[0]
    assert isinstance(account.config, providers.get(name).account_model)
    for field in providers.get(name).secret_fields:
        assert isinstance(getattr(account.config, field), SecretStr)


@pytest.mark.parametrize("name", NAMES)
def test_the_readme_has_a_row_for_the_provider(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Providers", 1)[1].split("\n## ", 1)[0]
    assert re.search(rf"^\| `{name}` \|", section, re.M), f"README's Providers table lacks {name}"


@pytest.mark.parametrize("name", providers.with_webhooks())
def test_a_webhook_signed_with_the_secret_verifies_and_a_tampered_one_does_not(name: str) -> None:
    webhooks = providers.get(name).webhooks
    assert webhooks is not None
    assert webhooks.secret_field in providers.get(name).secret_fields
    if not webhooks.verifier.signature_header:
        # Signed inside its own body shape (Paytm's form CHECKSUMHASH under a 16-character
        # key), not a header over any body: the provider's own tests sign real callbacks.
        pytest.skip(f"{name} signs no header")
    if getattr(webhooks.verifier, "certificate_signed", False):
        # PayPal signs with its certificate's private key over the account's webhook id,
        # no shared secret: tests/unit/test_provider_paypal.py signs with a generated one.
        pytest.skip(f"{name} signs with a certificate, not a shared secret")
    if getattr(webhooks.verifier, "signs_url", False):
        # Twilio signs the URL it called with the form: body and headers alone never
        # verify; tests/unit/test_provider_twilio.py signs deliveries with their URL.
        pytest.skip(f"{name} signs the URL, not the body alone")
    body = b'{"event":"payment.captured"}'
    headers = webhooks.verifier.signed_headers(body, "s3cret")
    assert webhooks.verifier.verify(body, headers, "s3cret")
    if getattr(webhooks.verifier, "binds_body", True):  # Flutterwave's verif-hash does not
        assert not webhooks.verifier.verify(body + b" ", headers, "s3cret")
    assert not webhooks.verifier.verify(body, headers, "another")
    assert webhooks.secret_field in providers.get(name).secret_fields


def test_secret_fields_are_the_secretstr_ones() -> None:
    declared = providers.get("twilio")
    assert declared.secret_fields == ("auth_token",)
    assert declared.public_fields == ("account_sid", "from_number")


def test_parse_account_names_the_field_that_is_wrong() -> None:
    with pytest.raises(providers.AccountError) as caught:
        providers.parse_account("twilio", "twilio-primary", {"account_sid": "AC1"})
    assert caught.value.field == "auth_token"
    with pytest.raises(providers.AccountError) as caught:
        providers.parse_account(
            "twilio", "Bad Label", {"account_sid": "AC1", "auth_token": "t", "from_number": "+1"}
        )
    assert caught.value.field == "label"
    with pytest.raises(providers.UnknownProviderError, match="no provider 'nope'"):
        providers.parse_account("nope", "x", {})


def test_a_declaration_without_a_simulator_path_for_each_base_url_is_refused() -> None:
    twilio = providers.get("twilio")
    with pytest.raises(ValueError, match="simulator path"):
        Provider(
            name="twilio",
            title="x",
            category="sms",
            account_model=twilio.account_model,
            adapter=twilio.adapter,
            base_urls={API: "https://a", "token": "https://b"},
            simulator_paths={API: "/twilio"},
            summary="x",
        )


@pytest.mark.parametrize("name", NAMES)
def test_the_catalog_stores_and_opens_an_account_of_every_provider(
    name: str, tmp_path: Path
) -> None:
    demo = parse_tenants(tomllib.loads(demo_tenant_config("t1", "One"))).get("t1")
    assert demo is not None
    account = demo.accounts_for(name)[0]
    # As an import gives them: text, which the account model parses (SMTP's port, flags).
    fields = fields_of(account.config)
    service = CatalogService.open(Settings(home=tmp_path))
    try:
        service.create_tenant("t1", "One")
        info = service.add_account("t1", account.label, name, fields)
        assert sorted(info.secrets_set) == sorted(providers.get(name).secret_fields)
        assert not set(info.settings) & set(providers.get(name).secret_fields)
        stored = service.load_tenant("t1").by_label(account.label)
        assert stored is not None
        assert stored.config == account.config
    finally:
        service.close()
