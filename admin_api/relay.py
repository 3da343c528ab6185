"""The outbox relay: publishes what the catalog committed to hub.catalog.tenants.v1.

Every change the API makes writes an outbox row in the same SQL transaction;
this thread turns those rows into Kafka records every few hundred
milliseconds. The catalog's relay lock keeps two admin processes from
publishing at once, and a failed round (Kafka down) leaves the rows for the
next one: a catalog change is late, never lost.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog
from confluent_kafka import Producer

from core.kafka import producer_config
from core.settings import Settings
from schemas.codec import Codec, make_codec

if TYPE_CHECKING:
    from catalog.service import CatalogService

log = structlog.get_logger("admin_api.relay")


class OutboxRelay:
    def __init__(
        self,
        settings: Settings,
        service: CatalogService,
        *,
        producer: Producer | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.interval = settings.catalog_relay_interval_seconds
        self.service = service
        self.producer = producer or Producer(producer_config(settings, "catalog-relay"))
        self.codec = codec or make_codec(settings.schema_registry_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="catalog-relay", daemon=True)

    def publish_once(self) -> int:
        """One round; the number of tenants published (0 after a failure, which is logged)."""
        try:
            published = self.service.publish_pending(self.producer, self.codec)
        except Exception as exc:  # Kafka or the database away: the next round retries
            log.warning("catalog.relay_failed", error=str(exc) or type(exc).__name__)
            return 0
        if published:
            log.info("catalog.published", tenants=published)
        return published

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.publish_once()  # what the last requests changed goes out before exit
        self.producer.flush(timeout)

    def _loop(self) -> None:
        self.publish_once()  # changes made while no relay ran (the CLI, a crash)
        while not self._stop.wait(self.interval):
            self.publish_once()
