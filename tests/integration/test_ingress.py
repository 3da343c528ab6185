"""The webhook ingress's answers, checked against what reached the raw topic."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from support import post_webhook, razorpay_signature, webhook_secret

from core.observe import TopicWatcher
from core.settings import Settings
from core.topics import RAW_WEBHOOKS
from hub.stack import HubStack
from schemas.events import RawWebhook

pytestmark = [pytest.mark.kafka, pytest.mark.stack]


def body_for(event_id: str) -> bytes:
    payload = {
        "entity": "event",
        "event": "payment.captured",
        "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": f"pay_{event_id}", "order_id": "order_x"}}},
        "created_at": 1767225600,
    }
    return json.dumps(payload).encode()


def new_id() -> str:
    return f"evt_{secrets.token_hex(7)}"


def header_id(raw: RawWebhook) -> str | None:
    """The unsigned X-Razorpay-Event-Id the test sent: kept on the record as information."""
    return raw.http_headers.get("x-razorpay-event-id")


def test_signed_webhook_is_on_the_raw_topic_before_the_200(
    hub_settings: Settings, stack: HubStack
) -> None:
    event_id = new_id()
    body = body_for(event_id)
    with TopicWatcher(hub_settings, [RAW_WEBHOOKS]) as watch:
        response = post_webhook(
            hub_settings,
            body,
            signature=razorpay_signature(body, webhook_secret(hub_settings)),
            event_id=event_id,
        )
        assert response.status_code == 200, response.text
        raw = watch.wait_for(RawWebhook, lambda r: header_id(r) == event_id, timeout=5)[0]
    assert raw.body == body  # the exact bytes the signature covers
    # Keyed by the signed body: event, payment and creation time (providers/razorpay.py).
    assert raw.provider_event_id == f"payment.captured:pay_{event_id}:1767225600"
    assert "x-razorpay-signature" not in raw.http_headers
    assert raw.header.tenant == "greenwood"
    assert raw.provider_event_type == "payment.captured"
    assert response.json()["event_id"] == raw.header.event_id


def test_rejected_webhooks_get_precise_statuses_and_produce_nothing(
    hub_settings: Settings, stack: HubStack
) -> None:
    secret = webhook_secret(hub_settings)
    rejected: dict[str, int] = {}

    def attempt(expected: int, body: bytes | None = None, **kwargs: object) -> None:
        event_id = new_id()
        content = body if body is not None else body_for(event_id)
        response = post_webhook(hub_settings, content, event_id=event_id, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == expected, (kwargs, response.text)
        assert "error" in response.json()
        rejected[event_id] = expected

    with TopicWatcher(hub_settings, [RAW_WEBHOOKS]) as watch:
        good = body_for("x")
        attempt(401, signature=razorpay_signature(good, "not-the-secret"), body=good)
        attempt(401, signature=None)
        tampered = bytearray(good)
        tampered[10] ^= 0x01  # one byte of the signed body changed
        attempt(401, signature=razorpay_signature(good, secret), body=bytes(tampered))
        attempt(
            415, signature=razorpay_signature(good, secret), body=good, content_type="text/plain"
        )
        big = b'{"pad": "' + b"x" * (hub_settings.ingress_max_body_bytes + 1) + b'"}'
        attempt(413, signature=razorpay_signature(big, secret), body=big)
        not_json = b"{not json"
        attempt(400, signature=razorpay_signature(not_json, secret), body=not_json)
        attempt(404, signature=razorpay_signature(good, secret), body=good, tenant="nobody")
        attempt(404, signature=razorpay_signature(good, secret), body=good, provider="nosuch")

        # A good webhook after them all: once it is on the topic, the bad ones would be too.
        marker = new_id()
        marker_body = body_for(marker)
        ok = post_webhook(
            hub_settings,
            marker_body,
            signature=razorpay_signature(marker_body, secret),
            event_id=marker,
        )
        assert ok.status_code == 200
        watch.wait_for(RawWebhook, lambda r: header_id(r) == marker, timeout=5)
        watch.settle(0.5)
        assert watch.find(RawWebhook, lambda r: header_id(r) in rejected) == []
    assert sorted(set(rejected.values())) == [400, 401, 404, 413, 415]


def test_oversized_chunked_body_is_refused_while_streaming(
    hub_settings: Settings, stack: HubStack
) -> None:
    limit = hub_settings.ingress_max_body_bytes

    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(limit // 8192 + 2):
            yield b"x" * 8192

    response = httpx.post(
        f"{hub_settings.ingress_url}/webhooks/razorpay/greenwood",
        content=chunks(),
        headers={"Content-Type": "application/json", "X-Razorpay-Signature": "00"},
    )
    assert response.status_code == 413


def test_health_and_readiness(hub_settings: Settings, stack: HubStack) -> None:
    assert httpx.get(f"{hub_settings.ingress_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{hub_settings.ingress_url}/readyz")
    assert ready.status_code == 200 and ready.json()["kafka"] == "ok"
