"""PayPal REST: OAuth 2.0 client credentials, Orders v2, captures' refunds, signed webhooks.

- `POST /v1/oauth2/token` (Basic client_id:secret, grant_type=client_credentials) issues
  a Bearer token; a wrong pair gets 401 `invalid_client`.
- `POST /v2/checkout/orders` creates an order (PAYER_ACTION_REQUIRED with a
  `payer-action` link when `payment_source.paypal` is given, else CREATED with
  `approve`). `PayPal-Request-Id` makes it idempotent: the same id answers the
  same order (200 instead of 201); with another body, 422.
- `GET /v2/checkout/orders/{id}`, `POST /v2/checkout/orders/{id}/capture`,
  `POST /v2/payments/captures/{id}/refund` (PayPal-Request-Id idempotent too).
- `GET /checkout/{id}` is the approval page; `GET /v1/notifications/certs/{id}` the
  webhook signing certificate.

Paying (the control plane, `PayAttempt`): success approves the order and sends a
signed CHECKOUT.ORDER.APPROVED; failed approves it too, but its capture is then
DECLINED (PAYMENT.CAPTURE.DENIED), as when the funding source fails after
approval; cancelled and timeout change nothing and send nothing (PayPal sends no
webhook when the payer abandons). A capture sends PAYMENT.CAPTURE.COMPLETED/DENIED
after answering. PayPal takes no partial payment: an amount other than the order's
is refused. Errors are PayPal's `{"name", "message", "debug_id", "details"}`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.tenants import Tenant
from providers.paypal import PayPalAccount
from simulators import paypal_api as api
from simulators import paypal_webhooks as signing
from simulators.common import Call, ProviderSpec, SimContext, basic_credentials, bearer_token
from simulators.common import provider_endpoint as endpoint
from simulators.payments import checkout_page
from simulators.paypal_errors import error, error_for_status
from simulators.paypal_store import PayPalSim

MOUNT = api.PAYPAL_PATH


def _sim(ctx: SimContext) -> PayPalSim:
    sim = ctx.gateways["paypal"]
    assert isinstance(sim, PayPalSim)
    return sim


def _client(ctx: SimContext, client_id: str, secret: str) -> Tenant | None:
    for tenant, account in ctx.accounts("paypal", PayPalAccount):
        if account.client_id == client_id:
            expected = account.client_secret.get_secret_value().encode()
            return tenant if hmac.compare_digest(expected, secret.encode()) else None
    return None


def authenticate_basic(ctx: SimContext, headers: Headers) -> Tenant | None:
    pair = basic_credentials(headers)
    return _client(ctx, *pair) if pair else None


def authenticate_bearer(ctx: SimContext, headers: Headers) -> Tenant | None:
    token = bearer_token(headers)
    issued = _sim(ctx).tokens.get(token or "")
    return ctx.tenants.get(issued[0]) if issued else None


API = ProviderSpec(
    name="paypal", authenticate=authenticate_bearer, error_for_status=error_for_status
)
OAUTH = ProviderSpec(
    name="paypal", authenticate=authenticate_basic, error_for_status=error_for_status
)


# --- the payer's page, the certificate, the wiring ------------------------------------


def gateway(ctx: SimContext) -> PayPalSim:
    return PayPalSim(ctx)


def approval_page(sim: PayPalSim) -> Callable[[Request], Awaitable[Response]]:
    """The payer-action link: PayPal's page where the payer approves (or not)."""

    async def page(request: Request) -> Response:
        found = sim.order(request.path_params["order_id"])
        if found is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        return checkout_page("paypal", "PayPal", found)

    return page


async def _certificate(request: Request) -> Response:
    if request.path_params["cert_id"] != signing.CERT_ID:
        return error(
            404, "INVALID_RESOURCE_ID", "Certificate not found.", name="RESOURCE_NOT_FOUND"
        )
    return Response(signing.identity().certificate_pem, media_type="application/x-pem-file")


def _not_found(call: Call) -> Response:
    return error(
        404,
        "INVALID_RESOURCE_ID",
        "The specified resource does not exist.",
        name="RESOURCE_NOT_FOUND",
    )


def routes(ctx: SimContext) -> list[BaseRoute]:
    sim = _sim(ctx)
    return [
        # The token endpoint takes no queued faults: they are meant for the API call itself.
        Route(
            "/v1/oauth2/token",
            endpoint(ctx, OAUTH, lambda c: api.issue_token(sim, c), faultable=False),
            methods=["POST"],
        ),
        Route(
            "/v2/checkout/orders",
            endpoint(ctx, API, lambda c: api.create_order(sim, c)),
            methods=["POST"],
        ),
        Route(
            "/v2/checkout/orders/{order_id}",
            endpoint(ctx, API, lambda c: api.fetch_order(sim, c)),
            methods=["GET"],
        ),
        Route(
            "/v2/checkout/orders/{order_id}/capture",
            endpoint(ctx, API, lambda c: api.capture_order(sim, c)),
            methods=["POST"],
        ),
        Route(
            "/v2/payments/captures/{capture_id}/refund",
            endpoint(ctx, API, lambda c: api.refund(sim, c)),
            methods=["POST"],
        ),
        Route("/checkout/{order_id}", approval_page(sim), methods=["GET"]),
        Route("/v1/notifications/certs/{cert_id}", _certificate, methods=["GET"]),
        Route(
            "/{path:path}",
            endpoint(ctx, API, _not_found, faultable=False),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
