"""The one explicit list of provider adapters.

Adding a provider: write its adapter (a class with `name`, `category`,
`payload_type`, `build_request`, `classify`, `auth`), list it here and in
core.topics.CONNECTOR_PROVIDERS;
tests/connectors/test_registry.py proves both lists agree and every adapter
conforms to its category's protocol.
"""

from __future__ import annotations

from typing import Any

from connectors.base import ProviderAdapter
from connectors.fcm import Fcm
from connectors.gworkspace import GoogleWorkspace
from connectors.mobileapp import MobileApp
from connectors.razorpay import Razorpay
from connectors.sendgrid import SendGrid
from connectors.smsgateway import SmsGateway
from connectors.twilio import Twilio

PROVIDERS: dict[str, ProviderAdapter[Any]] = {
    "razorpay": Razorpay(),
    "twilio": Twilio(),
    "sendgrid": SendGrid(),
    "gworkspace": GoogleWorkspace(),
    "fcm": Fcm(),
    "mobileapp": MobileApp(),
    "smsgateway": SmsGateway(),
}


def adapter(name: str) -> ProviderAdapter[Any]:
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise KeyError(f"no connector for {name!r} (known: {known})") from None
