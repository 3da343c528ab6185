"""processors.routing: a notification request becomes one provider's command."""

from __future__ import annotations

import tomllib

import pytest
from proc_support import EMAIL, NO_GATEWAY_TENANT, NO_SMS_TENANT, PHONE, TENANT, tenants

from catalog.tenant_file import parse_tenants
from core.tenants import Tenant, TenantDirectory
from processors.routing import (
    CHANNEL_PROVIDERS,
    RoutingError,
    choose_account,
    choose_provider,
    route,
)
from schemas.events import (
    Channel,
    ConnectorCommand,
    EventHeader,
    NotificationRequest,
    Priority,
    SendEmail,
    SendSms,
)

TENANTS = tenants()
SMS_TEXT = "Payment successful: ₹50,000 for Term 2 tuition fee (Aarav Sharma). Receipt: https://x"


def sms_request(tenant: str = TENANT) -> NotificationRequest:
    return NotificationRequest(
        header=EventHeader.new(NotificationRequest.EVENT_TYPE, tenant, source="reconciler"),
        idempotency_key="payment-receipt:pay_A1b2C3d4E5f6G7:sms",
        channel=Channel.SMS,
        priority=Priority.HIGH,
        to=PHONE,
        to_name="Priya Sharma",
        text=SMS_TEXT,
        template="payment-receipt",
    )


def email_request(
    tenant: str = TENANT, subject: str | None = "Payment receipt REC-1"
) -> NotificationRequest:
    return NotificationRequest(
        header=EventHeader.new(NotificationRequest.EVENT_TYPE, tenant, source="reconciler"),
        idempotency_key="payment-receipt:pay_A1b2C3d4E5f6G7:email",
        channel=Channel.EMAIL,
        to=EMAIL,
        to_name="Priya Sharma",
        subject=subject,
        text="Dear Priya Sharma, ...",
        html="<p>Dear Priya Sharma,</p>",
    )


def test_an_sms_goes_to_twilio_as_send_sms() -> None:
    request = sms_request()

    emit = route(request, TENANTS)

    assert emit.topic == "connector.twilio.commands.v1"
    command = emit.event
    assert isinstance(command, ConnectorCommand)
    assert command.provider == "twilio"
    assert command.account == "twilio-primary"  # the demo tenant's routing: sms first to it
    assert command.payload == SendSms(to=PHONE, text=SMS_TEXT)
    assert command.operation == "sms.send"
    assert command.idempotency_key == request.idempotency_key
    assert command.context == {"notification_id": request.notification_id}
    assert emit.record_key == f"{TENANT}:{request.idempotency_key}"


def test_an_email_goes_to_sendgrid_as_send_email() -> None:
    request = email_request()

    emit = route(request, TENANTS)

    assert emit.topic == "connector.sendgrid.commands.v1"
    command = emit.event
    assert isinstance(command, ConnectorCommand)
    assert command.provider == "sendgrid"
    assert command.account == "sendgrid-primary"
    assert command.payload == SendEmail(
        to=EMAIL,
        to_name="Priya Sharma",
        subject="Payment receipt REC-1",
        text="Dear Priya Sharma, ...",
        html="<p>Dear Priya Sharma,</p>",
    )
    assert command.operation == "email.send"
    assert command.idempotency_key == request.idempotency_key


def test_an_email_without_a_subject_gets_a_placeholder() -> None:
    command = route(email_request(subject=None), TENANTS).event

    assert isinstance(command, ConnectorCommand)
    assert isinstance(command.payload, SendEmail)
    assert command.payload.subject == "(no subject)"


@pytest.mark.parametrize("make", [sms_request, email_request])
def test_the_command_header_is_caused_by_the_request(make) -> None:  # type: ignore[no-untyped-def]
    request = make()

    command = route(request, TENANTS).event

    assert command.header.tenant == request.header.tenant
    assert command.header.correlation_id == request.header.correlation_id
    assert command.header.causation_id == request.header.event_id
    assert command.header.event_id != request.header.event_id
    assert command.header.source == "router"
    assert command.header.event_type == f"connector.{command.payload.OPERATION}"


def test_a_redelivered_request_routes_to_the_same_command_key() -> None:
    request = sms_request()

    first, second = route(request, TENANTS), route(request, TENANTS)

    assert first.record_key == second.record_key
    assert first.event.idempotency_key == second.event.idempotency_key


def test_a_tenant_without_an_sms_provider_cannot_route_sms() -> None:
    with pytest.raises(RoutingError, match=NO_SMS_TENANT):
        route(sms_request(NO_SMS_TENANT), TENANTS)


