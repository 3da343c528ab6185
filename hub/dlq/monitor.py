"""`hub dlq monitor`: alert the IT team when a dead-letter topic grows too fast.

Every interval it reads each dead-letter topic's end offsets (cheap: no
records are read) and keeps a window of samples per topic; more than
HUB_DLQ_ALERT_THRESHOLD new dead letters within HUB_DLQ_ALERT_WINDOW_SECONDS
writes an Alert to hub.alerts.v1, at most once per window per topic.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import structlog
from confluent_kafka import Consumer, KafkaException, Producer

from core.kafka import client_config, event_headers, producer_config, watermarks
from core.logging import configure_logging
from core.settings import Settings
from core.topics import ALERTS, dlq_topic, stage_of_dlq
from providers import stages as all_stages
from schemas.codec import Codec, make_codec
from schemas.events import Alert, EventHeader, Severity, encode_event

log = structlog.get_logger("dlq.monitor")

RULE = "dlq.growth"


@dataclass
class GrowthWatch:
    threshold: int
    window_seconds: float
    samples: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    alerted_at: dict[str, float] = field(default_factory=dict)

    def observe(self, topic: str, now: float, total: int) -> int | None:
        """Record `total` records in `topic`; the growth if it calls for an alert."""
        window = self.samples.setdefault(topic, deque())
        window.append((now, total))
        # Keep one sample at or before the window's start as the baseline.
        while len(window) > 1 and window[1][0] <= now - self.window_seconds:
            window.popleft()
        growth = total - window[0][1]
        recently = now - self.alerted_at.get(topic, float("-inf")) < self.window_seconds
        if growth > self.threshold and not recently:
            self.alerted_at[topic] = now
            return growth
        return None


def alert_for(topic: str, growth: int, watch: GrowthWatch) -> Alert:
    stage = stage_of_dlq(topic)
    minutes = watch.window_seconds / 60
    return Alert(
        header=EventHeader.new(Alert.EVENT_TYPE, "hub", source="dlq-monitor"),
        rule=RULE,
        severity=Severity.CRITICAL if growth > 10 * watch.threshold else Severity.WARNING,
        subject=topic,
        observed=growth,
        threshold=watch.threshold,
        window_seconds=watch.window_seconds,
        message=(
            f"{growth} new dead letters on {topic} in {minutes:g} min (threshold "
            f"{watch.threshold}): see `hub dlq list --stage {stage}` and `hub dlq stats`"
        ),
    )


def end_offsets(consumer: Consumer, topic: str) -> int:
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    return sum(watermarks(consumer, topic, p)[1] for p in metadata.partitions)


def _check(
    consumer: Consumer, producer: Producer, codec: Codec, watch: GrowthWatch, topics: list[str]
) -> None:
    now = time.time()
    for topic in topics:
        growth = watch.observe(topic, now, end_offsets(consumer, topic))
        if growth is not None:
            alert = alert_for(topic, growth, watch)
            producer.produce(
                ALERTS,
                key=alert.key(),
                value=encode_event(codec, alert),
                headers=event_headers(alert),
            )
            log.warning("alert.raised", rule=RULE, subject=topic, observed=growth)
    producer.flush(10)


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, component="dlq-monitor")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    codec = make_codec(settings.schema_registry_url)
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": "hub-dlq-monitor",
            "enable.auto.commit": False,
        }
    )
    producer = Producer(producer_config(settings, "hub-dlq-monitor"))
    watch = GrowthWatch(settings.dlq_alert_threshold, settings.dlq_alert_window_seconds)
    topics = [dlq_topic(s) for s in all_stages()]
    log.info(
        "dlq_monitor.started",
        topics=len(topics),
        threshold=watch.threshold,
        window_seconds=watch.window_seconds,
    )
    while not stop.is_set():
        try:
            _check(consumer, producer, codec, watch, topics)
        except KafkaException as exc:
            # A leader election or a broker restart: try again next interval.
            log.warning("dlq_monitor.check_failed", error=str(exc))
        stop.wait(settings.dlq_monitor_interval_seconds)
    consumer.close()
