"""What every messaging simulator shares: which messages arrive, and their receipts.

A real provider accepts a message and tells later whether the handset or
mailbox got it. The simulators do the same: a send is answered at once, and
its delivery receipt (signed, or URL-token authenticated, the provider's way)
is posted to the hub's ingress shortly after, from a background task.

Whether a message arrives is the test's to decide, per address:

- `POST /_sim/messages/undeliverable`  `{"addresses": [...], "provider": "twilio"?}`
  those recipients' messages are accepted but never arrive (a failed /
  undelivered receipt); without `provider`, at every provider.
- `POST /_sim/messages/silent`  `{"addresses": [...], "provider"?}` no receipt at all.
- `DELETE /_sim/messages/rules`  forget both.
- `GET /_sim/messages/receipts[?provider=]`  every receipt sent, with its deliveries.

A provider module calls `ctx.receipts.outcome(provider, address)` when it
accepts a message and `ctx.receipts.post(...)` (or `later(...)`) to send the
receipt; `SentCallback`'s order_id field carries the provider's message id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators.payments import CallbackSender, SentCallback

Arrival = Literal["delivered", "undelivered", "silent"]
# How long after the send answer a receipt is posted: the hub's result usually
# lands first, as with a real provider, but the hub must not depend on it.
RECEIPT_DELAY_SECONDS = 0.2


def _normal(address: str) -> str:
    return address.strip().lower().replace(" ", "").replace("-", "")


@dataclass
class ReceiptRules:
    # provider (None: every provider) -> addresses
    undeliverable: dict[str | None, set[str]] = field(default_factory=dict)
    silent: dict[str | None, set[str]] = field(default_factory=dict)

    def outcome(self, provider: str, address: str) -> Arrival:
        wanted = _normal(address)
        for rules, arrival in ((self.silent, "silent"), (self.undeliverable, "undelivered")):
            if wanted in rules.get(provider, set()) or wanted in rules.get(None, set()):
                return arrival  # type: ignore[return-value]  # the loop's literal pairs
        return "delivered"

    def clear(self) -> None:
        self.undeliverable.clear()
        self.silent.clear()


class Receipts:
    """Receipt rules and the sender, shared by every messaging simulator."""

    def __init__(self, callbacks: CallbackSender) -> None:
        self.rules = ReceiptRules()
        self.callbacks = callbacks
        self.sent: list[SentCallback] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def outcome(self, provider: str, address: str) -> Arrival:
        return self.rules.outcome(provider, address)

    def default_url(self, provider: str, tenant: str) -> str:
        """The receipt URL configured in the provider's dashboard (the hub's ingress)."""
        return self.callbacks.default_url(provider, tenant)

    async def post(self, callback: SentCallback) -> dict[str, Any]:
        self.sent.append(callback)
        return await self.callbacks.send(callback)

    def later(
        self, make: Callable[[], Awaitable[Any]], delay: float = RECEIPT_DELAY_SECONDS
    ) -> None:
        """Run `make()` (which posts one or more receipts) after `delay`, in the background."""

        async def run() -> None:
            await asyncio.sleep(delay)
            await make()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reset(self) -> None:
        self.rules.clear()
        self.sent.clear()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()


async def _addresses(request: Request) -> tuple[str | None, list[str]] | JSONResponse:
    try:
        data = await request.json()
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status_code=400)
    addresses = data.get("addresses") if isinstance(data, dict) else None
    provider = data.get("provider") if isinstance(data, dict) else None
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        return JSONResponse({"error": "addresses must be a list of strings"}, status_code=400)
    if provider is not None and not isinstance(provider, str):
        return JSONResponse({"error": "provider must be a string"}, status_code=400)
    return provider, addresses


def routes(receipts: Receipts) -> list[BaseRoute]:
    def adder(kind: Literal["undeliverable", "silent"]) -> Callable[[Request], Awaitable[Response]]:
        async def add(request: Request) -> Response:
            parsed = await _addresses(request)
            if isinstance(parsed, JSONResponse):
                return parsed
            provider, addresses = parsed
            rules = getattr(receipts.rules, kind)
            rules.setdefault(provider, set()).update(_normal(a) for a in addresses)
            return JSONResponse({kind: sorted(rules[provider]), "provider": provider})

        return add

    async def clear(_request: Request) -> Response:
        receipts.rules.clear()
        return Response(status_code=204)

    async def listed(request: Request) -> Response:
        provider = request.query_params.get("provider")
        shown = [c.summary() for c in receipts.sent if provider in (None, c.provider)]
        return JSONResponse({"receipts": shown})

    return [
        Route("/messages/undeliverable", adder("undeliverable"), methods=["POST"]),
        Route("/messages/silent", adder("silent"), methods=["POST"]),
        Route("/messages/rules", clear, methods=["DELETE"]),
        Route("/messages/receipts", listed, methods=["GET"]),
    ]
