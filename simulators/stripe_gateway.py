"""Stripe's side of a Checkout payment: sessions, PaymentIntents, refunds and signed events.

The API routes (simulators/stripe.py) and the payments control plane share one
`StripeGateway`. Paying a session does what Stripe does and then sends the events
Stripe would send to the account's webhook endpoint:

- success: a PaymentIntent `succeeded`, the session `complete`/`paid`:
  `checkout.session.completed`.
- failed: an asynchronous method (a bank debit) that fails after checkout: the
  session `complete`/`unpaid`, the intent back to `requires_payment_method` with
  its `last_payment_error`: `checkout.session.completed`, then
  `checkout.session.async_payment_failed`. (A declined card does not end a session:
  the payer simply tries again, so it sends nothing.)
- cancelled / timeout: the payer never pays and the session expires:
  `checkout.session.expired`.

Each event is signed as Stripe signs it, independently of the hub's verifier:
`Stripe-Signature: t=<now>,v1=<hex HMAC-SHA256 of "t." + body keyed by whsec_...>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from providers.stripe import API_VERSION, StripeAccount
from simulators.common import SimContext
from simulators.payments import PayAttempt, PayError, SentCallback
from simulators.state import random_id

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
ASYNC_FAILURE = {
    "code": "payment_intent_payment_attempt_failed",
    "decline_code": "insufficient_funds",
    "message": "The customer's account has insufficient funds to cover this payment.",
    "type": "card_error",
}


def owner_of(account: StripeAccount) -> str:
    """The Stripe account id (acct_...) a secret key belongs to, stable per key."""
    digest = hashlib.sha256(account.secret_key.get_secret_value().encode()).hexdigest()
    return "acct_" + digest[:16]


def public(entity: dict[str, Any]) -> dict[str, Any]:
    """The object as Stripe shows it: without the simulator's own `_` fields."""
    return {k: v for k, v in entity.items() if not k.startswith("_")}


@dataclass
class Saved:
    """An idempotent request's first answer, replayed for the same key and parameters."""

    endpoint: str
    params: list[tuple[str, str]]
    status: int
    body: dict[str, Any]


@dataclass
class StripeStore:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (owner, Idempotency-Key) -> the first answer
    saved: dict[tuple[str, str], Saved] = field(default_factory=dict)

    def clear(self) -> None:
        self.sessions.clear()
        self.intents.clear()
        self.refunds.clear()
        self.saved.clear()

    def refunded(self, intent_id: str) -> int:
        return sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent_id)


def _event(event_type: str, session: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": random_id("evt_", 24),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": public(session)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def stripe_signature(body: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class StripeGateway:
    name = "stripe"

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.store = StripeStore()

    def reset(self) -> None:
        self.store.clear()

    def order(self, order_id: str) -> dict[str, Any] | None:
        session = self.store.sessions.get(order_id)
        if session is None:
            return None
        return {
            "order_id": order_id,
            "tenant": session["_tenant"],
            "amount_minor": session["amount_total"],
            "currency": str(session["currency"]).upper(),
            "status": session["status"],
            "payment_status": session["payment_status"],
            "payment_id": session["payment_intent"] or "",
        }

    # --- paying ---------------------------------------------------------------

    async def pay(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        session = self._open_session(order_id, attempt)
        if attempt.outcome == "success":
            events = [self._succeed(session, attempt)]
        elif attempt.outcome == "failed":
            events = self._fail_async(session, attempt)
        else:
            events = [self._expire(session)]
        sent = [await self._send(session, e, attempt) for e in events if attempt.send_callback]
        return {
            "order_id": order_id,
            "payment_id": session["payment_intent"] or order_id,
            "status": session["status"],
            "payment_status": session["payment_status"],
            "events": [e["type"] for e in events],
            **({"callback": sent[-1], "callbacks": sent} if sent else {}),
        }

    def _open_session(self, order_id: str, attempt: PayAttempt) -> dict[str, Any]:
        session = self.store.sessions.get(order_id)
        if session is None:
            raise PayError(404, f"no checkout session {order_id}")
        if session["status"] != "open":
            raise PayError(409, f"checkout session {order_id} is {session['status']}")
        if attempt.amount_minor not in (None, session["amount_total"]):
            raise PayError(400, "Stripe Checkout charges the session's whole amount_total")
        if attempt.currency not in (None, session["currency"], session["currency"].upper()):
            raise PayError(400, f"the session is in {session['currency']}")
        return session

    def _intent(self, session: dict[str, Any], attempt: PayAttempt) -> dict[str, Any]:
        """The session's PaymentIntent, created when the payer confirms (as Stripe does)."""
        intent = {
            "id": random_id("pi_", 24),
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": 0,
            "currency": session["currency"],
            "created": int(time.time()),
            "latest_charge": None,
            "last_payment_error": None,
            "livemode": False,
            "metadata": dict(session["_intent_metadata"]),
            "payment_method_types": [attempt.method or session["payment_method_types"][0]],
            "status": "processing",
            "_owner": session["_owner"],
        }
        self.store.intents[intent["id"]] = intent
        session["payment_intent"] = intent["id"]
        return intent

    def _succeed(self, session: dict[str, Any], attempt: PayAttempt) -> dict[str, Any]:
        intent = self._intent(session, attempt)
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=random_id("ch_", 24),
        )
        session.update(status="complete", payment_status="paid")
        return _event("checkout.session.completed", session)

    def _fail_async(self, session: dict[str, Any], attempt: PayAttempt) -> list[dict[str, Any]]:
        intent = self._intent(session, attempt)
        session.update(status="complete", payment_status="unpaid")
        completed = _event("checkout.session.completed", session)
        intent.update(status="requires_payment_method", last_payment_error=dict(ASYNC_FAILURE))
        return [completed, _event("checkout.session.async_payment_failed", session)]

    def _expire(self, session: dict[str, Any]) -> dict[str, Any]:
        session.update(status="expired", url=None)
        return _event("checkout.session.expired", session)

    # --- the events -----------------------------------------------------------

    def _account(self, owner: str) -> StripeAccount:
        for _, account in self.ctx.accounts("stripe", StripeAccount):
            if owner_of(account) == owner:
                return account
        raise PayError(409, f"the Stripe account {owner} is no longer configured")

    async def _send(
        self, session: dict[str, Any], event: dict[str, Any], attempt: PayAttempt
    ) -> dict[str, Any]:
        # Stripe's own JSON is pretty-printed: the signature covers exactly these bytes.
        body = json.dumps(event, indent=2).encode()
        secret = self._account(session["_owner"]).webhook_secret.get_secret_value()
        tenant = session["_tenant"]
        callback = SentCallback(
            provider="stripe",
            tenant=tenant,
            order_id=session["id"],
            payment_id=session["payment_intent"] or session["id"],
            event=event["type"],
            url=attempt.callback_url or self.ctx.webhook_url("stripe", tenant),
            body=body,
            headers={
                "content-type": "application/json; charset=utf-8",
                "user-agent": USER_AGENT,
                "stripe-signature": stripe_signature(body, secret, int(time.time())),
            },
        )
        return await self.ctx.callbacks.send(callback)
