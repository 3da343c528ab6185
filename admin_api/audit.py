"""The audit trail: GET /v1/audit, every provider call and webhook, from hub.audit.v1.

The route reads through an injected reader (core.audit.read_audit in
production), so the app does not care where the records live.
"""

from __future__ import annotations

from confluent_kafka import KafkaException

from admin_api.endpoint import Call, Endpoint
from admin_api.errors import ApiError
from admin_api.models import AuditPage, AuditQuery


async def read_audit(call: Call) -> AuditPage:
    query = call.query_as(AuditQuery)
    try:
        records = await call.run(
            call.deps.audit_reader,
            call.deps.settings,
            tenant=query.tenant,
            provider=query.provider,
            status=query.status,
            since=query.since,
            limit=query.limit,
        )
    except (KafkaException, TimeoutError) as exc:
        raise ApiError(503, f"the audit trail could not be read: {exc}") from None
    return AuditPage(records=list(records), count=len(records))


ENDPOINTS = (
    Endpoint(
        "GET",
        "/v1/audit",
        "audit.list",
        "Read the audit trail",
        read_audit,
        "viewer",
        query=AuditQuery,
        response=AuditPage,
        errors=(503,),
        tag="audit",
        description="Provider calls and webhooks, filtered.",
    ),
)
