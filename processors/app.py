"""The processors' faust app: normalizer, reconciler and router in one worker.

At-least-once (faust's default, not exactly_once: see reference notes on
faust-streaming's open issues), in-memory table stores rebuilt from their
compacted changelog topics on start.
"""

from __future__ import annotations

import logging

import faust

from hub.logging import configure_logging
from hub.settings import Settings
from hub.tenants import TenantDirectory, load_tenants
from hub.topics import PROCESSORS_APP
from processors import normalizer, reconciler, router
from processors.stage import Stage
from schemas.codec import Codec, make_codec

APP_ID = PROCESSORS_APP


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [
        f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()
    ]


def build_app(
    settings: Settings, tenants: TenantDirectory, codec: Codec | None = None
) -> faust.App:
    app = faust.App(
        APP_ID,
        broker=broker_urls(settings.bootstrap_servers),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # No leader election: every timer sweeps its own worker's partitions.
        topic_disable_leader=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    codec = codec or make_codec(settings.schema_registry_url)
    normalizer.register(app, Stage(app, "normalizer", codec), settings)
    reconciler.register(app, Stage(app, "reconciler", codec), settings, tenants)
    router.register(app, Stage(app, "router", codec), tenants)
    return app


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, component="processors")
    # faust and mode narrate every service start; keep their warnings, not the tour.
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = build_app(settings, load_tenants(settings))
    worker = faust.Worker(
        app, loglevel=settings.log_level.lower(), quiet=True, override_logging=False
    )
    worker.execute_from_commandline()
