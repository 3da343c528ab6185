"""`hub processors run`: the normalizer, reconciler, messenger and breaker keeper on one
transactional runner.

One consumer group (`hub-processors`) reads every input of the stages;
each batch's outputs, dead letters, state changes and offsets commit in one
Kafka transaction (processors.runner). Why not faust-streaming, which the
design card named: measured on this machine's broker with the same dedup
workload, a transactional confluent-kafka loop ran 26,004 records/s and faust
1,465/s (at-least-once) or 893/s (exactly_once), and faust writes a table's
changelog before the outputs that go with it, so a crash in between loses
them (README: "Guarantees, and how they are tested").
"""

from __future__ import annotations

import signal
import threading

from catalog.view import CatalogView
from core.breaker import BreakerPhase, account_key
from core.breaker_view import BreakerView
from core.logging import configure_logging
from core.settings import Settings
from core.tenants import TenantDirectory
from core.topics import PROCESSORS_GROUP
from processors.runner import StageRunner
from processors.stages import breakers, messenger, normalizer, reconciler
from schemas.codec import Codec, make_codec

GROUP_ID = PROCESSORS_GROUP


def build_runner(
    settings: Settings,
    tenants: TenantDirectory,
    codec: Codec | None = None,
    breaker_view: BreakerView | None = None,
) -> StageRunner:
    codec = codec or make_codec(settings.schema_registry_url)

    def is_open(tenant: str, provider: str, label: str) -> bool:
        if breaker_view is None:
            return False
        state = breaker_view.get(account_key(tenant, provider, label))
        return state is not None and state.phase is BreakerPhase.OPEN

    stages = [
        normalizer.stage(settings, codec),
        reconciler.stage(settings, tenants, codec),
        # Routes around accounts whose breaker is open (the connectors enforce it).
        messenger.stage(settings, tenants, codec, is_open=is_open),
        breakers.stage(settings),
    ]
    return StageRunner(settings, GROUP_ID, stages, codec)


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, component="processors")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Finish the batch in hand (one transaction), then leave the group.
        signal.signal(sig, lambda *_: stop.set())
    tenants = CatalogView.start(settings)
    view = BreakerView.start(settings)
    try:
        build_runner(settings, tenants, breaker_view=view).run(stop)
    finally:
        view.close()
        tenants.close()
