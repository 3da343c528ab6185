"""What every command shares: settings, the console, and clean exits on errors."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from hub.local_kafka import BrokerConfig, LocalBroker
from hub.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    return get_settings()


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
        )
    )
