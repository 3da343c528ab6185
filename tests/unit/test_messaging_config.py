"""processors.messaging_config: the policy file's shape, merging, errors, and the demo file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from processors.messaging_config import (
    AccountPolicy,
    ChannelPolicy,
    Limits,
    MessagingConfigError,
    TenantMessaging,
    load_messaging,
    parse_messaging,
)
from schemas.events import Channel

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "deploy" / "messaging.toml"

EXAMPLE = """
[defaults.limits]
per_recipient_per_hour = 10
per_minute = 1200

[defaults.policy.email.accounts.sendgrid-primary]
cost_minor = 8

[tenants.greenwood.limits]
per_minute = 600
per_day = 20000

[tenants.greenwood.policy.sms]
prefer = "cost"

[tenants.greenwood.policy.sms.accounts.twilio-primary]
cost_minor = 20
rate_per_second = 1

[tenants.greenwood.policy.sms.accounts.msg91-primary]
cost_minor = 15
weight = 3

[tenants.kenya]
currency = "KES"

[templates."*".attendance_alert.sms.en]
text = "Dear parent, {{ student_name }} was absent today ({{ date }}). {{ school }}"
dlt_template_id = "1107161234567890123"
dlt_entity_id = "1101161234567890123"
provider_templates = { msg91 = "attendance_alert_v1", whatsapp = "attendance_alert" }
parameters = ["student_name", "date"]

[templates."*".attendance_alert.sms.hi]
text = "प्रिय अभिभावक, {{ student_name }} आज अनुपस्थित रहे।"

