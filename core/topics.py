"""The topic catalog: every topic the hub reads or writes, as code.

Naming convention: `<domain>.<stream>.v<major>`: lowercase, dots between parts,
hyphens inside a part. `<major>` changes only with an incompatible schema
change, which means a new topic and a migration, never an in-place rewrite.
Connector topics are `connector.<provider>.commands.v1` / `.results.v1`;
dead-letter topics are `dlq.<stage>.v1`; a stage's state tables are
`hub.state.<table>.v1`.

Every per-entity stream is keyed `<tenant>:<entity id>` so one entity's events
stay in order on one partition. A stage's inputs and its state topics must
share one partition count; the catalog gives all of them the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings

DAY_MS = 24 * 3600 * 1000
LEDGER_RETENTION_DAYS = 35

# Which providers exist is declared above this module (providers/); every
# function here that needs them takes their names. `providers.topics()` and
# `providers.stages()` are the catalog with today's providers.
PROCESSOR_STAGES = ("normalizer", "reconciler", "messenger", "breakers", "cdc")

RAW_WEBHOOKS = "webhooks.raw.v1"
PAYMENT_EVENTS = "payments.events.v1"
INVOICES = "fees.invoices.v1"
PAYMENT_REQUESTS = "fees.payment-requests.v1"
PAYMENT_ORDERS = "fees.payment-orders.v1"
INVOICE_STATUS = "fees.invoice-status.v1"
PAYMENTS_RECORDED = "fees.payments-recorded.v1"
NOTIFICATION_REQUESTS = "notifications.requests.v1"
# Connector results of messaging providers and delivery receipts, re-keyed by tenant.
NOTIFICATION_UPDATES = "notifications.updates.v1"
MESSAGE_EVENTS = "notifications.message-events.v1"
BULK_REQUESTS = "notifications.bulk-requests.v1"
BULK_REPORTS = "notifications.bulk-reports.v1"
# Circuit breakers: call outcomes and probe requests (keyed by account), and the
# state the keeper folds them into (compacted; every connector worker reads it whole).
BREAKER_EVENTS = "hub.breakers.events.v1"
BREAKERS = "hub.breakers.v1"
ORDER_LINKS = "hub.reconciler.order-links.v1"
PAYMENT_MATCHES = "hub.reconciler.payment-matches.v1"
DLQ_STATE = "hub.dlq.state.v1"
DLQ_AUDIT = "hub.dlq.audit.v1"
ALERTS = "hub.alerts.v1"
CATALOG_TENANTS = "hub.catalog.tenants.v1"
AUDIT = "hub.audit.v1"
DLQ_PREFIX = "dlq."


# Consumer groups are named here too: the stack waits on them, workers join them.
RETRY_WORKER_GROUP = "hub-retry-worker"
CDC_GROUP = "hub-cdc"


def connector_group(provider: str) -> str:
    return f"hub-connector-{provider}"


def commands_topic(provider: str) -> str:
    return f"connector.{provider}.commands.v1"


def results_topic(provider: str) -> str:
    return f"connector.{provider}.results.v1"


def ledger_topic(provider: str) -> str:
    return f"connector.{provider}.ledger.v1"


# The processors' consumer group and the stages' tables. Each table's state is
# a compacted topic written in the same transaction as the outputs it goes with.
PROCESSORS_GROUP = "hub-processors"
SEEN_WEBHOOKS = "seen-webhooks"
INVOICE_STATES = "invoices"
ORDER_LINK_STATES = "order-links"
PARKED_PAYMENTS = "parked-payments"
CDC_ROWS = "cdc-rows"
# The messenger's, per tenant partition: messages, bulks, receipt links, limits.
MESSAGE_STATES = "messages"
BREAKER_STATES = "breakers"
STATE_TABLES = (
    SEEN_WEBHOOKS,
    INVOICE_STATES,
    ORDER_LINK_STATES,
    PARKED_PAYMENTS,
    CDC_ROWS,
    MESSAGE_STATES,
    BREAKER_STATES,
)


def table_topic(table: str) -> str:
    return f"hub.state.{table}.v1"


def cdc_topic(source: str, table: str) -> str:
    """Where Debezium writes a table's change events (its envelope, as JSON)."""
    return f"cdc.{source}.{table}.v1"


