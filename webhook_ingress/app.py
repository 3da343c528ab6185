"""The webhook ingress: verify, produce to Kafka, answer 2xx only after the broker's ack.

Nothing else happens here. A provider that gets anything but 2xx retries the
same delivery later, so every failure to persist is a 503, never a 200 that
loses the payment confirmation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from core.audit import AuditSink, Exchange, KafkaAuditSink, inbound_record
from core.kafka import AsyncProducer, DeliveryFailedError, event_headers, producer_config
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import RAW_WEBHOOKS
from providers.spec import Delivery, Webhooks
from schemas.codec import Codec, make_codec
from schemas.events import AuditOutcome, RawWebhook, encode_event, utcnow
from webhook_ingress.decision import (
    SOURCE,
    Rejection,
    accept,
    acknowledgement,
    answer_challenge,
    body_limit,
    check_headers,
    check_route,
    webhooks_of,
)
from webhook_ingress.limits import Buckets, Limit, retry_after

log = structlog.get_logger("webhook_ingress")


def _unavailable() -> Response:
    return JSONResponse({"status": "unavailable"}, status_code=503)


@dataclass
class _Seen:
    """What one delivery showed before it was answered: for its audit record."""

    body: bytes = b""
    event: RawWebhook | None = None  # set once the delivery is verified and accepted
    reason: str | None = None  # a refusal's precise reason (the answer may be vaguer)


def _reject(rejection: Rejection, seen: _Seen, **context: Any) -> Response:
    """The sender learns the public reason (every 404 is the same); the log and the
    audit trail keep the precise one."""
    seen.reason = rejection.reason
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
    return JSONResponse({"error": rejection.public}, status_code=rejection.status)


def _too_many(retry: float, scope: str, **context: Any) -> Response:
    log.info("webhook.rate_limited", limit=scope, **context)
    return JSONResponse(
        {"error": "too many requests; retry later"},
        status_code=429,
        headers={"Retry-After": str(retry_after(retry))},
    )


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


def _outcome(status: int) -> AuditOutcome:
    if status < 300:
        return AuditOutcome.ACCEPTED
    return AuditOutcome.ERROR if status >= 500 else AuditOutcome.REFUSED


def _reason(response: Response) -> str | None:
    if response.status_code < 300:
        return None
    try:
        answer = orjson.loads(bytes(response.body))
    except orjson.JSONDecodeError:
        return None
    return str(answer.get("error")) if isinstance(answer, dict) else None


class Ingress:
    def __init__(
        self,
        settings: Settings,
        tenants: TenantDirectory,
        codec: Codec,
        audit: AuditSink | None = None,
    ) -> None:
        self.settings = settings
        self.tenants = tenants
        self.codec = codec
        self.producer: AsyncProducer | None = None
        self.audit = audit
        self._owns_audit = audit is None
        buckets = settings.ingress_rate_buckets
        self.by_address = Buckets(
            Limit(settings.ingress_address_rate, settings.ingress_address_burst), buckets
        )
        self.by_tenant = Buckets(
            Limit(settings.ingress_tenant_rate, settings.ingress_tenant_burst), buckets
        )

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
        if self.audit is None:
            self.audit = KafkaAuditSink(self.settings, self.codec, client_id=f"{SOURCE}-audit")

    def stop(self) -> None:
        if self.producer is not None:
            self.producer.close()
        if self.audit is not None and self._owns_audit:
            self.audit.close()

    async def receive(self, request: Request) -> Response:
        """Every delivery answered, accepted or refused, goes to the audit trail."""
        started, at, seen = time.perf_counter(), utcnow(), _Seen()
        limited = self._limited(request)
        if limited is not None:
            # Not audited: a flood would otherwise be copied, request by request, to Kafka.
            return limited
        response = await self._receive(request, seen)
        self._audit(request, seen, response, (time.perf_counter() - started) * 1000, at)
        return response

    def _limited(self, request: Request) -> Response | None:
        """A 429 when the source address or the tenant is over its rate, before the body
        is read or any tenant looked up (so it tells nothing about which tenants exist)."""
        now = time.monotonic()
        address = request.client.host if request.client else "-"
        tenant = str(request.path_params["tenant"])[:64]
        context = {"provider": request.path_params["provider"], "tenant": tenant}
        wait = self.by_address.check(address, now)
        if wait:
            return _too_many(wait, "address", remote_addr=address, **context)
        wait = self.by_tenant.check(tenant, now)
        if wait:
            return _too_many(wait, "tenant", remote_addr=address, **context)
        return None

    def _audit(
        self, request: Request, seen: _Seen, response: Response, ms: float, at: datetime
    ) -> None:
        if self.audit is None:
            return
        tenant_id, event = str(request.path_params["tenant"])[:64], seen.event
        tenant = self.tenants.get(tenant_id)
        try:
            exchange = Exchange(
                method=request.method,
                url=str(request.url),
                request_headers=dict(request.headers),
                request_body=seen.body,
                status=response.status_code,
                response_headers=dict(response.headers),
                response_body=bytes(response.body),
                duration_ms=ms,
                at=at,
            )
            entry = inbound_record(
                tenant_id,
                exchange,
                provider=str(request.path_params["provider"]),
                operation=(event.provider_event_type if event else None) or "webhook",
                outcome=_outcome(response.status_code),
                source=SOURCE,
                body_limit=self.settings.audit_body_limit,
                correlation_id=event.header.correlation_id if event else None,
                provider_event_id=event.provider_event_id if event else None,
                account=event.account if event else None,
                error=seen.reason or _reason(response),
                secrets=tenant.secret_values() if tenant else (),
            )
            self.audit.record(entry)
        except Exception as exc:  # the audit trail records the answer; it never changes it
            log.warning("audit.not_recorded", error=f"{type(exc).__name__}: {exc}")

    async def _receive(self, request: Request, seen: _Seen) -> Response:
        provider = request.path_params["provider"]
        tenant = request.path_params["tenant"]
        context = {
            "provider": provider,
            "tenant": tenant,
            "remote_addr": request.client.host if request.client else None,
        }
        # A subscription check (Meta's GET hub.challenge) is answered here, before any
        # signature check, and never produced: it carries no event.
        query = dict(request.query_params)
        challenge = answer_challenge(provider, tenant, self.tenants, request.method, query)
        if challenge is not None:
            if challenge.status != 200:
                seen.reason = challenge.reason
                log.warning(
                    "webhook.challenge_refused",
                    security_event=True,
                    reason=challenge.reason,
                    **context,
                )
            else:
                log.info("webhook.challenge_answered", **context)
            return PlainTextResponse(challenge.body, status_code=challenge.status)
        route = check_route(provider, tenant, self.tenants, request.method)
        if isinstance(route, Rejection):
            return _reject(route, seen, **context)
        webhooks = webhooks_of(provider)
        assert webhooks is not None, "check_route admitted the provider"
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = await self._body(request, webhooks, headers)
        if isinstance(body, Rejection):
            return _reject(body, seen, **context)
        seen.body = body
        delivery = Delivery(
            method=request.method,
            url=str(request.url),
            query=dict(request.query_params),
            headers=headers,
            body=body,
            remote_addr=context["remote_addr"],
        )
        outcome = accept(provider, tenant, route, delivery)
        if isinstance(outcome, Rejection):
            return _reject(outcome, seen, **context)
        seen.event = outcome
        return await self._persist(outcome, context, acknowledgement(webhooks, outcome))

    async def _body(
        self, request: Request, webhooks: Webhooks, headers: Mapping[str, str]
    ) -> bytes | Rejection:
        """The body, within the provider's size limit and the deadline, or why not."""
        limit = body_limit(webhooks, self.settings.ingress_max_body_bytes)
        if webhooks.body_format != "query":
            rejection = check_headers(headers, limit, webhooks.body_format)
            if rejection is not None:
                return rejection
        deadline = self.settings.ingress_body_timeout_seconds
        try:
            # The whole body, however it trickles in: a slow sender holds one task this long.
            async with asyncio.timeout(deadline):
                body = await _read_limited(request, limit)
        except TimeoutError:
            return Rejection(408, f"body not received in {deadline:g} s")
        return body if body is not None else Rejection(413, f"body over {limit} bytes")

    async def _persist(
        self, event: RawWebhook, context: dict[str, Any], ack: Mapping[str, Any] | None = None
    ) -> Response:
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
        if ack is not None:
            return JSONResponse(dict(ack))
        return JSONResponse({"status": "accepted", "event_id": event.header.event_id})

    async def ready(self, _request: Request) -> Response:
        assert self.producer is not None
        try:
            metadata = await asyncio.to_thread(self.producer.list_topics, 2.0)
        except Exception as exc:  # any failure to reach the cluster means "not ready"
            # The broker's error names hosts and ports: logged, never told to the caller.
            log.warning("ingress.not_ready", error=f"{type(exc).__name__}: {exc}")
            return _unavailable()
        if RAW_WEBHOOKS not in metadata.topics:
            log.warning("ingress.not_ready", error=f"topic {RAW_WEBHOOKS} missing")
            return _unavailable()
        return JSONResponse({"status": "ready", "kafka": "ok"})


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings,
    tenants: TenantDirectory,
    codec: Codec | None = None,
    audit: AuditSink | None = None,
) -> Starlette:
    """`audit`: where every answered delivery is recorded (default: hub.audit.v1)."""
    ingress = Ingress(settings, tenants, codec or make_codec(settings.schema_registry_url), audit)

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
            Route("/webhooks/{provider}/{tenant}", ingress.receive, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", ingress.ready, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
