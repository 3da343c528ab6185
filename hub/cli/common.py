"""What every command shares: settings, the console, and clean exits on errors."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from core.settings import Settings
from hub.local_kafka import BrokerConfig, LocalBroker

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    # Read the environment on every invocation (no cache): one command, one process
    # in production, but many invocations in one process under tests.
    return Settings()


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def local_broker(s: Settings) -> LocalBroker:
    return LocalBroker(
        BrokerConfig(
            home=s.home,
            port=s.kafka_port,
            controller_port=s.kafka_controller_port,
            heap=s.kafka_heap,
            sasl_port=s.kafka_sasl_port,
        )
    )


def require_kafka(s: Settings) -> None:
    """Refused credentials or an untrusted certificate end the command at once, with
    what to check, instead of a server that starts and then retries forever."""
    from core.kafka_preflight import KafkaConnectionError, check_connection

    try:
        check_connection(s)
    except KafkaConnectionError as exc:
        fail(str(exc))
