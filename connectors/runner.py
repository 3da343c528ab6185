"""`hub connectors run`: one worker per provider, in this process, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import structlog

from catalog.view import CatalogView
from connectors.worker import ConnectorWorker
from core.kafka_preflight import check_connection
from core.logging import configure_logging
from core.settings import Settings
from core.transactions import die
from schemas.codec import make_codec

log = structlog.get_logger("connectors")


async def run_workers(settings: Settings, providers: list[str], stop: asyncio.Event) -> None:
    # Refused credentials or TLS: an error at start, not workers that retry forever.
    await asyncio.to_thread(check_connection, settings)
    tenants = await asyncio.to_thread(CatalogView.start, settings)
    codec = make_codec(settings.schema_registry_url)
    workers = [ConnectorWorker(p, settings, tenants, codec) for p in providers]
    tasks = [asyncio.create_task(w.run(stop), name=f"worker-{w.provider}") for w in workers]
    # One worker failing for good (a fenced consumer or transaction) ends the process
    # at once, so its supervisor restarts all of them rather than run with one missing.
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        error = task.exception()
        if error is not None:
            die(error)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def run(settings: Settings, providers: list[str]) -> None:
    configure_logging(settings.log_level, settings.log_format, component="connectors")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Finish the commands in hand (outcomes and offsets committed), then stop.
            loop.add_signal_handler(sig, stop.set)
        await run_workers(settings, providers, stop)

    asyncio.run(main())
