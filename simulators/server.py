"""Run the simulators with uvicorn on `HUB_SIMULATOR_HOST:HUB_SIMULATOR_PORT`."""

from __future__ import annotations

import uvicorn

from catalog.view import CatalogView
from core.settings import Settings
from core.tenants import TenantDirectory
from simulators.app import create_app


def default_webhook_url_template(settings: Settings) -> str:
    return f"{settings.ingress_url}/webhooks/{{provider}}/{{tenant}}"


def build_server(settings: Settings, tenants: TenantDirectory | None = None) -> uvicorn.Server:
    """A uvicorn server for the simulators (not started); tests run it in a thread."""
    app = create_app(
        tenants if tenants is not None else CatalogView.start(settings),
        webhook_url_template=default_webhook_url_template(settings),
    )
    config = uvicorn.Config(
        app, host=settings.simulator_host, port=settings.simulator_port, log_level="warning"
    )
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    """Serve until interrupted."""
    build_server(settings).run()
