"""A catalog change reaches the running hub without a restart: an account added to a
tenant and routed to through the catalog (as `hub accounts add` and `hub tenants route`
do) is the one the next SMS goes out with, and the audit trail names it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
from support import delivered, sms_to, unique_phone

from catalog.service import CatalogService
from core.audit import read_audit
from core.settings import Settings
from core.topics import NOTIFICATION_REQUESTS
from hub.tenants_seed import publish_catalog
from producers import EventProducer
from schemas.events import Channel, EventHeader, NotificationRequest
from simulators.client import SimulatorClient

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

TENANT = "riverside"  # not the tenant most tests use: its routing changes here for a while
LABEL = "twilio-live"


@pytest.fixture
def catalog(hub_settings: Settings) -> Iterator[CatalogService]:
    service = CatalogService.open(hub_settings)
    before = service.get_routing(TENANT)
    yield service
    if LABEL in {a.label for a in service.list_accounts(TENANT)}:
        service.remove_account(TENANT, LABEL)
    service.set_routing(TENANT, before)
    publish_catalog(service, hub_settings)
    service.close()


def notify(settings: Settings, to: str) -> None:
    request = NotificationRequest(
        header=EventHeader.new(NotificationRequest.EVENT_TYPE, TENANT, source="catalog-live-test"),
        idempotency_key=f"live:{secrets.token_hex(6)}:sms",
        channel=Channel.SMS,
        to=to,
        text="Rohan was absent today",
    )
    with EventProducer(settings) as producer:
        producer.publish(request, NOTIFICATION_REQUESTS)


def test_an_account_added_to_the_catalog_sends_the_next_sms_without_a_restart(
    hub_settings: Settings, sim: SimulatorClient, catalog: CatalogService
) -> None:
    sid = f"AC{secrets.token_hex(16)}"
    catalog.add_account(
        TENANT,
        LABEL,
        "twilio",
        {"account_sid": sid, "auth_token": secrets.token_hex(16), "from_number": "+15005550199"},
    )
    catalog.set_routing(TENANT, {**catalog.get_routing(TENANT), "sms": [LABEL]})
    # Published by whichever relay looks first: this one, or the running admin API's
    # (every 0.5 s); what counts is that the hub then uses the account, checked below.
    publish_catalog(catalog, hub_settings)

    # The router, the connector and the simulator each follow the topic on their own:
    # send until an SMS goes out through the new account (within seconds, not a restart).
    deadline = time.monotonic() + 30
    phone = unique_phone()
    sent_with_new: list[dict[str, object]] = []
    while not sent_with_new:
        assert time.monotonic() < deadline, "the running hub never used the new account"
        notify(hub_settings, phone)
        time.sleep(1.0)
        sent_with_new = [c for c in delivered(sms_to(sim, phone)) if sid in str(c["path"])]
    assert sent_with_new[-1]["body"]["From"] == "+15005550199"  # type: ignore[index]

    # The audit record is produced beside the call, not before its answer: wait for it.
    deadline = time.monotonic() + 15
    while not any(
        e.account == LABEL and sid in e.url
        for e in read_audit(hub_settings, tenant=TENANT, provider="twilio", limit=500)
    ):
        assert time.monotonic() < deadline, "no audit record names the new account"
        time.sleep(0.5)
