"""A bulk send as the records it travels in: parts of at most PART_SIZE recipients.

Kafka refuses records over its message size (1 MB by default); 20,000
recipients with their variables are several. `bulk_parts` splits a bulk into
parts the messenger puts back together (each names its position in the whole),
so a module publishes a bulk of any size with one call:

    with EventProducer(settings) as producer:
        for part in bulk_parts(tenant, "attendance_alert", Channel.SMS, recipients):
            producer.publish(part)
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.events import BulkRecipient, BulkSendRequest, Channel, EventHeader, new_id

PART_SIZE = 1000


def bulk_parts(
    tenant: str,
    template: str,
    channel: Channel,
    recipients: Sequence[BulkRecipient],
    *,
    bulk_id: str | None = None,
    locale: str | None = None,
    batch_size: int = 100,
    part_size: int = PART_SIZE,
    source: str = "producer",
    correlation_id: str | None = None,
) -> list[BulkSendRequest]:
    if not recipients:
        raise ValueError("a bulk send needs at least one recipient")
    if part_size < 1 or batch_size < 1:
        raise ValueError("part_size and batch_size must be at least 1")
    bulk_id = bulk_id or f"bulk_{new_id()[:16]}"
    header = EventHeader.new(
        BulkSendRequest.EVENT_TYPE, tenant, source=source, correlation_id=correlation_id
    )
    chunks = [recipients[i : i + part_size] for i in range(0, len(recipients), part_size)]
    return [
        BulkSendRequest(
            header=header.caused(BulkSendRequest.EVENT_TYPE, source=source) if n > 1 else header,
            bulk_id=bulk_id,
            channel=channel,
            template=template,
            locale=locale,
            part=n,
            parts=len(chunks),
            first_index=(n - 1) * part_size,
            total_recipients=len(recipients),
            batch_size=batch_size,
            recipients=list(chunk),
        )
        for n, chunk in enumerate(chunks, start=1)
    ]