def state_topic(source: str, table: str) -> str:
    return f"sync.{source}.{table}.state.v1"


def changes_topic(source: str, table: str) -> str:
    return f"sync.{source}.{table}.changes.v1"


def retry_topic(provider: str, tier: int) -> str:
    """Tier 1, 2, … of a provider's retries; the delay is configuration, not the name."""
    return f"connector.{provider}.retry-{tier}.v1"


def dlq_topic(stage: str) -> str:
    return f"{DLQ_PREFIX}{stage}.v1"


def stage_of_dlq(topic: str) -> str:
    return topic.removeprefix(DLQ_PREFIX).removesuffix(".v1")


def all_stages(providers: Sequence[str]) -> list[str]:
    return [*PROCESSOR_STAGES, *(connector_stage(p) for p in providers)]


def connector_stage(provider: str) -> str:
    return f"connector-{provider}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    value_schema: str
    description: str
    retention_ms: int = 7 * DAY_MS
    cleanup_policy: str = "delete"
    partitions: int | None = None  # None: the catalog's shared partition count
    encoding: str = "avro"  # or "debezium-json" for Debezium's own topics
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            **self.extra_config,
        }


def _ns(name: str) -> str:
    return f"com.integrationhub.{name}"


def _business_topics() -> list[TopicSpec]:
    return [
        TopicSpec(
            RAW_WEBHOOKS,
            "<provider>:<tenant>:<provider event id>",
            _ns("RawWebhook"),
            "verified webhooks exactly as providers sent them",
        ),
        TopicSpec(
            PAYMENT_EVENTS,
            "<tenant>:<order id>",
            _ns("PaymentEvent"),
            "normalized, deduplicated payment events",
            retention_ms=30 * DAY_MS,
        ),
        TopicSpec(
            INVOICES,
            "<tenant>:<invoice id>",
            _ns("Invoice"),
            "invoices published by the fee module",
            retention_ms=30 * DAY_MS,
        ),
        TopicSpec(
            PAYMENT_REQUESTS,
            "<tenant>:<invoice id>",
            _ns("PaymentRequested"),
            "fee module asks the hub to collect an invoice",
        ),
        TopicSpec(
            PAYMENT_ORDERS,
            "<tenant>:<invoice id>",
            _ns("PaymentOrderResult"),
            "gateway order and payment URL for each payment request",
            retention_ms=30 * DAY_MS,
        ),
        TopicSpec(
            INVOICE_STATUS,
            "<tenant>:<invoice id>",
            _ns("InvoiceStatusChanged"),
            "invoice status changes (PAID) for the fee module",
            retention_ms=30 * DAY_MS,
        ),
        TopicSpec(
            PAYMENTS_RECORDED,
            "<tenant>:<invoice id>",
            _ns("PaymentRecorded"),
            "every payment attempt on an invoice, for the fee ledger",
            retention_ms=30 * DAY_MS,
        ),
        TopicSpec(
            NOTIFICATION_REQUESTS,
            "<tenant>",
            _ns("NotificationRequest"),
            "SMS, email and WhatsApp to send; the messenger picks the provider",
        ),
        TopicSpec(
            BULK_REQUESTS,
            "<tenant>",
            _ns("BulkSendRequest"),
            "bulk sends (a template to many recipients), in parts",
        ),
        TopicSpec(
            NOTIFICATION_UPDATES,
            "<tenant>",
            _ns("DeliveryReceipt"),
            "messenger-internal: delivery receipts, and messaging providers' send results "
            "(ConnectorResult), re-keyed by tenant",
        ),
        TopicSpec(
            MESSAGE_EVENTS,
            "<tenant>",
            _ns("MessageEvent"),
            "every step of every message: its story (hub messages show)",
            retention_ms=30 * DAY_MS,
        ),
        TopicSpec(
            BULK_REPORTS,
            "<tenant>:<bulk id>",
            _ns("BulkReport"),
            "where each bulk send stands (hub bulk status)",
            retention_ms=30 * DAY_MS,
            cleanup_policy="compact,delete",
        ),
        TopicSpec(
            BREAKER_EVENTS,
            "<tenant>:<provider>:<account>",
            "json",
            "circuit breakers: call outcomes and probe requests from connector workers",
            retention_ms=DAY_MS,
            encoding="json",
        ),
        TopicSpec(
            BREAKERS,
            "<tenant>:<provider>:<account>",
            "json",
            "circuit breakers: each account's state, read whole by every connector worker",
            retention_ms=-1,
            cleanup_policy="compact",
            encoding="json",
        ),
        TopicSpec(
            ORDER_LINKS,
            "<tenant>:<order id>",
            _ns("PaymentOrderResult"),
            "reconciler-internal: gateway order to invoice, re-keyed by order",
            retention_ms=30 * DAY_MS,
        ),
        TopicSpec(
            PAYMENT_MATCHES,
            "<tenant>:<invoice id>",
            _ns("PaymentMatched"),
            "reconciler-internal: payment events matched to an invoice, re-keyed by invoice",
        ),
    ]


