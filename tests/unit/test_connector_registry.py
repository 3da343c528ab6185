"""The provider registry matches the topic catalog; every adapter has the protocol's shape."""

from __future__ import annotations

import inspect
from typing import Any, get_args

import pytest

from connectors.base import Category, ProviderAdapter
from connectors.razorpay import Razorpay
from connectors.registry import PROVIDERS, adapter
from connectors.sendgrid import SendGrid
from connectors.twilio import Twilio
from core.topics import CONNECTOR_PROVIDERS
from schemas.events import CommandPayload, CreatePaymentOrder, SendEmail, SendSms

PROTOCOL_METHODS = {
    "build_request": ["command", "payload", "tenant", "base_url"],
    "classify": ["response"],
    "auth": ["tenant", "settings"],
}


def protocol_members() -> set[str]:
    """What ProviderAdapter declares: its annotated attributes plus its public defs."""
    declared = {n for n in vars(ProviderAdapter) if not n.startswith("_")}
    return declared | set(ProviderAdapter.__annotations__)


def test_registry_and_topic_catalog_list_the_same_providers() -> None:
    assert set(PROVIDERS) == set(CONNECTOR_PROVIDERS)
    assert len(CONNECTOR_PROVIDERS) == len(set(CONNECTOR_PROVIDERS))


def test_protocol_declares_the_members_the_tests_check() -> None:
    assert protocol_members() == {"name", "category", "payload_type", *PROTOCOL_METHODS}


@pytest.mark.parametrize("key", sorted(PROVIDERS))
def test_adapter_conforms_to_the_protocol(key: str) -> None:
    found: Any = PROVIDERS[key]
    for member in protocol_members():
        assert hasattr(found, member), f"{key} lacks {member}"
    assert found.name == key
    assert found.category in get_args(Category)
    assert found.payload_type in get_args(CommandPayload)
    for method, params in PROTOCOL_METHODS.items():
        bound = getattr(found, method)
        assert callable(bound)
        assert list(inspect.signature(bound).parameters) == params


@pytest.mark.parametrize(
    ("key", "cls", "category", "payload_type"),
    [
        ("razorpay", Razorpay, "payment", CreatePaymentOrder),
        ("twilio", Twilio, "sms", SendSms),
        ("sendgrid", SendGrid, "email", SendEmail),
    ],
)
def test_each_provider_has_the_expected_adapter(
    key: str, cls: type, category: str, payload_type: type
) -> None:
    found: Any = PROVIDERS[key]
    assert isinstance(found, cls)
    assert found.category == category
    assert found.payload_type is payload_type


def test_categories_are_unique_per_provider() -> None:
    categories = [a.category for a in PROVIDERS.values()]
    assert sorted(categories) == sorted(get_args(Category))


def test_adapter_lookup_returns_the_registered_instance() -> None:
    for key, registered in PROVIDERS.items():
        assert adapter(key) is registered


def test_adapter_lookup_of_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(KeyError) as caught:
        adapter("mailchimp")
    message = str(caught.value)
    assert "mailchimp" in message
    for key in PROVIDERS:
        assert key in message
