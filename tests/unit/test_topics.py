import re

from core.topic_admin import Action, ExistingTopic, plan
from core.topics import PROCESSOR_STAGES, STATE_TABLES, default_topic_for, dlq_topic
from providers import names as provider_names
from providers import stages as all_stages
from providers import topic_spec as spec
from providers import topics as catalog
from schemas.store import default_store

NAME = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.v\d+$")


def test_every_topic_follows_the_naming_convention_and_names_a_real_schema():
    schemas = {e.name for e in default_store().entries()}
    names = [s.name for s in catalog()]
    assert len(names) == len(set(names))
    for s in catalog():
        assert NAME.match(s.name), s.name
        assert s.encoding in ("debezium-json", "json") or s.value_schema in schemas, s
        assert s.key and s.description


def test_every_stage_has_a_dead_letter_topic():
    names = {s.name for s in catalog()}
    stages = [*PROCESSOR_STAGES, *(f"connector-{p}" for p in provider_names())]
    assert {dlq_topic(stage) for stage in stages} <= names
    assert sorted(all_stages()) == sorted(stages)
    assert "connector-twilio" in all_stages() and "normalizer" in all_stages()


def test_every_stage_table_has_a_compacted_state_topic():
    names = {s.name: s for s in catalog()}
    for table in STATE_TABLES:
        topic = names[f"hub.state.{table}.v1"]
        assert topic.cleanup_policy == "compact" and topic.partitions is None


def test_ledgers_are_compacted_and_outlive_dead_letters_and_results_are_a_plain_log():
    for provider in provider_names():
        ledger = spec(f"connector.{provider}.ledger.v1")
        assert ledger.cleanup_policy == "compact,delete"
        assert ledger.retention_ms > spec(f"dlq.connector-{provider}.v1").retention_ms
        # Compacted by key, a results topic would keep one result per key only.
        assert spec(f"connector.{provider}.results.v1").cleanup_policy == "delete"


def test_default_topics_are_the_public_ones_only():
    assert default_topic_for("com.integrationhub.Invoice") == "fees.invoices.v1"
    assert default_topic_for("com.integrationhub.PaymentEvent") == "payments.events.v1"
    assert default_topic_for("com.integrationhub.ConnectorCommand") is None  # one per provider
    assert default_topic_for("com.integrationhub.DeadLetter") is None


def test_plan_creates_missing_fixes_drifted_configs_and_never_touches_partitions():
    specs = catalog()[:3]
    first, second, third = specs
    existing = {
        second.name: ExistingTopic(3, second.config()),
        third.name: ExistingTopic(6, {**third.config(), "retention.ms": "1"}),
    }
    plans = {p.spec.name: p for p in plan(specs, existing, default_partitions=3)}
    assert plans[first.name].action is Action.CREATE
    assert plans[second.name].action is Action.UNCHANGED
    drift = plans[third.name]
    assert drift.action is Action.PARTITION_DRIFT
    assert "6 partitions" in drift.note
    assert drift.config_changes == {"retention.ms": str(third.retention_ms)}


def test_plan_is_idempotent():
    specs = catalog()
    # As applying it left them: the default partition count, unless a topic fixes its own
    # (the tenant catalog is read whole, in order: one partition).
    applied = {s.name: ExistingTopic(s.partitions or 3, s.config()) for s in specs}
    assert spec("hub.catalog.tenants.v1").partitions == 1
    assert {p.action for p in plan(specs, applied, 3)} == {Action.UNCHANGED}
