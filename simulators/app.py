"""The simulator ASGI app: one mount per provider plus the `/_sim` control routes.

A provider's base URL in the hub is `<simulator url>/<provider>`, e.g.
`http://127.0.0.1:8099/razorpay`; the paths under it are the provider's own.
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from core.tenants import TenantDirectory
from simulators import (
    control,
    fcm,
    google_oauth,
    gworkspace,
    mobileapp,
    razorpay,
    sendgrid,
    smsgateway,
    sync_control,
    twilio,
)
from simulators.common import SimContext
from simulators.razorpay_webhooks import WebhookSender
from simulators.state import SimState


def create_app(
    tenants: TenantDirectory,
    *,
    webhook_url_template: str,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    state: SimState | None = None,
) -> Starlette:
    """Build the simulators for `tenants`.

    `webhook_url_template` is where Razorpay webhooks go, with `{tenant}` replaced
    by the order's tenant id. `webhook_transport` replaces the network for those
    webhook posts (tests). The app's `state.sim` is the `SimContext`.
    """
    try:
        webhook_url_template.format(tenant="probe")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"webhook_url_template may only use the {{tenant}} placeholder: {exc!r}"
        ) from exc
    sim_state = state or SimState()
    ctx = SimContext(
        state=sim_state,
        tenants=tenants,
        webhooks=WebhookSender(sim_state, tenants, webhook_url_template, webhook_transport),
    )
    app = Starlette(
        routes=[
            Mount("/razorpay", routes=razorpay.routes(ctx)),
            Mount("/twilio", routes=twilio.routes(ctx)),
            Mount("/sendgrid", routes=sendgrid.routes(ctx)),
            Mount("/google", routes=google_oauth.routes(ctx)),
            Mount("/gworkspace", routes=gworkspace.routes(ctx)),
            Mount("/fcm", routes=fcm.routes(ctx)),
            Mount("/mobileapp", routes=mobileapp.routes(ctx)),
            Mount("/smsgateway", routes=smsgateway.routes(ctx)),
            Mount("/_sim", routes=control.routes(ctx) + sync_control.routes(ctx)),
        ]
    )
    app.state.sim = ctx
    return app
