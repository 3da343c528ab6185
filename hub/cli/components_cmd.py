"""`hub ingress serve`, `hub processors run`, `hub connectors run`, `hub simulators serve`."""

from __future__ import annotations

import typer
from rich.table import Table

from core.ports import port_is_free
from core.topics import commands_topic, results_topic
from hub.cli.common import console, fail, require_kafka, settings
from providers import names as provider_names

ingress = typer.Typer(help="The webhook ingress (ASGI, uvicorn).", no_args_is_help=True)
processors = typer.Typer(
    help="The stream processors (transactional stage runner).", no_args_is_help=True
)
connectors = typer.Typer(help="Connector workers, one per provider.", no_args_is_help=True)
retries = typer.Typer(
    help="The retry worker: re-delivers retry-tier records when due.", no_args_is_help=True
)
simulators = typer.Typer(
    help="Local provider simulators (development and tests only).", no_args_is_help=True
)


def _require_free(port: int, variable: str) -> None:
    if not port_is_free(port):
        fail(f"port {port} on 127.0.0.1 is taken: stop what uses it or set {variable}")


@ingress.command("serve")
def serve_ingress(
    host: str = typer.Option(None, help="Bind address [default: HUB_INGRESS_HOST]."),
    port: int = typer.Option(None, help="Port [default: HUB_INGRESS_PORT]."),
) -> None:
    """Serve POST /webhooks/{provider}/{tenant}, /healthz and /readyz."""
    import uvicorn

    from catalog.view import CatalogUnavailableError, CatalogView
    from core.logging import configure_logging
    from webhook_ingress import create_app
    from webhook_ingress.server import server_config

    s = settings().model_copy(
        update={k: v for k, v in {"ingress_host": host, "ingress_port": port}.items() if v}
    )
    _require_free(s.ingress_port, "HUB_INGRESS_PORT")
    configure_logging(s.log_level, s.log_format, component="webhook-ingress")
    require_kafka(s)
    try:
        tenants = CatalogView.start(s)
    except CatalogUnavailableError as exc:
        fail(str(exc))
    # Deadlines on slow request heads, keep-alive and concurrency: webhook_ingress/server.py.
    uvicorn.Server(server_config(create_app(s, tenants), s)).run()


@processors.command("run")
def run_processors() -> None:
    """Run the normalizer, reconciler, messenger and breaker keeper (one consumer group)."""
    from processors.app import run

    run(settings())


@connectors.command("run")
def run_connectors(
    provider: list[str] = typer.Option(
        None, "--provider", "-p", help="Provider to run (repeatable) [default: all]."
    ),
) -> None:
    """Consume each provider's command topic and call its API."""
    from connectors.runner import run

    chosen = provider or list(provider_names())
    unknown = sorted(set(chosen) - set(provider_names()))
    if unknown:
        fail(f"no connector for {', '.join(unknown)}; known: {', '.join(provider_names())}")
    run(settings(), chosen)


@retries.command("run")
def run_retries() -> None:
    """Move each record in a retry tier back to its command topic when it is due."""
    from connectors.retry_worker import run

    run(settings())


@connectors.command("list")
def list_connectors() -> None:
    """Show every provider adapter, its category and topics."""
    import providers

    s = settings()
    table = Table("provider", "category", "base URL", "commands", "results")
    for name, declared in providers.registry().items():
        table.add_row(
            name,
            declared.category,
            providers.base_url(s, name),
            commands_topic(name),
            results_topic(name),
        )
    console.print(table)


@simulators.command("serve")
def serve_simulators(
    port: int = typer.Option(None, help="Port [default: HUB_SIMULATOR_PORT]."),
) -> None:
    """Serve the Razorpay, Twilio and SendGrid simulators and their /_sim control API."""
    from core.logging import configure_logging
    from simulators.server import serve

    s = settings().model_copy(update={"simulator_port": port} if port else {})
    _require_free(s.simulator_port, "HUB_SIMULATOR_PORT")
    configure_logging(s.log_level, s.log_format, component="simulators")
    serve(s)