def _connector_topics(provider: str, tiers: list[float]) -> list[TopicSpec]:
    retry = [
        # Kept well past their delay: a paused tier must never lose its records.
        TopicSpec(
            retry_topic(provider, n),
            "<tenant>:<idempotency key>",
            _ns("ConnectorCommand"),
            f"{provider} commands waiting {delay:g}s for retry tier {n}",
            retention_ms=max(7 * DAY_MS, int(delay * 1000 * 4)),
        )
        for n, delay in enumerate(tiers, start=1)
    ]
    return [
        *retry,
        TopicSpec(
            commands_topic(provider),
            "<tenant>:<idempotency key>",
            _ns("ConnectorCommand"),
            f"calls for the {provider} connector to make",
        ),
        TopicSpec(
            results_topic(provider),
            "<tenant>:<idempotency key>",
            _ns("ConnectorResult"),
            f"outcome of every {provider} command",
            retention_ms=30 * DAY_MS,
        ),
        # Compacted: the newest entry per idempotency key (and order mark per
        # ordering key), on the command's partition. Kept longer than dead
        # letters (30 days), so a dead letter replayed on day 29 still finds
        # its delivery.
        TopicSpec(
            ledger_topic(provider),
            "k:<tenant>:<idempotency key> | o:<tenant>:<ordering key>",
            "json",
            f"the {provider} connector's ledger: intents, deliveries, order marks",
            retention_ms=LEDGER_RETENTION_DAYS * DAY_MS,
            cleanup_policy="compact,delete",
            encoding="json",
        ),
    ]


def _hub_topics(audit_retention_days: float) -> list[TopicSpec]:
    return [
        # Compacted: the newest snapshot of each tenant; a deleted tenant is a
        # tombstone. Every component reads it whole at start, then follows it.
        TopicSpec(
            CATALOG_TENANTS,
            "<tenant>",
            _ns("TenantCatalogEntry"),
            "tenants, their provider accounts (secrets sealed) and routing",
            retention_ms=-1,
            cleanup_policy="compact",
            partitions=1,
        ),
        TopicSpec(
            AUDIT,
            "<tenant>",
            _ns("ProviderCallAudit"),
            "every provider call and inbound webhook, bodies masked",
            retention_ms=int(audit_retention_days * DAY_MS),
        ),
    ]


