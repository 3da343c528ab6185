"""hub.dlq.monitor: GrowthWatch decides when a dead-letter topic grew too fast; alert_for."""

from __future__ import annotations

import pytest

from hub.dlq.monitor import RULE, GrowthWatch, alert_for
from schemas.events import Alert, Severity

TOPIC = "dlq.connector-twilio.v1"
OTHER = "dlq.normalizer.v1"


def watch(threshold: int = 10, window: float = 60.0) -> GrowthWatch:
    return GrowthWatch(threshold=threshold, window_seconds=window)


def test_first_observation_never_alerts_on_existing_dead_letters() -> None:
    w = watch()
    assert w.observe(TOPIC, 0.0, 10_000) is None
    assert w.observe(TOPIC, 10.0, 10_000) is None


def test_growth_at_the_threshold_does_not_alert() -> None:
    w = watch()
    w.observe(TOPIC, 0.0, 100)
    assert w.observe(TOPIC, 10.0, 105) is None
    assert w.observe(TOPIC, 20.0, 110) is None  # +10 == threshold


def test_growth_above_the_threshold_alerts_with_the_growth() -> None:
    w = watch()
    w.observe(TOPIC, 0.0, 100)
    assert w.observe(TOPIC, 10.0, 105) is None
    assert w.observe(TOPIC, 20.0, 111) == 11


def test_growth_spread_over_more_than_the_window_does_not_alert() -> None:
    w = watch(threshold=10, window=60.0)
    total = 100
    w.observe(TOPIC, 0.0, total)
    for t in range(10, 301, 10):
        total += 1  # 6 a minute, 30 in all: never more than 10 within one window
        assert w.observe(TOPIC, float(t), total) is None, t


def test_old_growth_before_the_window_does_not_count() -> None:
    w = watch(threshold=10, window=60.0)
    w.observe(TOPIC, 0.0, 100)
    w.observe(TOPIC, 5.0, 108)  # +8 early on
    w.observe(TOPIC, 30.0, 108)
    w.observe(TOPIC, 65.0, 108)
    # window start 40: baseline is the sample at 30 (108), so only +5 counts
    assert w.observe(TOPIC, 70.0, 113) is None


def test_baseline_is_the_sample_just_before_the_window_start() -> None:
    w = watch(threshold=10, window=60.0)
    w.observe(TOPIC, 0.0, 100)
    w.observe(TOPIC, 30.0, 100)
    # window start 10: the sample at 0 is the one just before it, so +11 counts
    assert w.observe(TOPIC, 70.0, 111) == 11


def test_sample_exactly_at_the_window_start_is_the_baseline() -> None:
    w = watch(threshold=10, window=60.0)
    w.observe(TOPIC, 0.0, 90)
    w.observe(TOPIC, 10.0, 100)
    # window start 10: the sample at 10 (100) is the baseline, not the one at 0 (90)
    assert w.observe(TOPIC, 70.0, 109) is None
    w2 = watch(threshold=10, window=60.0)
    w2.observe(TOPIC, 0.0, 90)
    w2.observe(TOPIC, 10.0, 100)
    assert w2.observe(TOPIC, 69.0, 109) == 19  # start 9: the sample at 0 is the baseline


def test_at_most_one_alert_per_window() -> None:
    w = watch(threshold=10, window=60.0)
    w.observe(TOPIC, 0.0, 0)
    assert w.observe(TOPIC, 10.0, 20) == 20
    assert w.observe(TOPIC, 20.0, 50) is None  # still growing, but alerted 10 s ago
    assert w.observe(TOPIC, 69.0, 80) is None
    assert w.observe(TOPIC, 70.0, 100) == 80  # a window after the alert: baseline 10 s (20)


def test_no_new_alert_when_growth_stopped_after_the_cooldown() -> None:
    w = watch(threshold=10, window=60.0)
    w.observe(TOPIC, 0.0, 0)
    assert w.observe(TOPIC, 30.0, 50) == 50
    assert w.observe(TOPIC, 90.0, 50) is None
    assert w.observe(TOPIC, 150.0, 50) is None


def test_topics_are_independent() -> None:
    w = watch(threshold=10, window=60.0)
    w.observe(TOPIC, 0.0, 0)
    w.observe(OTHER, 0.0, 500)
    assert w.observe(TOPIC, 10.0, 20) == 20
    assert w.observe(OTHER, 10.0, 505) is None
    assert w.observe(OTHER, 20.0, 520) == 20  # TOPIC's alert does not silence OTHER
    assert w.observe(TOPIC, 20.0, 40) is None


def test_first_observation_of_a_new_topic_does_not_alert_even_after_others() -> None:
    w = watch(threshold=1, window=60.0)
    w.observe(TOPIC, 0.0, 0)
    assert w.observe(OTHER, 30.0, 1_000) is None


def test_samples_older_than_the_baseline_are_dropped() -> None:
    w = watch(threshold=10, window=60.0)
    for t in range(0, 601, 10):
        w.observe(TOPIC, float(t), 0)
    window = w.samples[TOPIC]
    assert window[0][0] == 540.0  # the baseline: at the window start
    assert len(window) == 7


# --- alert_for ------------------------------------------------------------------------


def test_alert_fields() -> None:
    w = watch(threshold=10, window=300.0)
    alert = alert_for(TOPIC, 25, w)
    assert isinstance(alert, Alert)
    assert alert.rule == RULE == "dlq.growth"
    assert alert.subject == TOPIC
    assert alert.observed == 25
    assert alert.threshold == 10
    assert alert.window_seconds == 300.0
    assert alert.severity is Severity.WARNING
    assert alert.key() == f"dlq.growth:{TOPIC}"
    assert "hub dlq list --stage connector-twilio" in alert.message
    assert "25" in alert.message
    assert "5 min" in alert.message
    assert alert.header.event_type == Alert.EVENT_TYPE


@pytest.mark.parametrize(
    ("growth", "severity"),
    [(11, Severity.WARNING), (100, Severity.WARNING), (101, Severity.CRITICAL)],
)
def test_severity_is_critical_above_ten_times_the_threshold(
    growth: int, severity: Severity
) -> None:
    assert alert_for(TOPIC, growth, watch(threshold=10)).severity is severity


def test_alert_for_a_processor_stage() -> None:
    alert = alert_for(OTHER, 50, watch(threshold=10, window=90.0))
    assert "hub dlq list --stage normalizer" in alert.message
    assert "1.5 min" in alert.message
    assert alert.subject == OTHER