def test_a_tenant_without_an_sms_provider_still_routes_email() -> None:
    assert route(email_request(NO_SMS_TENANT), TENANTS).event.provider == "sendgrid"


def test_a_tenant_without_a_gateway_still_routes_notifications() -> None:
    command = route(sms_request(NO_GATEWAY_TENANT), TENANTS).event
    assert isinstance(command, ConnectorCommand)
    assert command.provider == "twilio"
    assert command.account is None  # no routing: the provider's primary account


def test_an_unknown_tenant_cannot_route() -> None:
    with pytest.raises(RoutingError, match="unknown tenant"):
        route(sms_request("nowhere"), TENANTS)


def test_a_tenant_with_no_providers_at_all_cannot_route_email() -> None:
    bare = parse_tenants({"tenants": {"bare": {"name": "Bare School"}}})

    with pytest.raises(RoutingError):
        route(email_request("bare"), bare)


def test_choose_provider_picks_the_configured_provider() -> None:
    assert choose_provider(Channel.SMS, TENANTS.get(TENANT)) == "twilio"
    assert choose_provider(Channel.EMAIL, TENANTS.get(TENANT)) == "sendgrid"
    with pytest.raises(RoutingError):
        choose_provider(Channel.SMS, None)


def test_every_channel_has_a_provider_list() -> None:
    assert set(CHANNEL_PROVIDERS) == set(Channel)
    assert CHANNEL_PROVIDERS[Channel.SMS] == ("twilio",)
    assert CHANNEL_PROVIDERS[Channel.EMAIL] == ("sendgrid",)


# --- which of the tenant's accounts ------------------------------------------

_TWILIO = 'provider = "twilio"\nauth_token = "t0ken"\nfrom_number = "+15005550006"'


def school(routing: str = "", *, backup_enabled: str = "true") -> Tenant:
    """A school with two Twilio accounts and one SendGrid account, routed as given."""
    raw = f"""
[tenants.oakridge.accounts.twilio-primary]
{_TWILIO}
account_sid = "AC00000000000000000000000000000001"

[tenants.oakridge.accounts.twilio-backup]
{_TWILIO}
account_sid = "AC00000000000000000000000000000002"
priority = 10
enabled = {backup_enabled}

[tenants.oakridge.accounts.sendgrid-primary]
provider = "sendgrid"
api_key = "SG.x.y"
from_email = "fees@oakridge.school.example"

[tenants.oakridge.routing]
{routing}
"""
    found = parse_tenants(tomllib.loads(raw)).get("oakridge")
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        pytest.param(
            'sms = ["twilio-backup", "twilio-primary"]', "twilio-backup", id="backup-first"
        ),
        pytest.param('sms = ["twilio-primary", "twilio-backup"]', "twilio-primary", id="primary"),
        pytest.param('sms = ["nowhere", "twilio-backup"]', "twilio-backup", id="unknown-skipped"),
        pytest.param(
            'sms = ["sendgrid-primary", "twilio-backup"]', "twilio-backup", id="wrong-channel"
        ),
    ],
)
def test_choose_account_follows_the_tenants_routing(routing: str, expected: str) -> None:
    assert choose_account(Channel.SMS, school(routing)) == ("twilio", expected)


def test_a_disabled_account_in_the_routing_is_skipped() -> None:
    tenant = school('sms = ["twilio-backup", "twilio-primary"]', backup_enabled="false")
    assert choose_account(Channel.SMS, tenant) == ("twilio", "twilio-primary")


def test_without_routing_for_the_channel_the_providers_primary_is_used() -> None:
    tenant = school('email = ["sendgrid-primary"]')
    assert choose_account(Channel.SMS, tenant) == ("twilio", None)
    assert choose_account(Channel.EMAIL, tenant) == ("sendgrid", "sendgrid-primary")


def test_the_routed_account_travels_on_the_command() -> None:
    tenant = school('sms = ["twilio-backup", "twilio-primary"]')
    request = sms_request("oakridge")

    emit = route(request, TenantDirectory({"oakridge": tenant}))

    assert emit.topic == "connector.twilio.commands.v1"
    assert isinstance(emit.event, ConnectorCommand)
    assert (emit.event.provider, emit.event.account) == ("twilio", "twilio-backup")
    assert emit.record_key == f"oakridge:{request.idempotency_key}"


def test_routing_error_is_a_value_error() -> None:
    assert issubclass(RoutingError, ValueError)
