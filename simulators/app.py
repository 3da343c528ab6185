"""The simulator ASGI app: one mount per provider plus the `/_sim` control routes.

A simulator module declares where it is served (`MOUNT`); each provider's
declaration names the same path (`simulator_paths`), and a test proves every
declared provider is simulated.

A provider's base URL in the hub is `<simulator url>/<provider>`, e.g.
`http://127.0.0.1:8099/razorpay`; the paths under it are the provider's own.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

import simulators
from core.tenants import TenantDirectory
from simulators import control, sync_control
from simulators.common import SimContext
from simulators.payments import CallbackSender, control_routes
from simulators.razorpay_webhooks import WebhookSender
from simulators.receipts import Receipts
from simulators.receipts import routes as receipt_routes
from simulators.state import SimState


def simulated() -> dict[str, ModuleType]:
    """Every simulator module (one defining MOUNT), by the path it is served under."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(simulators.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue  # __main__ runs a server when imported
        module = importlib.import_module(f"simulators.{info.name}")
        mount = getattr(module, "MOUNT", None)
        if isinstance(mount, str):
            found[mount] = module
    return found


def create_app(
    tenants: TenantDirectory,
    *,
    webhook_url_template: str,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    state: SimState | None = None,
) -> Starlette:
    """Build the simulators for `tenants`.

    `webhook_url_template` is where providers' webhooks go, with `{tenant}` replaced
    by the order's tenant id and `{provider}` (if present) by the provider's name.
    `webhook_transport` replaces the network for those webhook posts (tests). The
    app's `state.sim` is the `SimContext`.
    """
    try:
        webhook_url_template.format(tenant="probe", provider="probe")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"webhook_url_template may only use the {{tenant}} placeholder: {exc!r}"
        ) from exc
    sim_state = state or SimState()
    ctx = SimContext(
        state=sim_state,
        tenants=tenants,
        webhooks=WebhookSender(sim_state, tenants, webhook_url_template, webhook_transport),
        callbacks=CallbackSender(webhook_url_template, webhook_transport),
    )
    ctx.receipts = Receipts(ctx.callbacks)
    sim_state.on_reset.append(ctx.receipts.reset)
    modules = simulated()
    # Gateways first: their routes serve the store their control plane pays into.
    for module in modules.values():
        build = getattr(module, "gateway", None)
        if callable(build):
            sim = build(ctx)
            ctx.gateways[sim.name] = sim
    sim_state.on_reset.append(ctx.callbacks.reset)
    sim_state.on_reset.extend(g.reset for g in ctx.gateways.values())
    mounts = [Mount(path, routes=module.routes(ctx)) for path, module in modules.items()]
    sim_control = control.routes(ctx) + sync_control.routes(ctx)
    sim_control += control_routes(ctx.gateways, ctx.callbacks)
    sim_control += receipt_routes(ctx.receipts)
    app = Starlette(routes=[*mounts, Mount("/_sim", routes=sim_control)])
    app.state.sim = ctx
    return app
