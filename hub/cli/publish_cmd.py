"""`hub publish`: publish one typed event, as a module would (for operators and demos)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from hub.cli.common import console, fail, settings
from schemas.events import Event, EventHeader, Invoice, NotificationRequest, PaymentRequested

EVENTS: dict[str, type[Event]] = {
    "invoice": Invoice,
    "payment-request": PaymentRequested,
    "notification": NotificationRequest,
}


def _read(data: str) -> dict[str, Any]:
    text = (
        sys.stdin.read()
        if data == "-"
        else (Path(data[1:]).read_text() if data.startswith("@") else data)
    )
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"the event data is not JSON: {exc}")
    if not isinstance(body, dict):
        fail("the event data must be a JSON object")
    return body


def publish(
    event: str = typer.Argument(..., help=f"Event type: {', '.join(EVENTS)}."),
    data: str = typer.Argument(..., help="The event's fields as JSON, @file.json, or - for stdin."),
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant (school) id."),
    correlation_id: str = typer.Option(None, help="Flow id to continue [default: new]."),
) -> None:
    """Publish an event to its topic and wait for Kafka's acknowledgement.

    Example: hub publish invoice '{"invoice_id": "INV-1", "student_id": "S1",
    "student_name": "Rohan", "description": "Term 1", "amount_minor": 5000000,
    "parent": {"name": "Mrs. Sharma", "phone": "+919876543210"}}' --tenant greenwood
    """
    from producers import EventProducer, PublishError

    model = EVENTS.get(event)
    if model is None:
        fail(f"unknown event type {event!r}; choose one of: {', '.join(EVENTS)}")
    header = EventHeader.new(
        model.EVENT_TYPE, tenant, source="hub-cli", correlation_id=correlation_id
    )
    try:
        typed = model.model_validate({**_read(data), "header": header})
    except ValidationError as exc:
        fail(f"the {event} is not valid:\n{exc}")
    producer = EventProducer(settings(), client_id="hub-cli")
    try:
        message = producer.publish_and_wait(typed)
    except PublishError as exc:
        fail(f"{exc}. Is Kafka up (`hub kafka status`) and are topics applied?")
    console.print(
        f"published {event} to {message.topic()} partition {message.partition()} "
        f"offset {message.offset()} key {typed.key()} "
        f"(event {header.event_id}, correlation {header.correlation_id})"
    )
