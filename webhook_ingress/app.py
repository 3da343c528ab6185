"""The webhook ingress: verify, produce to Kafka, answer 2xx only after the broker's ack.

Nothing else happens here. A provider that gets anything but 2xx retries the
same delivery later, so every failure to persist is a 503, never a 200 that
loses the payment confirmation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.kafka import AsyncProducer, DeliveryFailedError, event_headers, producer_config
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import RAW_WEBHOOKS
from schemas.codec import Codec, make_codec
from schemas.events import RawWebhook, encode_event
from webhook_ingress.decision import Rejection, accept, check_headers, check_route

log = structlog.get_logger("webhook_ingress")


def _reject(rejection: Rejection, **context: Any) -> Response:
    if rejection.security:
        log.warning(
            "webhook.rejected",
            security_event=True,
            status=rejection.status,
            reason=rejection.reason,
            **context,
        )
    else:
        log.info("webhook.rejected", status=rejection.status, reason=rejection.reason, **context)
    return JSONResponse({"error": rejection.reason}, status_code=rejection.status)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` (chunked bodies have no length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class Ingress:
    def __init__(self, settings: Settings, tenants: TenantDirectory, codec: Codec) -> None:
        self.settings = settings
        self.tenants = tenants
        self.codec = codec
        self.producer: AsyncProducer | None = None

    def start(self) -> None:
        self.producer = AsyncProducer(
            producer_config(
                self.settings,
                "webhook-ingress",
                **{
                    "message.timeout.ms": self.settings.ingress_produce_timeout_ms,
                    "linger.ms": self.settings.ingress_linger_ms,
                },
            )
        )

    def stop(self) -> None:
        if self.producer is not None:
            self.producer.close()

    async def receive(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        tenant = request.path_params["tenant"]
        context = {
            "provider": provider,
            "tenant": tenant,
            "remote_addr": request.client.host if request.client else None,
        }
        route = check_route(provider, tenant, self.tenants)
        if isinstance(route, Rejection):
            return _reject(route, **context)
        headers = {k.lower(): v for k, v in request.headers.items()}
        limit = self.settings.ingress_max_body_bytes
        rejection = check_headers(headers, limit)
        if rejection is not None:
            return _reject(rejection, **context)
        body = await _read_limited(request, limit)
        if body is None:
            return _reject(Rejection(413, f"body over {limit} bytes"), **context)
        outcome = accept(provider, tenant, route, headers, body)
        if isinstance(outcome, Rejection):
            return _reject(outcome, **context)
        return await self._persist(outcome, context)

    async def _persist(self, event: RawWebhook, context: dict[str, Any]) -> Response:
        assert self.producer is not None, "Ingress.start() runs in the app's lifespan"
        context["provider_event_id"] = event.provider_event_id
        started = time.perf_counter()
        delivery = self.producer.produce(
            RAW_WEBHOOKS,
            encode_event(self.codec, event),
            key=event.key(),
            headers=event_headers(event),
        )
        timeout = self.settings.ingress_produce_timeout_ms / 1000 + 1.0
        try:
            message = await asyncio.wait_for(delivery, timeout)
        except (DeliveryFailedError, TimeoutError) as exc:
            log.error("webhook.not_persisted", error=str(exc) or type(exc).__name__, **context)
            return JSONResponse(
                {"error": "could not persist the webhook; retry later"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        log.info(
            "webhook.accepted",
            partition=message.partition(),
            offset=message.offset(),
            ack_ms=round((time.perf_counter() - started) * 1000, 2),
            **context,
        )
        return JSONResponse({"status": "accepted", "event_id": event.header.event_id})

    async def ready(self, _request: Request) -> Response:
        assert self.producer is not None
        try:
            metadata = await asyncio.to_thread(self.producer.list_topics, 2.0)
        except Exception as exc:  # any failure to reach the cluster means "not ready"
            return JSONResponse({"status": "unavailable", "kafka": str(exc)}, status_code=503)
        if RAW_WEBHOOKS not in metadata.topics:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "kafka": f"topic {RAW_WEBHOOKS} missing; run hub topics apply",
                },
                status_code=503,
            )
        return JSONResponse({"status": "ready", "kafka": "ok"})


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings, tenants: TenantDirectory, codec: Codec | None = None
) -> Starlette:
    ingress = Ingress(settings, tenants, codec or make_codec(settings.schema_registry_url))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        ingress.start()
        log.info("ingress.started", tenants=len(tenants), url=settings.ingress_url)
        try:
            yield
        finally:
            ingress.stop()

    return Starlette(
        routes=[
            Route("/webhooks/{provider}/{tenant}", ingress.receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", ingress.ready, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
