"""The connectors' adapters are the declared providers' (each with its topics); every adapter
has the protocol's shape."""

from __future__ import annotations

import inspect
from typing import Any, get_args

import pytest

from connectors.registry import adapter, adapters
from core.topics import commands_topic, dlq_topic, ledger_topic, results_topic
from providers import names as provider_names
from providers import topics as topic_catalog
from providers.base import Category, ProviderAdapter
from providers.razorpay import Razorpay
from providers.sendgrid import SendGrid
from providers.twilio import Twilio
from schemas.events import (
    CommandPayload,
    CreatePaymentOrder,
    FetchPaymentStatus,
    RefundPayment,
    SendEmail,
    SendSms,
)

PROTOCOL_METHODS = {
    "build_request": ["command", "payload", "tenant", "base_url"],
    "classify": ["response"],
    "auth": ["tenant", "settings", "label"],
}
# The providers the hub speaks today, with their categories.
TODAY = {
    "razorpay": "payment",
    "twilio": "sms",
    "sendgrid": "email",
    "gworkspace": "directory",
    "fcm": "push",
    "mobileapp": "profile",
    "smsgateway": "contacts",
}


def protocol_members() -> set[str]:
    """What ProviderAdapter declares: its annotated attributes plus its public defs."""
    declared = {n for n in vars(ProviderAdapter) if not n.startswith("_")}
    return declared | set(ProviderAdapter.__annotations__)


def test_registry_and_topic_catalog_list_the_same_providers() -> None:
    assert set(adapters()) == set(provider_names())
    assert len(provider_names()) == len(set(provider_names()))
    topics = {t.name for t in topic_catalog()}
    for provider in provider_names():
        assert commands_topic(provider) in topics
        assert results_topic(provider) in topics
        assert ledger_topic(provider) in topics
        assert dlq_topic(f"connector-{provider}") in topics


def test_the_providers_of_today_are_all_registered() -> None:
    # A literal list: a provider module that stops declaring itself is noticed here.
    assert set(TODAY) <= set(adapters())


def test_protocol_declares_the_members_the_tests_check() -> None:
    assert protocol_members() == {"name", "category", "payload_type", *PROTOCOL_METHODS}


@pytest.mark.parametrize("key", sorted(adapters()))
def test_adapter_conforms_to_the_protocol(key: str) -> None:
    found: Any = adapters()[key]
    for member in protocol_members():
        assert hasattr(found, member), f"{key} lacks {member}"
    assert found.name == key
    assert found.category in get_args(Category)
    declared = found.payload_type
    # One payload type, or several (payment gateways: create, status, refund ...).
    types = declared if isinstance(declared, tuple) else (declared,)
    assert types and set(types) <= set(get_args(CommandPayload))
    for method, params in PROTOCOL_METHODS.items():
        bound = getattr(found, method)
        assert callable(bound)
        assert list(inspect.signature(bound).parameters) == params


@pytest.mark.parametrize(
    ("key", "cls", "category", "payload_type"),
    [
        (
            "razorpay",
            Razorpay,
            "payment",
            (CreatePaymentOrder, FetchPaymentStatus, RefundPayment),
        ),
        ("twilio", Twilio, "sms", SendSms),
        ("sendgrid", SendGrid, "email", SendEmail),
    ],
)
def test_each_provider_has_the_expected_adapter(
    key: str, cls: type, category: str, payload_type: object
) -> None:
    found: Any = adapters()[key]
    assert isinstance(found, cls)
    assert found.category == category
    assert found.payload_type == payload_type


def test_each_provider_of_today_has_its_own_category() -> None:
    # Category also names categories no provider serves yet ("chat", "lms"), and two
    # providers may share one (a second SMS provider): today's each have their own.
    categories = {key: a.category for key, a in adapters().items()}
    assert set(categories.values()) <= set(get_args(Category))
    assert {k: v for k, v in categories.items() if k in TODAY} == TODAY


def test_adapter_lookup_returns_the_registered_instance() -> None:
    for key, registered in adapters().items():
        assert adapter(key) is registered


def test_adapter_lookup_of_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(KeyError) as caught:
        adapter("mailchimp")
    message = str(caught.value)
    assert "mailchimp" in message
    for key in adapters():
        assert key in message
