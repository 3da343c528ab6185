"""The messenger's steps: a request, a send result, a receipt, the clock. No I/O.

Each takes the tenant partition's table (processors.state) and returns what to
emit; the stage (processors.stages.messenger) commits both in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from processors import limits
from processors.emit import Emit
from processors.message_policy import Candidate
from processors.messaging import (
    FINAL,
    MessageState,
    MessageStatus,
    MessengerContext,
    account_error,
    finish,
    link_key,
    load,
    next_candidates,
    route,
    save,
    story,
)
from processors.state import Table
from processors.templates import TemplateError
from schemas.events import (
    ConnectorResult,
    DeliveryReceipt,
    MessageStep,
    NotificationRequest,
    ReceiptStatus,
    ResultStatus,
)

log = structlog.get_logger("processors.messenger")

# (tenant, provider, label) -> is that account's circuit breaker open?
OpenCheck = Callable[[str, str, str], bool]
CIRCUIT_OPEN = "circuit_open"  # connectors.executor's error code for a refused call
# Final messages are kept this long (a late receipt still finds its story), then forgotten.
KEEP_FINAL_SECONDS = 2 * 86_400.0


def parked_key(tenant: str, provider: str, ref: str) -> str:
    return f"p:{tenant}:{provider}:{ref}"


# --- a request -------------------------------------------------------------------


def new_message(request: NotificationRequest, ctx: MessengerContext, now: float) -> MessageState:
    """The message a request asks for, its template rendered. TemplateError: not sendable."""
    tenant = request.header.tenant
    state = MessageState(
        key=request.idempotency_key,
        message_id=request.notification_id,
        tenant=tenant,
        channel=request.channel,
        to=request.to,
        to_name=request.to_name,
        subject=request.subject,
        text=request.text,
        html=request.html,
        template=request.template,
        locale=request.locale,
        variables=dict(request.variables),
        bulk_id=request.bulk_id,
        requested_at=now,
        header=request.header.model_dump(mode="json"),
    )
    if request.template:
        render_into(state, ctx)
    return state


def render_into(state: MessageState, ctx: MessengerContext) -> None:
    assert state.template is not None
    tenant = ctx.tenants.get(state.tenant)
    # The school's name is every template's to use; the caller's own value wins.
    variables = {"school": tenant.name, **state.variables} if tenant else state.variables
    rendered = ctx.config.templates.render(
        state.tenant, state.template, state.channel, variables, state.locale
    )
    template = rendered.template
    state.subject, state.text, state.html = rendered.subject, rendered.text, rendered.html
    state.parameters = list(rendered.parameters)
    state.provider_templates = dict(template.provider_templates)
    state.dlt_template_id, state.dlt_entity_id = template.dlt_template_id, template.dlt_entity_id
    state.locale = template.locale
    state.segments = rendered.segments.segments if rendered.segments is not None else 1


def on_request(
    table: Table, request: NotificationRequest, ctx: MessengerContext, now: float
) -> list[Emit]:
    """Raises TemplateError for a request that names an unknown template or lacks a
    variable: the runner dead-letters it with the reason, before any provider call."""
    if load(table, request.header.tenant, request.idempotency_key) is not None:
        log.info("message.duplicate_request", key=request.idempotency_key)
        return []
    state = new_message(request, ctx, now)
    detail = f"template {state.template} ({state.locale})" if state.template else ""
    emits = [story(state, MessageStep.REQUESTED, detail)]
    emits += dispatch(table, state, ctx, now)
    save(table, state)
    return emits


# --- sending under the limits ------------------------------------------------------


def dispatch(table: Table, state: MessageState, ctx: MessengerContext, now: float) -> list[Emit]:
    """Send the message through its best remaining account, or hold it at a limit."""
    found = next_candidates(state, ctx)
    if not found:
        first = not state.attempts
        status = MessageStatus.REJECTED if first else MessageStatus.FAILED
        finish(state, status, now)
        why = (
            f"no {state.channel.value} provider account is configured"
            if first
            else "no other provider account is left to try"
        )
        return [story(state, MessageStep.REJECTED if first else MessageStep.FAILED, why)]
    chosen = found[0]
    verdict = _check_limits(table, state, chosen, ctx, now)
    if isinstance(verdict, limits.Wait):
        return hold(state, verdict, now)
    _count(table, state, chosen, now)
    return route(state, chosen, len(found) > 1, ctx, now)


def hold(state: MessageState, wait: limits.Wait, now: float) -> list[Emit]:
    announce = state.status is not MessageStatus.WAITING or state.wait_reason != wait.reason
    state.status = MessageStatus.WAITING
    state.wait_until, state.wait_reason = wait.until, wait.reason
    if not announce:
        return []
    return [story(state, MessageStep.WAITING, f"{wait.reason}: waits {wait.until - now:.1f}s")]


def _check_limits(
    table: Table, state: MessageState, chosen: Candidate, ctx: MessengerContext, now: float
) -> limits.Verdict:
    own = ctx.config.for_tenant(state.tenant).limits
    usage = limits.TenantUsage.of(table.get(f"u:{state.tenant}"), now)
    verdict = usage.check(own.per_minute, own.per_day, now)
    if isinstance(verdict, limits.Wait):
        return verdict
    sends = limits.recent_sends(table.get(f"c:{state.tenant}:{state.to}"), now)
    verdict = limits.check_recipient(sends, own.per_recipient_per_hour, now)
    if isinstance(verdict, limits.Wait) or chosen.rate_per_second is None:
        return verdict
    bucket = _bucket(table, state.tenant, chosen)
    taken = bucket.take(chosen.rate_per_second, now)
    return taken if isinstance(taken, limits.Wait) else limits.Allowed()


def _bucket(table: Table, tenant: str, chosen: Candidate) -> limits.Bucket:
    stored = table.get(f"a:{tenant}:{chosen.label}")
    if isinstance(stored, list) and len(stored) == 2:
        return limits.Bucket(float(stored[0]), float(stored[1]))
    return limits.Bucket.full(chosen.rate_per_second or 1.0)


def _count(table: Table, state: MessageState, chosen: Candidate, now: float) -> None:
    usage = limits.TenantUsage.of(table.get(f"u:{state.tenant}"), now).counted()
    table.set(f"u:{state.tenant}", usage.dump())
    recipient = f"c:{state.tenant}:{state.to}"
    table.set(recipient, [*limits.recent_sends(table.get(recipient), now), now])
    if chosen.rate_per_second is not None:
        taken = _bucket(table, state.tenant, chosen).take(chosen.rate_per_second, now)
        if isinstance(taken, limits.Bucket):
            table.set(f"a:{state.tenant}:{chosen.label}", [taken.tokens, taken.at])


def fail_over(
    table: Table, state: MessageState, why: str, ctx: MessengerContext, now: float
) -> list[Emit]:
    emits = [story(state, MessageStep.FAILING_OVER, why, state.current)]
    return emits + dispatch(table, state, ctx, now)


# --- a send's result -----------------------------------------------------------------


def on_result(
    table: Table, result: ConnectorResult, ctx: MessengerContext, now: float
) -> list[Emit]:
    state = load(table, result.header.tenant, result.context.get("message", ""))
    attempt_n = result.context.get("attempt", "")
    if state is None or not attempt_n.isdigit() or int(attempt_n) > len(state.attempts):
        log.warning("message.unknown_result", key=result.idempotency_key)
        return []
    attempt = state.attempts[int(attempt_n) - 1]
    if attempt.status != "routed":
        return []  # this attempt's result was applied already
    if result.status is ResultStatus.DELIVERED:
        emits = _sent(table, state, attempt.n, result, now)
    else:
        emits = _send_failed(table, state, attempt.n, result, ctx=ctx, now=now)
    save(table, state)
    return emits


def _sent(
    table: Table, state: MessageState, n: int, result: ConnectorResult, now: float
) -> list[Emit]:
    attempt = state.attempts[n - 1]
    attempt.status, attempt.provider_ref, attempt.sent_at = "sent", result.provider_ref, now
    if state.status in FINAL:
        return [story(state, MessageStep.SENT, "accepted after the message was settled", attempt)]
    emits: list[Emit] = []
    if attempt.receipts:
        state.status = MessageStatus.SENT
        emits.append(story(state, MessageStep.SENT, "accepted; waiting for its receipt", attempt))
    else:
        finish(state, MessageStatus.ACCEPTED, now)
        detail = f"accepted ({attempt.provider} reports no delivery: final)"
        emits.append(story(state, MessageStep.SENT, detail, attempt))
    if result.provider_ref:
        table.set(link_key(state.tenant, attempt.provider, result.provider_ref), state.key)
        parked = table.pop(parked_key(state.tenant, attempt.provider, result.provider_ref)) or []
        for receipt in parked:
            emits += apply_receipt(table, state, DeliveryReceipt.model_validate(receipt), None, now)
    return emits


def _send_failed(
    table: Table,
    state: MessageState,
    n: int,
    result: ConnectorResult,
    *,
    ctx: MessengerContext,
    now: float,
) -> list[Emit]:
    attempt = state.attempts[n - 1]
    code = f" [{result.error_code}]" if result.error_code else ""
    attempt.status, attempt.error = "failed", f"{result.error_message or 'failed'}{code}"
    emits = [story(state, MessageStep.SEND_FAILED, attempt.error, attempt)]
    if state.status in FINAL or n != len(state.attempts):
        return emits
    if result.retryable:
        why = "breaker open" if result.error_code == CIRCUIT_OPEN else "provider unavailable"
        return emits + fail_over(table, state, f"{why}: {attempt.error}", ctx, now)
    if account_error(attempt.provider, result.error_code):
        return emits + fail_over(table, state, f"account unusable: {attempt.error}", ctx, now)
    finish(state, MessageStatus.FAILED, now)
    return [
        *emits,
        story(state, MessageStep.FAILED, f"{attempt.provider} refused it: {attempt.error}"),
    ]


# --- a receipt ---------------------------------------------------------------------


def on_receipt(
    table: Table, receipt: DeliveryReceipt, ctx: MessengerContext, now: float
) -> list[Emit]:
    tenant = receipt.header.tenant
    key = table.get(link_key(tenant, receipt.provider, receipt.provider_ref))
    state = load(table, tenant, key) if isinstance(key, str) else None
    if state is None:
        # Before its send's result (receipts race results): kept until the link exists.
        parked = parked_key(tenant, receipt.provider, receipt.provider_ref)
        table.set(parked, [*(table.get(parked) or []), receipt.model_dump(mode="json")])
        return []
    emits = apply_receipt(table, state, receipt, ctx, now)
    save(table, state)
    return emits


def apply_receipt(
    table: Table,
    state: MessageState,
    receipt: DeliveryReceipt,
    ctx: MessengerContext | None,
    now: float,
) -> list[Emit]:
    attempt = next(
        (a for a in state.attempts if a.provider_ref == receipt.provider_ref), state.current
    )
    error = f" {receipt.error_code}" if receipt.error_code else ""
    text = f"{receipt.provider_status}{error}" + (
        f": {receipt.error_description}" if receipt.error_description else ""
    )
    emits = [story(state, MessageStep.RECEIPT, text, attempt)]
    if receipt.status is ReceiptStatus.DELIVERED and attempt is not None:
        attempt.status = "delivered"
        if state.status is not MessageStatus.DELIVERED:
            finish(state, MessageStatus.DELIVERED, now)
            emits.append(story(state, MessageStep.DELIVERED, f"by {attempt.provider}", attempt))
        return emits
    if receipt.status is not ReceiptStatus.UNDELIVERED or attempt is None:
        return emits
    attempt.status, attempt.error = "undelivered", text
    latest = attempt is state.current
    if not latest or state.status in FINAL - {MessageStatus.ACCEPTED}:
        return emits
    return emits + receipt_failover(table, state, f"receipt says undelivered ({text})", ctx, now)


def receipt_failover(
    table: Table, state: MessageState, why: str, ctx: MessengerContext | None, now: float
) -> list[Emit]:
    """Accepted but not delivered: once per message, through the next account."""
    if state.receipt_failover_used or ctx is None or not next_candidates(state, ctx):
        finish(state, MessageStatus.FAILED, now)
        return [story(state, MessageStep.FAILED, why, state.current)]
    state.receipt_failover_used = True
    return fail_over(table, state, why, ctx, now)


# --- the clock -------------------------------------------------------------------------


def due(stored: dict[str, Any], now: float, deadline: float) -> bool:
    """Cheap look at a stored message: does the clock have work for it?"""
    status = stored.get("status")
    if status == MessageStatus.WAITING:
        return float(stored.get("wait_until") or 0) <= now
    if status == MessageStatus.SENT and not stored.get("receipt_failover_used"):
        attempts = stored.get("attempts") or []
        sent_at = attempts[-1].get("sent_at") if attempts else None
        return sent_at is not None and float(sent_at) + deadline <= now
    return False


def tick(table: Table, ctx: MessengerContext, now: float) -> list[Emit]:
    """Release held messages whose wait is over (oldest first) and fail over messages
    whose receipt is overdue; forget final messages after KEEP_FINAL_SECONDS."""
    deadline = ctx.receipt_deadline_seconds
    work, stale = [], []
    for key, stored in table.items():
        if not key.startswith("m:") or not isinstance(stored, dict):
            continue
        if due(stored, now, deadline):
            work.append(MessageState.model_validate(stored))
        elif stored.get("finished_at") and float(stored["finished_at"]) + KEEP_FINAL_SECONDS < now:
            stale.append(MessageState.model_validate(stored))
    emits: list[Emit] = []
    for state in sorted(work, key=lambda s: (s.requested_at, s.bulk_index or 0)):
        if state.status is MessageStatus.WAITING:
            emits += dispatch(table, state, ctx, now)
        else:
            why = f"no receipt within {deadline:g}s"
            emits += receipt_failover(table, state, why, ctx, now)
        save(table, state)
    for state in stale:
        forget(table, state)
    return emits


def forget(table: Table, state: MessageState) -> None:
    table.delete(f"m:{state.tenant}:{state.key}")
    for attempt in state.attempts:
        if attempt.provider_ref:
            table.delete(link_key(state.tenant, attempt.provider, attempt.provider_ref))


__all__ = ["TemplateError", "dispatch", "on_receipt", "on_request", "on_result", "tick"]
