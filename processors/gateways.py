"""Which payment gateway takes a payment request: the school's order, bent by health. Pure.

A school lists its gateway accounts under routing "payment", most preferred
first (seed 004: Cashfree, then Razorpay); without a list, its payment
accounts in priority order. A gateway whose recent order creations failed
too often, or answered too slowly, moves behind the healthy ones — it is
still tried, last, because an unhealthy gateway beats no gateway.

Health is what this reconciler instance saw of each gateway's recent answers
to order creation (a window of the last few minutes). It steers new requests
only; a request's plan, once made, is kept in the invoice's state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import providers
from core.tenants import Tenant

PAYMENT = "payment"
WINDOW_SECONDS = 300.0
MIN_SAMPLES = 3
MAX_ERROR_RATE = 0.5
MAX_P95_LATENCY_MS = 8000.0
MAX_SAMPLES = 50


@dataclass(frozen=True)
class GatewayChoice:
    provider: str
    label: str


@dataclass(frozen=True)
class Sample:
    at: float
    ok: bool
    latency_ms: float


@dataclass(frozen=True)
class HealthView:
    samples: int
    error_rate: float
    p95_latency_ms: float

    @property
    def healthy(self) -> bool:
        if self.samples < MIN_SAMPLES:
            return True  # too little seen to judge: innocent until shown otherwise
        return self.error_rate < MAX_ERROR_RATE and self.p95_latency_ms <= MAX_P95_LATENCY_MS


def health_of(samples: list[Sample], now: float, window: float = WINDOW_SECONDS) -> HealthView:
    recent = [s for s in samples if now - s.at <= window]
    if not recent:
        return HealthView(0, 0.0, 0.0)
    latencies = sorted(s.latency_ms for s in recent)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    errors = sum(1 for s in recent if not s.ok)
    return HealthView(len(recent), errors / len(recent), p95)


@dataclass
class GatewayHealth:
    """Recent order-creation answers per gateway account, as this instance saw them."""

    clock: Callable[[], float]
    _samples: dict[str, deque[Sample]] = field(default_factory=dict)

    def observe(self, label: str, ok: bool, latency_ms: float) -> None:
        found = self._samples.setdefault(label, deque(maxlen=MAX_SAMPLES))
        found.append(Sample(self.clock(), ok, latency_ms))

    def view(self, label: str) -> HealthView:
        return health_of(list(self._samples.get(label, ())), self.clock())

    def views(self) -> dict[str, HealthView]:
        return {label: self.view(label) for label in self._samples}


def _payment_accounts(tenant: Tenant) -> list[GatewayChoice]:
    gateways = {name for name, p in providers.registry().items() if p.category == PAYMENT}
    accounts = sorted(
        (a for a in tenant.accounts if a.provider in gateways and a.enabled),
        key=lambda a: (a.priority, a.label),
    )
    return [GatewayChoice(a.provider, a.label) for a in accounts]


def preference(tenant: Tenant, gateway: str = "") -> list[GatewayChoice]:
    """The school's gateways in its order; `gateway` named: only that one's accounts."""
    accounts = _payment_accounts(tenant)
    if gateway:
        return [c for c in accounts if c.provider == gateway][:1]
    by_label = {c.label: c for c in accounts}
    listed = [by_label[label] for label in tenant.routing.get(PAYMENT, ()) if label in by_label]
    if listed:
        return listed
    # One account per gateway: a backup account of the same gateway is the connector's business.
    first: dict[str, GatewayChoice] = {}
    for choice in accounts:
        first.setdefault(choice.provider, choice)
    return list(first.values())


def plan(
    tenant: Tenant, health: Mapping[str, HealthView], gateway: str = ""
) -> list[GatewayChoice]:
    """The order to try gateways in: healthy first, each group in the school's order."""
    ordered = preference(tenant, gateway)

    def healthy(choice: GatewayChoice) -> bool:
        view = health.get(choice.label)
        return view is None or view.healthy

    return [c for c in ordered if healthy(c)] + [c for c in ordered if not healthy(c)]
