"""`/_sim/...`: read what providers received, queue faults, release held answers, pay orders,
(re)send webhooks."""

from __future__ import annotations

import asyncio
import json
import math
import time
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators.common import SimContext, app_root
from simulators.razorpay import rupees
from simulators.razorpay_webhooks import OUTCOMES, PayError, PayRequest
from simulators.state import FAULT_MODES, PROVIDERS, Fault

RESERVED_PARAMS = frozenset({"provider", "since_id", "path", "method"})
FAULT_KEYS = frozenset(
    {
        "provider",
        "mode",
        "status",
        "times",
        "retry_after",
        "delay_seconds",
        "match",
        "method",
        "tenant",
    }
)
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# The longest `GET /_sim/held?wait=` long-poll, and how often it looks.
MAX_HELD_WAIT = 60.0
HELD_POLL_SECONDS = 0.02
PAY_KEYS = frozenset(
    {"outcome", "method", "error_code", "error_description", "webhook_url", "email", "contact"}
)


class BadRequest(ValueError):
    pass


def fail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _number(data: dict[str, Any], key: str, default: float | None) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{key} must be a number")
    if not math.isfinite(value) or value < 0:
        raise BadRequest(f"{key} must be a finite number >= 0")
    return float(value)


def parse_fault(data: dict[str, Any]) -> Fault:
    unknown = sorted(set(data) - FAULT_KEYS)
    if unknown:
        raise BadRequest(f"unknown fault fields: {', '.join(unknown)}")
    provider, mode = data.get("provider"), data.get("mode", "status")
    if provider not in PROVIDERS:
        raise BadRequest(f"provider must be one of {', '.join(PROVIDERS)}")
    if mode not in FAULT_MODES:
        raise BadRequest(f"mode must be one of {', '.join(FAULT_MODES)}")
    status, times = data.get("status", 503), data.get("times", 1)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise BadRequest("status must be an HTTP status code")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise BadRequest("times must be an integer >= 1")
    match = data.get("match") or {}
    if not isinstance(match, dict):
        raise BadRequest("match must be an object of body fields")
    method = data.get("method")
    if method is not None and (not isinstance(method, str) or method.upper() not in HTTP_METHODS):
        raise BadRequest(f"method must be one of {', '.join(sorted(HTTP_METHODS))}")
    tenant = data.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise BadRequest("tenant must be a tenant id")
    return Fault(
        provider=provider,
        mode=mode,
        status=status,
        times=times,
        retry_after=_number(data, "retry_after", None),
        delay_seconds=_number(data, "delay_seconds", 0.0) or 0.0,
        match=match,
        method=method.upper() if method else None,
        tenant=tenant,
    )


def parse_pay(data: dict[str, Any]) -> PayRequest:
    unknown = sorted(set(data) - PAY_KEYS)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    outcome = data.get("outcome", "captured")
    if outcome not in OUTCOMES:
        raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
    fields: dict[str, Any] = {"outcome": outcome}
    for key in PAY_KEYS - {"outcome"}:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{key} must be a string")
        if value is not None:
            fields[key] = value
    return PayRequest(**fields)


def _resend_url(data: dict[str, Any]) -> str | None:
    url = data.get("webhook_url")
    if url is not None and not isinstance(url, str):
        raise BadRequest("webhook_url must be a string")
    return url


def _checkout_result(request: Request, ctx: SimContext, outcome: str | None, result: Any) -> str:
    order = ctx.state.orders[request.path_params["order_id"]]
    back = escape(f"{app_root(request)}/razorpay/checkout/{order.id}")
    title = "Payment successful" if outcome == "captured" else "Payment failed"
    delivery = result["webhook_status"] or escape(str(result["error"]))
    return (
        f"<!doctype html><html><body style='font-family: sans-serif'><h1>{title}</h1>"
        f"<p>{escape(rupees(order.amount, order.currency))} &middot; "
        f"payment <code>{escape(result['payment_id'])}</code></p>"
        f"<p>Webhook <code>{escape(result['event_id'])}</code> to "
        f"{escape(result['webhook_url'])}: {delivery}</p>"
        f'<p><a href="{back}">Back to checkout</a></p></body></html>'
    )


