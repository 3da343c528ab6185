"""Router stage: notification requests -> one command topic per provider."""

from __future__ import annotations

from typing import Any

import faust

from hub.tenants import TenantDirectory
from hub.topics import NOTIFICATION_REQUESTS
from processors.emit import Emit
from processors.routing import route
from processors.stage import Stage
from schemas.events import NotificationRequest, decode_as


def register(app: faust.App, stage: Stage, tenants: TenantDirectory) -> None:
    async def handle(value: bytes | None) -> list[Emit]:
        return [route(decode_as(stage.codec, value, NotificationRequest), tenants)]

    @app.agent(stage.topic(NOTIFICATION_REQUESTS), name="router")
    async def router(stream: Any) -> None:
        async for event in stream.events():
            await stage.process(event.message, handle(event.value))