[templates.greenwood.payment_receipt.email.en]
subject = "Payment receipt {{ receipt_no }}"
text = "Received {{ amount }}."
html = "<p>Received {{ amount }}.</p>"
"""


def parse(text: str) -> Any:
    return parse_messaging(tomllib.loads(text))


def test_the_example_parses() -> None:
    config = parse(EXAMPLE)
    greenwood = config.tenants["greenwood"]
    assert greenwood.limits == Limits(per_minute=600, per_day=20000, per_recipient_per_hour=None)
    sms = greenwood.policies[Channel.SMS]
    assert sms.prefer == "cost"
    assert list(sms.accounts) == ["twilio-primary", "msg91-primary"]  # as written
    assert sms.accounts["twilio-primary"] == AccountPolicy("twilio-primary", 0, 20, 1.0)
    assert sms.accounts["msg91-primary"] == AccountPolicy("msg91-primary", 3, 15, None)
    assert greenwood.currency == "INR"
    assert config.tenants["kenya"].currency == "KES"
    assert config.defaults.limits == Limits(per_minute=1200, per_recipient_per_hour=10)

    alert = config.templates.find("riverside", "attendance_alert", Channel.SMS, "en")
    assert alert.dlt_template_id == "1107161234567890123"
    assert alert.dlt_entity_id == "1101161234567890123"
    assert alert.provider_templates == {
        "msg91": "attendance_alert_v1",
        "whatsapp": "attendance_alert",
    }
    assert alert.parameters == ("student_name", "date")
    assert alert.variables == ("date", "school", "student_name")
    hindi = config.templates.find("riverside", "attendance_alert", Channel.SMS, "hi-IN")
    assert hindi.locale == "hi"
    receipt = config.templates.find("greenwood", "payment_receipt", Channel.EMAIL, None)
    assert receipt.subject == "Payment receipt {{ receipt_no }}"
    assert receipt.html == "<p>Received {{ amount }}.</p>"


def test_for_tenant_merges_limits_and_channel_policies_over_the_defaults() -> None:
    config = parse(EXAMPLE)
    greenwood = config.for_tenant("greenwood")
    assert greenwood.limits == Limits(per_minute=600, per_day=20000, per_recipient_per_hour=10)
    assert set(greenwood.policies) == {Channel.SMS, Channel.EMAIL}
    assert greenwood.policies[Channel.EMAIL] == ChannelPolicy(
        {"sendgrid-primary": AccountPolicy("sendgrid-primary", cost_minor=8)}
    )
    kenya = config.for_tenant("kenya")
    assert kenya.limits == Limits(per_minute=1200, per_day=None, per_recipient_per_hour=10)
    assert kenya.currency == "KES"


def test_a_tenant_not_in_the_file_gets_the_defaults() -> None:
    config = parse(EXAMPLE)
    assert config.for_tenant("riverside") is config.defaults
    assert config.for_tenant("riverside").currency == "INR"


def test_an_empty_file_means_no_policy_no_limits_no_templates() -> None:
    config = parse("")
    assert config.for_tenant("any") == TenantMessaging({}, Limits(), "INR")
    assert config.templates.list() == []


def test_the_defaults_currency_is_every_tenants_default() -> None:
    config = parse('[defaults]\ncurrency = "KES"\n[tenants.a.limits]\nper_day = 5\n')
    assert config.for_tenant("a").currency == "KES"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[tenants.greenwood.policy.sms.accounts.twilio-primary]\ncost_minor = -5\n",
            "tenants.greenwood.policy.sms.accounts.twilio-primary.cost_minor: "
            "must be a whole number >= 0 (got -5)",
        ),
        (
            "[tenants.greenwood.policy.sms.accounts.twilio-primary]\nweight = true\n",
            "tenants.greenwood.policy.sms.accounts.twilio-primary.weight: "
            "must be a whole number >= 0 (got True)",
        ),
        (
            "[tenants.greenwood.policy.sms.accounts.twilio-primary]\ncosts = 5\n",
            "tenants.greenwood.policy.sms.accounts.twilio-primary.costs: "
            "unknown key; expected one of cost_minor, rate_per_second, weight",
        ),
        (
            "[tenants.greenwood.policy.sms.accounts.twilio-primary]\nrate_per_second = 0\n",
            "tenants.greenwood.policy.sms.accounts.twilio-primary.rate_per_second: "
            "must be a number > 0 (got 0)",
        ),
        (
            "[tenants.greenwood.policy.telegram.accounts.bot]\ncost_minor = 1\n",
            "tenants.greenwood.policy.telegram: unknown channel; use one of sms, email, whatsapp",
        ),
        (
            '[tenants.greenwood.policy.sms]\nprefer = "cheap"\n',
            'tenants.greenwood.policy.sms.prefer: must be "order" or "cost" (got \'cheap\')',
        ),
        (
            '[tenants.greenwood.policy.sms]\nprefer = "cost"\n',
            "tenants.greenwood.policy.sms.accounts: names no account; "
            "add [<this>.accounts.<label>]",
        ),
        (
            "[tenants.greenwood.limits]\nper_minute = 0\n",
            "tenants.greenwood.limits.per_minute: must be a whole number >= 1 (got 0)",
        ),
        (
            "[defaults.limits]\nper_hour = 5\n",
            "defaults.limits.per_hour: unknown key; "
            "expected one of per_day, per_minute, per_recipient_per_hour",
        ),
        (
            '[tenants.greenwood]\ncurrency = "inr"\n',
            "tenants.greenwood.currency: must be an ISO 4217 code like INR (got 'inr')",
        ),
        (
            "[tenants]\ngreenwood = 5\n",
            "tenants.greenwood: must be a table (got int)",
        ),
        (
            "[tenant.greenwood]\n",
            "tenant: unknown key; expected one of defaults, templates, tenants",
        ),
        (
            '[tenants."*".limits]\nper_day = 1\n',
            'tenants."*": is not a tenant id; use [defaults] for everyone',
        ),
        (
            '[templates."*".alert.sms.en]\nsubject = "x"\n',
            'templates."*".alert.sms.en: has no text',
        ),
        (
            '[templates."*".alert.fax.en]\ntext = "x"\n',
            'templates."*".alert.fax: unknown channel; use one of sms, email, whatsapp',
        ),
        (
            '[templates."*".alert.sms.en]\ntext = "x"\nbody = "y"\n',
            'templates."*".alert.sms.en.body: unknown key; expected one of dlt_entity_id, '
            "dlt_template_id, html, parameters, provider_templates, subject, text",
        ),
        (
            '[templates."*".alert.sms.en]\ntext = "x"\ndlt_template_id = 1107161234567890123\n',
            'templates."*".alert.sms.en.dlt_template_id: '
            "must be a string (got 1107161234567890123)",
        ),
        (
            '[templates."*".alert.sms.en]\ntext = "x"\nprovider_templates = { msg91 = 7 }\n',
            'templates."*".alert.sms.en.provider_templates.msg91: must be a string (got 7)',
        ),
        (
            '[templates."*".alert.sms.en]\ntext = "x"\nparameters = "student_name"\n',
            'templates."*".alert.sms.en.parameters: must be a list of variable names',
        ),
        (
            '[templates."*".alert.email.en]\ntext = "Hi {{ name }"\nsubject = "s"\n',
            "templates.\"*\".alert.email.en: template 'alert' (EMAIL, en): the text has a "
            "Jinja2 syntax error on line 1: unexpected '}'",
        ),
        (
            '[templates."*".alert.email.en]\ntext = "Hi"\n',
            "templates.\"*\".alert.email.en: template 'alert' (EMAIL, en): "
            "an email template needs a subject",
        ),
        (
            '[templates."*".alert.sms.hi-IN]\ntext = "a"\n[templates."*".alert.sms.hi-in]\n'
            'text = "b"\n',
            "templates: template 'alert' (SMS, hi-in) of tenant '*' is defined twice",
        ),
    ],
)
def test_mistakes_name_the_toml_key(text: str, message: str) -> None:
    with pytest.raises(MessagingConfigError) as err:
        parse(text)
    assert str(err.value) == message


def test_load_names_the_file_in_every_error(tmp_path: Path) -> None:
    bad_value = tmp_path / "value.toml"
    bad_value.write_text("[tenants.greenwood.limits]\nper_day = -1\n")
    with pytest.raises(MessagingConfigError) as err:
        load_messaging(bad_value)
    assert str(err.value) == (
        f"{bad_value}: tenants.greenwood.limits.per_day: must be a whole number >= 1 (got -1)"
    )

    bad_toml = tmp_path / "syntax.toml"
    bad_toml.write_text("[tenants\n")
    with pytest.raises(MessagingConfigError) as err:
        load_messaging(bad_toml)
    assert str(err.value).startswith(f"{bad_toml}: not valid TOML: ")

    missing = tmp_path / "absent.toml"
    with pytest.raises(MessagingConfigError) as err:
        load_messaging(missing)
    assert str(err.value).startswith(f"cannot read the messaging config {missing}: ")


def test_the_settings_point_at_the_demo_file_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_MESSAGING_CONFIG", raising=False)
    assert Settings().messaging_config == DEMO
    monkeypatch.setenv("HUB_MESSAGING_CONFIG", str(tmp_path / "mine.toml"))
    assert Settings().messaging_config == tmp_path / "mine.toml"


# --- the demo file ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Any:
    return load_messaging(DEMO)


def test_demo_limits(demo: Any) -> None:
    assert demo.defaults.limits == Limits(per_minute=1200, per_day=50000, per_recipient_per_hour=10)
    assert demo.for_tenant("greenwood").limits == Limits(600, 20000, 10)
    assert demo.for_tenant("riverside").limits == Limits(1200, 50000, 10)
    assert demo.for_tenant("sunrise").limits == Limits(1200, 50000, 6)
    assert sorted(demo.tenants) == ["greenwood", "riverside", "sunrise"]


@pytest.mark.parametrize("tenant", ["greenwood", "riverside", "sunrise"])
def test_demo_accounts_and_costs(demo: Any, tenant: str) -> None:
    policies = demo.for_tenant(tenant).policies
    costs = {
        channel: {label: a.cost_minor for label, a in p.accounts.items()}
        for channel, p in policies.items()
    }
    assert costs == {
        Channel.SMS: {"twilio-primary": 20, "msg91-primary": 15},
        Channel.EMAIL: {"sendgrid-primary": 8, "ses-primary": 1},
        Channel.WHATSAPP: {"whatsapp-primary": 35},
    }
    assert demo.for_tenant(tenant).currency == "INR"


def test_demo_preferences(demo: Any) -> None:
    greenwood = demo.for_tenant("greenwood").policies
    assert list(greenwood[Channel.SMS].accounts) == ["twilio-primary", "msg91-primary"]
    assert greenwood[Channel.SMS].prefer == "order"
    assert demo.for_tenant("riverside").policies[Channel.SMS].prefer == "cost"
    assert demo.for_tenant("riverside").policies[Channel.EMAIL].prefer == "cost"
    sunrise = demo.for_tenant("sunrise").policies[Channel.SMS].accounts
    assert {label: a.weight for label, a in sunrise.items()} == {
        "msg91-primary": 70,
        "twilio-primary": 30,
    }


def test_demo_templates(demo: Any) -> None:
    listed = [(t.name, t.channel, t.locale) for t in demo.templates.list()]
    assert listed == [
        ("attendance_alert", Channel.SMS, "en"),
        ("attendance_alert", Channel.SMS, "hi"),
        ("attendance_alert", Channel.WHATSAPP, "en"),
        ("exam_result", Channel.SMS, "en"),
        ("fee_reminder", Channel.EMAIL, "en"),
        ("fee_reminder", Channel.SMS, "en"),
    ]
    sms_ids = {
        (t.name, t.locale): (t.dlt_template_id, t.dlt_entity_id)
        for t in demo.templates.list()
        if t.channel is Channel.SMS
    }
    assert sms_ids == {
        ("attendance_alert", "en"): ("1107172534810295631", "1101587263540012345"),
        ("attendance_alert", "hi"): ("1107172534810295648", "1101587263540012345"),
        ("exam_result", "en"): ("1107172534810295719", "1101587263540012345"),
        ("fee_reminder", "en"): ("1107172534810295702", "1101587263540012345"),
    }
    whatsapp = demo.templates.find("sunrise", "attendance_alert", Channel.WHATSAPP, "en")
    assert whatsapp.provider_templates == {"whatsapp": "attendance_alert"}
    assert whatsapp.parameters == ("student_name", "date", "school")


def test_demo_hindi_attendance_alert_is_two_ucs2_segments(demo: Any) -> None:
    r = demo.templates.render(
        "greenwood",
        "attendance_alert",
        Channel.SMS,
        {"student_name": "Asha", "date": "2026-12-02", "school": "Greenwood High"},
        "hi-IN",
    )
    assert r.text == "प्रिय अभिभावक, Asha आज (2026-12-02) विद्यालय में अनुपस्थित रहे। Greenwood High"
    assert (r.segments.encoding, r.segments.characters, r.segments.segments) == ("UCS-2", 78, 2)
    assert r.parameters == ("Asha", "2026-12-02", "Greenwood High")


def test_demo_english_attendance_alert_is_one_gsm7_segment(demo: Any) -> None:
    r = demo.templates.render(
        "riverside",
        "attendance_alert",
        Channel.SMS,
        {"student_name": "Asha", "date": "2026-12-02", "school": "Riverside School"},
        None,
    )
    assert r.text == "Dear parent, Asha was absent today (2026-12-02). Riverside School"
    assert (r.segments.encoding, r.segments.characters, r.segments.segments) == ("GSM-7", 65, 1)


def test_demo_fee_reminder_email_escapes_the_html(demo: Any) -> None:
    r = demo.templates.render(
        "sunrise",
        "fee_reminder",
        Channel.EMAIL,
        {
            "student_name": "Asha",
            "amount": "₹1,500",
            "due_date": "2026-12-10",
            "pay_link": "https://pay.example/p?a=1&b=2",
            "school": "Sunrise Academy",
        },
        "en",
    )
    assert r.subject == "Fee reminder: ₹1,500 due on 2026-12-10 for Asha"
    assert r.text.startswith("Dear parent,\n\nThe fee of ₹1,500 for Asha is due on 2026-12-10.")
    assert r.text.endswith(
        "You can pay online at https://pay.example/p?a=1&b=2.\n\nThank you,\nSunrise Academy"
    )
    assert r.html is not None
    assert '<a href="https://pay.example/p?a=1&amp;b=2">Pay online</a>' in r.html
