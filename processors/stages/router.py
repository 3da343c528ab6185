"""Router stage: notification requests -> one command topic per provider."""

from __future__ import annotations

from confluent_kafka import Message

from core.kafka import Record
from core.tenants import TenantDirectory
from core.topics import NOTIFICATION_REQUESTS
from processors.emit import to_records
from processors.routing import route
from processors.runner import Stage, StepContext
from schemas.codec import Codec
from schemas.events import NotificationRequest, decode_as


def stage(tenants: TenantDirectory, codec: Codec) -> Stage:
    def step(_ctx: StepContext, msg: Message) -> list[Record]:
        request = decode_as(codec, msg.value(), NotificationRequest)
        return to_records(codec, [route(request, tenants)])

    return Stage("router", (NOTIFICATION_REQUESTS,), step)