def _dead_letter_topics(providers: Sequence[str]) -> list[TopicSpec]:
    dead_letters = [
        TopicSpec(
            dlq_topic(stage),
            "the original record's key",
            _ns("DeadLetter"),
            f"records the {stage} stage could not process",
            retention_ms=30 * DAY_MS,
        )
        for stage in all_stages(providers)
    ]
    return [
        *dead_letters,
        TopicSpec(
            DLQ_STATE,
            "<stage>:<partition>:<offset> of a dead letter",
            _ns("DeadLetterState"),
            "replayed/purged marks, written with each replay",
            cleanup_policy="compact",
        ),
        TopicSpec(
            DLQ_AUDIT,
            "<action id>",
            _ns("DlqAudit"),
            "who replayed or purged what, when",
            retention_ms=365 * DAY_MS,
        ),
        TopicSpec(
            ALERTS,
            "<rule>:<subject>",
            _ns("Alert"),
            "alerts for the IT team",
            retention_ms=30 * DAY_MS,
        ),
    ]


def _state_topics() -> list[TopicSpec]:
    # Partition p holds the state of input partition p (the runner writes it
    # there explicitly), so these share the catalog's partition count.
    return [
        TopicSpec(
            table_topic(table),
            "the table's key (the input record's key)",
            "json",
            f"state of the {table} table, written with the outputs it goes with",
            cleanup_policy="compact",
            encoding="json",
        )
        for table in STATE_TABLES
    ]


def _cdc_topics(source: str, tables: list[str]) -> list[TopicSpec]:
    specs = []
    for table in tables:
        specs += [
            TopicSpec(
                cdc_topic(source, table),
                "Debezium's key: the row's primary key as JSON",
                "io.debezium.Envelope",
                f"every change of {source}.{table}, from Debezium",
                encoding="debezium-json",
            ),
            # Compacted: the newest state per row; a delete is a tombstone.
            TopicSpec(
                state_topic(source, table),
                "<tenant>:<row id>",
                _ns("EntityState"),
                f"latest state of each {table} row, for data teams",
                cleanup_policy="compact",
            ),
            TopicSpec(
                changes_topic(source, table),
                "<tenant>:<row id>",
                _ns("EntityChange"),
                f"one record per change of a {table} row: fields, old and new",
                retention_ms=30 * DAY_MS,
            ),
        ]
    return specs


DEFAULT_TIERS: dict[str, list[float]] = {"default": [60.0, 600.0, 3600.0]}
DEFAULT_CDC = ("erp", ["students", "guardians", "invoices"])


def catalog(
    providers: Sequence[str],
    retry_tiers: dict[str, list[float]] | None = None,
    cdc: tuple[str, list[str]] = DEFAULT_CDC,
    audit_retention_days: float = 30.0,
) -> list[TopicSpec]:
    """Every topic for these providers; tier topics follow the retry tiers configured
    (HUB_RETRY_TIERS), CDC topics the captured source and tables (HUB_CDC_SOURCE_NAME,
    HUB_CDC_TABLES)."""
    tiers = retry_tiers or DEFAULT_TIERS
    specs = _business_topics() + _state_topics() + _cdc_topics(*cdc)
    specs += _hub_topics(audit_retention_days)
    for provider in providers:
        specs += _connector_topics(provider, tiers.get(provider, tiers.get("default", [])))
    return specs + _dead_letter_topics(providers)


def catalog_for(settings: Settings, providers: Sequence[str]) -> list[TopicSpec]:
    """The catalog as configured."""
    return catalog(
        providers,
        settings.retry_tiers,
        (settings.cdc_source_name, settings.tables),
        settings.audit_retention_days,
    )


def default_topic_for(schema: str) -> str | None:
    """The one public topic an event of this schema belongs on, if there is exactly one.

    Internal (`hub.`), connector and dead-letter topics need an explicit topic.
    """
    public = [
        s.name
        for s in _business_topics()
        if s.value_schema == schema and not s.name.startswith(("hub.", "dlq.", "connector."))
    ]
    return public[0] if len(public) == 1 else None
