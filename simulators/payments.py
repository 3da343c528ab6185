"""What every payment gateway simulator shares: paying an order, and its callbacks.

Each gateway's simulator module (simulators/<gateway>.py) keeps its own orders
and defines `gateway(ctx) -> GatewaySim`; the app builds those first (into
`ctx.gateways`) so the module's `routes(ctx)` can serve the same store. The
control plane is the same for every gateway:

- `POST /_sim/payments/{provider}/orders/{order_id}/pay`   JSON `PayAttempt` fields
- `POST /_sim/payments/{provider}/orders/{order_id}/checkout`  the checkout page's form
- `GET  /_sim/payments/{provider}/orders/{order_id}`       the order as the gateway holds it
- `GET  /_sim/payments/callbacks[?provider=]`              every callback sent
- `POST /_sim/payments/callbacks/{callback_id}/resend`     the same bytes and headers again

A payment is made at the gateway first; its callback (signed the gateway's way)
is then posted to the hub. `send_callback=false` makes the payment without the
callback: the missed webhook the hub must find by polling.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any, Literal, Protocol, get_args
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators.state import random_id

PayOutcome = Literal["success", "failed", "cancelled", "timeout"]
PAY_OUTCOMES: tuple[PayOutcome, ...] = get_args(PayOutcome)
CALLBACK_TIMEOUT = 15.0


class PayError(Exception):
    """A pay request the gateway cannot honour; `status` is the control plane's answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PayAttempt:
    """What the payer does on the gateway's page (or phone, for M-Pesa)."""

    outcome: PayOutcome = "success"
    # Less than the order's amount: a partial payment; None: the full amount.
    amount_minor: int | None = None
    currency: str | None = None  # None: the order's currency
    method: str | None = None  # the gateway's own name for it ("card", "upi", "mpesa")
    send_callback: bool = True
    callback_url: str | None = None  # None: where the gateway would send it

    @classmethod
    def parse(cls, data: dict[str, Any]) -> PayAttempt:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise PayError(400, f"unknown fields: {', '.join(unknown)}")
        outcome = data.get("outcome", "success")
        if outcome not in PAY_OUTCOMES:
            raise PayError(400, f"outcome must be one of {', '.join(PAY_OUTCOMES)}")
        amount = data.get("amount_minor")
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
            raise PayError(400, "amount_minor must be an integer")
        send = data.get("send_callback", True)
        if not isinstance(send, bool):
            raise PayError(400, "send_callback must be true or false")
        texts = {}
        for name in ("currency", "method", "callback_url"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise PayError(400, f"{name} must be a string")
            texts[name] = value
        return cls(outcome=outcome, amount_minor=amount, send_callback=send, **texts)


@dataclass
class CallbackDelivery:
    url: str
    status: int | None
    error: str | None
    sent_at: float


@dataclass
class SentCallback:
    """One callback as the gateway sent it: replayed byte for byte by a resend."""

    provider: str
    tenant: str
    order_id: str
    payment_id: str
    event: str
    url: str
    body: bytes
    headers: dict[str, str]
    method: str = "POST"
    id: str = field(default_factory=lambda: random_id("cb_"))
    deliveries: list[CallbackDelivery] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("body", "deliveries")},
            "body": self.body.decode("utf-8", errors="replace"),
            "deliveries": [asdict(d) for d in self.deliveries],
        }


class GatewaySim(Protocol):
    name: str

    def order(self, order_id: str) -> dict[str, Any] | None:
        """The order as the gateway holds it: at least order_id, tenant, amount_minor,
        currency, status; None when there is none."""
        ...

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        """Make the payment (or fail it) and send the callback unless told not to.
        Returns at least order_id, payment_id, status and, when sent, callback."""
        ...

    def reset(self) -> None: ...