class Control:
    """The `/_sim` endpoints over one simulator context."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.state = ctx.state

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def list_requests(self, request: Request) -> Response:
        params = request.query_params
        provider = params.get("provider") or None
        try:
            since_id = int(params.get("since_id", "0"))
        except ValueError:
            return fail(400, "since_id must be an integer")
        match = {k: v for k, v in params.items() if k not in RESERVED_PARAMS}
        found = self.state.recorder.list(
            provider,
            since_id=since_id,
            match=match,
            path=params.get("path") or None,
            method=params.get("method") or None,
        )
        return JSONResponse({"requests": [r.to_dict() for r in found]})

    async def clear_requests(self, request: Request) -> Response:
        return JSONResponse({"cleared": self.state.recorder.clear()})

    async def add_fault(self, request: Request) -> Response:
        try:
            fault = self.state.faults.add(parse_fault(await _json_object(request)))
        except BadRequest as exc:
            return fail(400, str(exc))
        return JSONResponse({"fault": fault.to_dict()}, status_code=201)

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse({"faults": [f.to_dict() for f in self.state.faults.list()]})

    async def clear_faults(self, request: Request) -> Response:
        self.state.faults.clear()
        return JSONResponse({"status": "ok"})

    async def list_held(self, request: Request) -> Response:
        """Answers held by "hold" faults; with `wait=N`, long-poll up to N s for a first one."""
        provider = request.query_params.get("provider") or None
        try:
            wait = min(float(request.query_params.get("wait", "0")), MAX_HELD_WAIT)
        except ValueError:
            return fail(400, "wait must be a number of seconds")
        if not math.isfinite(wait) or wait < 0:
            return fail(400, "wait must be a finite number >= 0")
        deadline = time.monotonic() + wait
        held = self.state.held.list(provider)
        while not held and time.monotonic() < deadline:
            await asyncio.sleep(HELD_POLL_SECONDS)
            held = self.state.held.list(provider)
        return JSONResponse({"held": [h.summary() for h in held]})

    async def release_held(self, request: Request) -> Response:
        try:
            request_id = int(request.path_params["request_id"])
        except ValueError:
            return fail(400, "request_id must be an integer")
        if not self.state.held.release(request_id):
            return fail(404, f"request {request_id} is not held")
        return JSONResponse({"released": request_id})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"status": "ok"})

    async def get_order(self, request: Request) -> Response:
        order = self.state.orders.get(request.path_params["order_id"])
        if order is None:
            return fail(404, "order does not exist")
        return JSONResponse({**order.entity(), "tenant": order.tenant})

    async def pay(self, request: Request) -> Response:
        try:
            req = parse_pay(await _json_object(request))
            result = await self.ctx.webhooks.pay(request.path_params["order_id"], req)
        except BadRequest as exc:
            return fail(400, str(exc))
        except PayError as exc:
            return fail(exc.status, exc.message)
        return JSONResponse(result)

    async def checkout_submit(self, request: Request) -> Response:
        """The checkout page's Pay / Fail buttons (a form post); answers HTML."""
        form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
        outcome = form.get("outcome")
        try:
            req = parse_pay({"outcome": outcome})
            result = await self.ctx.webhooks.pay(request.path_params["order_id"], req)
        except (BadRequest, PayError) as exc:
            status = exc.status if isinstance(exc, PayError) else 400
            return HTMLResponse(
                f"<h1>Payment not made</h1><p>{escape(str(exc))}</p>", status_code=status
            )
        return HTMLResponse(_checkout_result(request, self.ctx, outcome, result))

    async def resend(self, request: Request) -> Response:
        try:
            url = _resend_url(await _json_object(request))
            result = await self.ctx.webhooks.resend(request.path_params["event_id"], url)
        except BadRequest as exc:
            return fail(400, str(exc))
        except PayError as exc:
            return fail(exc.status, exc.message)
        return JSONResponse(result)

    async def list_webhooks(self, request: Request) -> Response:
        return JSONResponse({"webhooks": [w.summary() for w in self.state.webhooks.values()]})

    async def list_effects(self, request: Request) -> Response:
        """What the providers did, whoever asked: every SMS created, every mail accepted,
        every order. What a fault suite counts ("sent once?") without going through
        the hub's own view of it."""
        sms = [
            {"account_sid": sid, **{k: m.resource[k] for k in ("sid", "to", "from", "body")}}
            for sid, messages in self.state.sms.items()
            for m in messages
        ]
        mails = [
            {
                "tenant": tenant,
                "msg_id": m.msg_id,
                "to": m.to_email,
                "subject": m.subject,
                "unique_args": m.unique_args,
            }
            for tenant, items in self.state.mails.items()
            for m in items
        ]
        orders = [
            {"id": o.id, "tenant": o.tenant, "receipt": o.receipt, "status": o.status}
            for o in self.state.orders.values()
        ]
        return JSONResponse({"sms": sms, "mails": mails, "orders": orders})


def routes(ctx: SimContext) -> list[BaseRoute]:
    c = Control(ctx)
    return [
        Route("/health", c.health, methods=["GET"]),
        Route("/requests", c.list_requests, methods=["GET"]),
        Route("/requests", c.clear_requests, methods=["DELETE"]),
        Route("/faults", c.add_fault, methods=["POST"]),
        Route("/faults", c.list_faults, methods=["GET"]),
        Route("/faults", c.clear_faults, methods=["DELETE"]),
        Route("/held", c.list_held, methods=["GET"]),
        Route("/held/{request_id}/release", c.release_held, methods=["POST"]),
        Route("/reset", c.reset, methods=["POST"]),
        Route("/effects", c.list_effects, methods=["GET"]),
        Route("/razorpay/orders/{order_id}", c.get_order, methods=["GET"]),
        Route("/razorpay/orders/{order_id}/pay", c.pay, methods=["POST"]),
        Route("/razorpay/orders/{order_id}/checkout", c.checkout_submit, methods=["POST"]),
        Route("/razorpay/webhooks", c.list_webhooks, methods=["GET"]),
        Route("/razorpay/webhooks/{event_id}/resend", c.resend, methods=["POST"]),
    ]
