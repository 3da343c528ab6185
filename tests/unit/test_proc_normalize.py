"""processors.normalize: Razorpay webhooks to provider-neutral PaymentEvents."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from proc_support import (
    AMOUNT,
    CREATED_AT,
    ORDER_ID,
    PAYMENT_ID,
    TENANT,
    raw_webhook,
    webhook_body,
)

import providers
from processors.normalize import NormalizationError, expired, is_duplicate, normalize
from providers.razorpay import normalize_razorpay
from schemas.events import PaymentEvent, PaymentEventKind

FAILED_DESCRIPTION = "Payment failed due to insufficient funds in the account"


def test_captured_webhook_becomes_a_captured_payment_event() -> None:
    raw = raw_webhook(webhook_body("payment.captured"))

    event = normalize(raw)

    assert isinstance(event, PaymentEvent)
    assert event.kind is PaymentEventKind.CAPTURED
    assert event.provider == "razorpay"
    assert event.provider_event_id == "evt_R4z0rPaY0001"
    assert event.payment_id == PAYMENT_ID
    assert event.order_id == ORDER_ID
    assert event.amount_minor == AMOUNT
    assert event.currency == "INR"
    assert event.method == "upi"
    assert event.error_code is None
    assert event.error_description is None
    assert event.provider_created_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert event.provider_created_at == datetime.fromtimestamp(CREATED_AT, UTC)


def test_failed_webhook_carries_the_error_code_and_description() -> None:
    body = webhook_body(
        "payment.failed",
        method="card",
        error_code="BAD_REQUEST_ERROR",
        error_description=FAILED_DESCRIPTION,
    )

    event = normalize(raw_webhook(body))

    assert event is not None
    assert event.kind is PaymentEventKind.FAILED
    assert event.method == "card"
    assert event.error_code == "BAD_REQUEST_ERROR"
    assert event.error_description == FAILED_DESCRIPTION
    assert event.amount_minor == AMOUNT


def test_authorized_webhook_becomes_an_authorized_payment_event() -> None:
    event = normalize(raw_webhook(webhook_body("payment.authorized")))

    assert event is not None
    assert event.kind is PaymentEventKind.AUTHORIZED
    assert event.payment_id == PAYMENT_ID


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("payment.captured", PaymentEventKind.CAPTURED),
        ("payment.failed", PaymentEventKind.FAILED),
        ("payment.authorized", PaymentEventKind.AUTHORIZED),
    ],
)
def test_the_header_is_caused_by_the_raw_webhook(event_type: str, kind: PaymentEventKind) -> None:
    raw = raw_webhook(webhook_body(event_type))

    event = normalize(raw)

    assert event is not None
    assert event.kind is kind
    assert event.header.tenant == TENANT
    assert event.header.correlation_id == raw.header.correlation_id
    assert event.header.causation_id == raw.header.event_id
    assert event.header.event_id != raw.header.event_id
    assert event.header.source == "normalizer"
    assert event.header.event_type == f"payments.payment.{kind.lower()}"


def test_the_event_keeps_the_webhook_tenant_and_is_keyed_by_order() -> None:
    raw = raw_webhook(webhook_body(), tenant="riverside")

    event = normalize(raw)

    assert event is not None
    assert event.header.tenant == "riverside"
    assert event.key() == f"riverside:{ORDER_ID}"


def test_empty_optional_strings_become_none() -> None:
    body = webhook_body(method="", error_code="", error_description="")

    event = normalize(raw_webhook(body))

    assert event is not None
    assert (event.method, event.error_code, event.error_description) == (None, None, None)


def test_a_non_integer_created_at_leaves_provider_created_at_empty() -> None:
    event = normalize(raw_webhook(webhook_body(created_at="2026-01-01")))

    assert event is not None
    assert event.provider_created_at is None


def test_normalize_razorpay_takes_an_already_parsed_body() -> None:
    body = webhook_body("payment.captured")

    event = normalize_razorpay(raw_webhook(body), body)

    assert event is not None
    assert event.payment_id == PAYMENT_ID


@pytest.mark.parametrize(
    "event_type", ["order.paid", "refund.created", "refund.processed", "payment.dispute.created"]
)
def test_webhooks_the_hub_does_not_act_on_normalize_to_none(event_type: str) -> None:
    body = webhook_body("payment.captured")
    body["event"] = event_type

    assert normalize(raw_webhook(body)) is None


def test_order_paid_with_its_order_payload_is_ignored() -> None:
    body = webhook_body("payment.captured")
    body["event"] = "order.paid"
    body["contains"] = ["payment", "order"]
    body["payload"]["order"] = {"entity": {"id": ORDER_ID, "entity": "order", "status": "paid"}}

    assert normalize(raw_webhook(body)) is None


def test_a_body_without_an_event_field_is_ignored() -> None:
    body = webhook_body()
    del body["event"]

    assert normalize(raw_webhook(body)) is None


def _without(path: tuple[str, ...]) -> dict:
    body = copy.deepcopy(webhook_body("payment.captured"))
    node = body
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return body


@pytest.mark.parametrize(
    "path",
    [
        ("payload",),
        ("payload", "payment"),
        ("payload", "payment", "entity"),
        ("payload", "payment", "entity", "order_id"),
        ("payload", "payment", "entity", "amount"),
        ("payload", "payment", "entity", "id"),
        ("payload", "payment", "entity", "currency"),
    ],
    ids=".".join,
)
def test_a_payment_webhook_missing_a_required_part_is_a_normalization_error(
    path: tuple[str, ...],
) -> None:
    with pytest.raises(NormalizationError):
        normalize(raw_webhook(_without(path)))


@pytest.mark.parametrize(
    "payload",
    [None, [], "payment", {"payment": None}, {"payment": {"entity": None}}, {"payment": []}],
    ids=repr,
)
def test_a_payload_of_the_wrong_shape_is_a_normalization_error(payload: object) -> None:
    body = webhook_body()
    body["payload"] = payload

    with pytest.raises(NormalizationError):
        normalize(raw_webhook(body))


def test_an_entity_that_is_not_an_object_is_a_normalization_error() -> None:
    body = webhook_body()
    body["payload"]["payment"]["entity"] = ["pay_1"]

    with pytest.raises(NormalizationError, match="not an object"):
        normalize(raw_webhook(body))


@pytest.mark.parametrize("amount", [True, False, "5000000", 5000000.0, None], ids=repr)
def test_an_amount_that_is_not_an_integer_is_a_normalization_error(amount: object) -> None:
    with pytest.raises(NormalizationError, match="amount"):
        normalize(raw_webhook(webhook_body(amount=amount)))


@pytest.mark.parametrize("order_id", [None, 42, ["order_1"]], ids=repr)
def test_an_order_id_that_is_not_a_string_is_a_normalization_error(order_id: object) -> None:
    with pytest.raises(NormalizationError, match="order_id"):
        normalize(raw_webhook(webhook_body(order_id=order_id)))


@pytest.mark.parametrize("body", [b"not json", b"", b'{"event": ', b"\xff\xfe"], ids=repr)
def test_a_body_that_is_not_json_is_a_normalization_error(body: bytes) -> None:
    with pytest.raises(NormalizationError, match="not JSON"):
        normalize(raw_webhook(body))


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'"payment.captured"', b"42", b"null"])
def test_a_body_that_is_not_a_json_object_is_a_normalization_error(body: bytes) -> None:
    with pytest.raises(NormalizationError, match="not a JSON object"):
        normalize(raw_webhook(body))


def test_an_unknown_provider_is_a_normalization_error() -> None:
    raw = raw_webhook(webhook_body(), provider="nosuch")

    with pytest.raises(NormalizationError, match="nosuch"):
        normalize(raw)


def test_a_provider_that_sends_no_webhooks_is_a_normalization_error() -> None:
    raw = raw_webhook(webhook_body(), provider="gworkspace")

    with pytest.raises(NormalizationError, match="no normalizer for provider 'gworkspace'"):
        normalize(raw)


def test_normalization_error_is_a_value_error() -> None:
    assert issubclass(NormalizationError, ValueError)
    assert {"cashfree", "razorpay"} <= set(providers.with_webhooks())
    assert "gworkspace" not in providers.with_webhooks()
    webhooks = providers.get("razorpay").webhooks
    assert webhooks is not None and webhooks.normalize is normalize_razorpay


# --- dedup window -----------------------------------------------------------

RETENTION = 72 * 3600.0
T0 = 1_767_225_600.0


def test_a_webhook_never_seen_is_not_a_duplicate() -> None:
    assert is_duplicate(None, T0, RETENTION) is False


@pytest.mark.parametrize(
    ("age", "duplicate"),
    [
        (0.0, True),
        (1.0, True),
        (RETENTION - 0.001, True),
        (RETENTION, False),
        (RETENTION + 1, False),
    ],
)
def test_is_duplicate_only_within_the_retention_window(age: float, duplicate: bool) -> None:
    assert is_duplicate(T0, T0 + age, RETENTION) is duplicate


def test_expired_lists_exactly_the_entries_at_or_past_retention() -> None:
    entries = {
        "razorpay:greenwood:evt_new": T0 - 10,
        "razorpay:greenwood:evt_almost": T0 - RETENTION + 0.001,
        "razorpay:greenwood:evt_boundary": T0 - RETENTION,
        "razorpay:greenwood:evt_old": T0 - RETENTION - 3600,
    }

    assert sorted(expired(entries, T0, RETENTION)) == [
        "razorpay:greenwood:evt_boundary",
        "razorpay:greenwood:evt_old",
    ]


def test_expired_and_is_duplicate_agree_on_every_entry() -> None:
    entries = {f"k{i}": T0 - i * 3600.0 for i in range(0, 100)}

    gone = set(expired(entries, T0, RETENTION))

    for key, seen in entries.items():
        assert (key in gone) is (not is_duplicate(seen, T0, RETENTION))


def test_expired_of_nothing_is_nothing() -> None:
    assert expired({}, T0, RETENTION) == []