class KeepOpen(httpx.AsyncBaseTransport):
    """A shared test transport survives each short-lived client's close."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class CallbackSender:
    """Posts gateways' callbacks to the hub and remembers each for a resend."""

    def __init__(
        self, url_template: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url_template = url_template
        self._transport = transport
        self.sent: dict[str, SentCallback] = {}
        # One client for every callback: a new one each time costs an SSL context
        # (milliseconds of CPU), which a burst of receipts turns into seconds.
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def default_url(self, provider: str, tenant: str) -> str:
        return self.url_template.format(provider=provider, tenant=tenant)

    async def send(self, callback: SentCallback) -> dict[str, Any]:
        self.sent[callback.id] = callback
        return await self.deliver(callback, callback.url)

    async def resend(self, callback_id: str, url: str | None = None) -> dict[str, Any]:
        callback = self.sent.get(callback_id)
        if callback is None:
            raise PayError(404, f"callback {callback_id} was never sent")
        return await self.deliver(callback, url or callback.url)

    async def deliver(self, callback: SentCallback, url: str) -> dict[str, Any]:
        status: int | None = None
        error: str | None = None
        try:
            content = callback.body if callback.method != "GET" else None
            response = await self._http().request(
                callback.method, url, content=content, headers=callback.headers
            )
            status = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        callback.deliveries.append(CallbackDelivery(url, status, error, time.time()))
        return {"id": callback.id, "url": url, "status": status, "error": error}

    def _http(self) -> httpx.AsyncClient:
        # Per event loop: a pooled connection belongs to the loop that opened it (tests
        # run one app under several loops).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            transport = KeepOpen(self._transport) if self._transport is not None else None
            self._client = httpx.AsyncClient(timeout=CALLBACK_TIMEOUT, transport=transport)
            self._loop = loop
        return self._client

    def reset(self) -> None:
        self.sent.clear()


# --- the control plane --------------------------------------------------------


def _fail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def checkout_page(
    provider: str, title: str, order: dict[str, Any], extra_html: str = ""
) -> HTMLResponse:
    """A gateway's hosted checkout, reduced to what a payer decides: pay, fail, cancel."""
    amount = f"{order['currency']} {order['amount_minor'] / 100:,.2f}"
    action = escape(f"/_sim/payments/{provider}/orders/{order['order_id']}/checkout")
    buttons = "".join(
        f'<button name="outcome" value="{o}" type="submit">{escape(label)}</button> '
        for o, label in (("success", "Pay"), ("failed", "Fail"), ("cancelled", "Cancel"))
    )
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)} checkout</title></head>"
        "<body style='font-family: sans-serif'>"
        f"<h1>{escape(title)}</h1><p>Order <code>{escape(str(order['order_id']))}</code>: "
        f"<strong>{escape(amount)}</strong> ({escape(str(order['status']))})</p>{extra_html}"
        f'<form method="post" action="{action}">{buttons}</form></body></html>'
    )


class PaymentsControl:
    def __init__(self, gateways: dict[str, GatewaySim], callbacks: CallbackSender) -> None:
        self.gateways = gateways
        self.callbacks = callbacks

    def _gateway(self, request: Request) -> GatewaySim:
        provider = request.path_params["provider"]
        found = self.gateways.get(provider)
        if found is None:
            raise PayError(404, f"no gateway simulator {provider!r} ({', '.join(self.gateways)})")
        return found

    async def order(self, request: Request) -> Response:
        try:
            found = self._gateway(request).order(request.path_params["order_id"])
        except PayError as exc:
            return _fail(exc.status, exc.message)
        if found is None:
            return _fail(404, "order does not exist")
        return JSONResponse(found)

    async def pay(self, request: Request) -> Response:
        try:
            data = await request.json()
        except ValueError:
            return _fail(400, "body must be a JSON object")
        if not isinstance(data, dict):
            return _fail(400, "body must be a JSON object")
        try:
            gateway = self._gateway(request)
            result = await gateway.pay(request.path_params["order_id"], PayAttempt.parse(data))
        except PayError as exc:
            return _fail(exc.status, exc.message)
        return JSONResponse(result)

    async def checkout(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
        try:
            gateway = self._gateway(request)
            attempt = PayAttempt.parse({"outcome": form.get("outcome", "success")})
            result = await gateway.pay(request.path_params["order_id"], attempt)
        except PayError as exc:
            return HTMLResponse(
                f"<h1>Payment not made</h1><p>{escape(exc.message)}</p>", status_code=exc.status
            )
        title = "Payment successful" if attempt.outcome == "success" else "Payment not completed"
        return HTMLResponse(
            f"<!doctype html><html><body style='font-family: sans-serif'><h1>{title}</h1>"
            f"<p>payment <code>{escape(str(result.get('payment_id', '')))}</code>, "
            f"status {escape(str(result.get('status', '')))}</p></body></html>"
        )

    async def list_callbacks(self, request: Request) -> Response:
        provider = request.query_params.get("provider")
        found = [
            c.summary()
            for c in self.callbacks.sent.values()
            if provider is None or c.provider == provider
        ]
        return JSONResponse({"callbacks": found})

    async def resend(self, request: Request) -> Response:
        try:
            data = await request.json() if await request.body() else {}
        except ValueError:
            return _fail(400, "body must be a JSON object")
        url = data.get("url") if isinstance(data, dict) else None
        if url is not None and not isinstance(url, str):
            return _fail(400, "url must be a string")
        try:
            return JSONResponse(
                await self.callbacks.resend(request.path_params["callback_id"], url)
            )
        except PayError as exc:
            return _fail(exc.status, exc.message)


def control_routes(gateways: dict[str, GatewaySim], callbacks: CallbackSender) -> list[BaseRoute]:
    c = PaymentsControl(gateways, callbacks)
    return [
        Route("/payments/callbacks", c.list_callbacks, methods=["GET"]),
        Route("/payments/callbacks/{callback_id}/resend", c.resend, methods=["POST"]),
        Route("/payments/{provider}/orders/{order_id}", c.order, methods=["GET"]),
        Route("/payments/{provider}/orders/{order_id}/pay", c.pay, methods=["POST"]),
        Route("/payments/{provider}/orders/{order_id}/checkout", c.checkout, methods=["POST"]),
    ]
