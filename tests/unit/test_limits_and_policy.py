"""Rate-limit arithmetic (processors.limits) and account choice (processors.message_policy)."""

from __future__ import annotations

import tomllib

import pytest
from messenger_support import TENANT, TENANTS

from catalog.tenant_file import parse_tenants
from core.tenants import Tenant
from processors import limits
from processors.message_policy import candidates
from processors.messaging_config import ChannelPolicy, parse_messaging
from schemas.events import Channel


def test_a_bucket_allows_a_burst_of_one_seconds_worth_then_paces() -> None:
    bucket: limits.Bucket | limits.Wait = limits.Bucket.full(2.0)
    taken = []
    for _ in range(3):
        assert isinstance(bucket, limits.Bucket)
        bucket = bucket.take(2.0, 100.0)
        taken.append(bucket)
    assert isinstance(taken[0], limits.Bucket)
    assert isinstance(taken[1], limits.Bucket)
    assert taken[2] == limits.Wait(100.5, "the account's rate limit (2/s)")


def test_a_bucket_refills_with_time_up_to_its_burst() -> None:
    empty = limits.Bucket(0.0, 100.0)
    assert empty.level(4.0, 100.25) == 1.0
    assert empty.level(4.0, 200.0) == 4.0


def test_the_tenant_quota_counts_per_minute_and_per_day_and_says_until_when() -> None:
    usage = limits.TenantUsage.of({"minute": [10, 2], "day": [0, 5]}, 600.0)
    assert (usage.minute.count, usage.day.count) == (2, 5)
    assert usage.check(2, 100, 600.0) == limits.Wait(660.0, "the school's per-minute quota (2)")
    assert usage.check(3, 5, 600.0) == limits.Wait(86_400.0, "the school's daily quota (5)")
    assert usage.check(3, 6, 600.0) == limits.Allowed()
    later = limits.TenantUsage.of(usage.counted().dump(), 660.0)
    assert (later.minute.count, later.day.count) == (0, 6)  # a new minute, the same day


def test_the_recipient_limit_is_a_sliding_hour() -> None:
    sends = limits.recent_sends([0.0, 1000.0, 2000.0, 3000.0], 3601.0)
    assert sends == [1000.0, 2000.0, 3000.0]
    assert limits.check_recipient(sends, 3, 3601.0) == limits.Wait(
        4600.0, "at most 3 messages an hour to one recipient"
    )
    assert limits.check_recipient(sends, 4, 3601.0) == limits.Allowed()
    assert limits.check_recipient(sends, None, 3601.0) == limits.Allowed()


def policy(text: str) -> ChannelPolicy | None:
    return parse_messaging(tomllib.loads(text)).for_tenant(TENANT).policies.get(Channel.SMS)


@pytest.fixture
def tenant() -> Tenant:
    found = parse_tenants(tomllib.loads(TENANTS)).get(TENANT)
    assert found is not None
    return found


def test_routing_order_and_open_breakers_last(tenant: Tenant) -> None:
    ordered = candidates(tenant, Channel.SMS, None)
    assert [c.label for c in ordered] == ["twilio-primary", "twilio-backup"]
    opened = candidates(
        tenant, Channel.SMS, None, is_open=lambda _p, label: label == "twilio-primary"
    )
    assert [(c.label, c.open) for c in opened] == [
        ("twilio-backup", False),
        ("twilio-primary", True),
    ]
    assert [c.label for c in candidates(tenant, Channel.SMS, None, exclude={"twilio-primary"})] == [
        "twilio-backup"
    ]


def test_prefer_cost_puts_the_cheapest_first(tenant: Tenant) -> None:
    cheap = policy(f"""
[tenants.{TENANT}.policy.sms]
prefer = "cost"
[tenants.{TENANT}.policy.sms.accounts.twilio-primary]
cost_minor = 20
[tenants.{TENANT}.policy.sms.accounts.twilio-backup]
cost_minor = 15
""")
    ordered = candidates(tenant, Channel.SMS, cheap)
    assert [(c.label, c.cost_minor) for c in ordered] == [
        ("twilio-backup", 15),
        ("twilio-primary", 20),
    ]


def test_weights_split_messages_deterministically(tenant: Tenant) -> None:
    split = policy(f"""
[tenants.{TENANT}.policy.sms.accounts.twilio-primary]
weight = 3
[tenants.{TENANT}.policy.sms.accounts.twilio-backup]
weight = 1
""")
    firsts = [
        candidates(tenant, Channel.SMS, split, message_key=f"m{n}")[0].label for n in range(400)
    ]
    share = firsts.count("twilio-primary") / len(firsts)
    assert 0.65 < share < 0.85  # 3:1, by a hash of the message key
    again = candidates(tenant, Channel.SMS, split, message_key="m7")[0].label
    assert again == firsts[7]


def test_a_tenants_rate_replaces_the_providers_documented_one(tenant: Tenant) -> None:
    own = policy(f"""
[tenants.{TENANT}.policy.sms.accounts.twilio-primary]
rate_per_second = 100
""")
    by_label = {c.label: c.rate_per_second for c in candidates(tenant, Channel.SMS, own)}
    assert by_label == {"twilio-primary": 100.0, "twilio-backup": 1.0}
