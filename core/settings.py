"""The hub's one settings object, read from environment variables.

Every field is documented in README.md ("Configuration"); the defaults run the
whole hub on one laptop. Production points the provider base URLs at the real
providers and `KAFKA_BOOTSTRAP_SERVERS` at a real cluster.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.secret_files import (  # re-exported: hub/stack.py and the CLI name them from here
    SecretFileSource,
    env_variable,
    env_variables,
    file_variable,
    secret_setting_names,
)
from core.topics import DEFAULT_TIERS

__all__ = [
    "Settings",
    "env_variable",
    "env_variables",
    "file_variable",
    "get_settings",
    "secret_setting_names",
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", extra="ignore", frozen=True, populate_by_name=True
    )

    # Where the hub keeps what it downloads and generates: the Kafka classpath,
    # broker data, component logs, demo tenant credentials. Never inside the repo.
    home: Path = Path("~/.cache/integration-hub").expanduser()

    # --- Kafka -------------------------------------------------------------
    # Set KAFKA_BOOTSTRAP_SERVERS to use an existing cluster; otherwise the hub
    # talks to the local broker that `hub kafka up` starts on kafka_port.
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "HUB_KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "768m"
    topic_partitions: int = 3
    # HUB_TOPIC_REPLICATION_FACTOR: replicas per partition of each catalog topic
    # apply_catalog creates (an existing topic keeps its own). 1 for the single
    # local broker; 3 on a cluster of three or more brokers, whose
    # min.insync.replicas=2 then lets acks=all writes survive losing one broker.
    topic_replication_factor: int = Field(default=1, ge=1)
    schema_registry_url: str | None = None

    # --- Kafka security (issue 11) ------------------------------------------
    # How every Kafka client of the hub (librdkafka's, and Kafka Connect's Java ones)
    # reaches a cluster that wants TLS and/or SASL: core/kafka_security.py turns these
    # into client properties. Secrets are SecretStr, so HUB_<NAME>_FILE works for them.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL", "HUB_KAFKA_SECURITY_PROTOCOL"),
    )
    kafka_sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None
    ) = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SASL_MECHANISM", "HUB_KAFKA_SASL_MECHANISM"),
    )
    kafka_sasl_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SASL_USERNAME", "HUB_KAFKA_SASL_USERNAME"),
    )
    kafka_sasl_password: SecretStr | None = None
    # OAUTHBEARER: client credentials at an OIDC token endpoint (librdkafka's method=oidc).
    kafka_oauth_token_url: str | None = None
    kafka_oauth_client_id: str | None = None
    kafka_oauth_client_secret: SecretStr | None = None
    kafka_oauth_scope: str | None = None
    # PEM files: the CA that signed the brokers' certificates (unset: the system's CAs),
    # and a client certificate and key for mutual TLS.
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_verify_hostname: bool = True
    # The local broker (`hub kafka up`) also listens with SASL_SSL (SCRAM) on this port.
    kafka_sasl_port: int | None = None

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        from core.kafka_security import security_problems  # noqa: PLC0415 - it imports Settings

        problems = security_problems(self)
        if problems:
            raise ValueError("Kafka security settings: " + "; ".join(problems))
        return self

    # --- Webhook ingress ---------------------------------------------------
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    ingress_max_body_bytes: int = 256 * 1024
    # How long the ingress waits for Kafka's acknowledgement before answering
    # 503; the provider retries, so nothing is lost.
    ingress_produce_timeout_ms: int = 5000
    # Batching window for webhooks in flight at the same moment: trades a few
    # milliseconds of latency for far fewer produce requests (broker CPU).
    ingress_linger_ms: float = 5.0
    # --- Webhook ingress: limits (issue 11). Token buckets per tenant and per source
    # address: requests/s and burst; 0 = off. Generous: a bulk send's delivery receipts
    # (a provider posts them as fast as the carriers report, from few addresses, and a
    # receipt refused may never come back) and a retry storm after an outage stay below
    # them; one noisy sender hits them long before the others do.
    ingress_tenant_rate: float = 1000.0
    ingress_tenant_burst: int = 4000
    ingress_address_rate: float = 500.0
    ingress_address_burst: int = 2000
    # Buckets kept (least recently used dropped): random source addresses cannot grow memory.
    ingress_rate_buckets: int = 10_000
    # Slow senders: the whole request head, and then the whole body, must arrive in time.
    ingress_header_timeout_seconds: float = 10.0
    ingress_body_timeout_seconds: float = 10.0
    ingress_max_header_bytes: int = 32 * 1024
    ingress_keep_alive_seconds: float = 5.0
    # Connections plus tasks the server takes at once before answering 503 (0 = no limit).
    ingress_limit_concurrency: int = 2000

    # --- Tenant catalog ------------------------------------------------------
    # Tenants, their provider accounts and routing, in SQL (SQLAlchemy URL):
    # default an SQLite file under HUB_HOME; postgresql+psycopg://… in production.
    # Components never query it: they follow hub.catalog.tenants.v1.
    catalog_url: str | None = None
    # Master keys that wrap the data keys of every account's secrets: either
    # HUB_MASTER_KEYS ("id:base64url-32-bytes,…", the last one encrypts) or a
    # JSON key file (default $HUB_HOME/master-keys.json, created 0600 on first use).
    master_keys: SecretStr | None = None
    master_key_file: Path | None = None
    # How often the admin API publishes catalog changes waiting in the outbox.
    catalog_relay_interval_seconds: float = 0.5

    # --- Admin API -------------------------------------------------------------
    admin_host: str = "127.0.0.1"
    admin_port: int = 8090

    # --- Audit trail -----------------------------------------------------------
    # Every provider call and webhook, on hub.audit.v1: how long it is kept and
    # how much of each (masked) request and response body it holds.
    audit_retention_days: float = 30.0
    audit_body_limit: int = 4096

    # --- Providers ------------------------------------------------------------
    # Base URLs by provider; each provider declares its production default
    # (`hub providers show NAME`). Override some as JSON, e.g.
    # HUB_PROVIDER_BASE_URLS='{"twilio": "https://api.twilio.com", "fcm.token": "…"}'
    # ("<provider>" is its API, "<provider>.<name>" another endpoint it declares).
    # `hub run` points every one at the local simulators.
    provider_base_urls: dict[str, str] = Field(default_factory=dict)
    payment_url_template: str = "https://checkout.school.example/pay/{order_id}"
    receipt_url_template: str = "https://erp.school.example/receipts/{receipt_no}"
    # Where the payer's browser lands after a gateway's checkout ({tenant}, {invoice_id}).
    payment_return_url_template: str = "https://erp.school.example/fees/{invoice_id}/paid"
    # The ingress as providers reach it (behind a proxy, a public https URL); gateways
    # that take a callback URL per payment (M-Pesa, Paytm) get <this>/webhooks/<p>/<t>.
    # Unset: ingress_url.
    public_ingress_url: str | None = None

    # --- Destinations a tenant configures (issue 11, SSRF: core.url_guard) ------
    # Comma-separated CIDRs and host names the guard lets through although they are
    # not global (an SMTP account on 127.0.0.1 in a local stack). Default: none.
    # Operator-configured URLs (provider_base_urls) are never guarded.
    url_guard_allow: str = ""

    # --- Connectors --------------------------------------------------------
    # Seed schedule: 5 attempts, waiting 1-2-4-8 s between them.
    retry_attempts: int = 5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 8.0
    retry_after_cap_seconds: float = 60.0
    # Tries at a payment gateway before the next one in the school's plan takes the
    # order (seed 004): a parent is waiting on the checkout, not a batch job.
    failover_attempts: int = 2
    http_connect_timeout: float = 5.0
    http_read_timeout: float = 15.0
    # Retry tiers after the in-process retries: seconds before each re-delivery.
    # JSON per provider, "default" for the rest, e.g. {"default": [60, 600, 3600],
    # "twilio": [30, 300]}. After the last tier a command becomes a dead letter.
    retry_tiers: dict[str, list[float]] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    connector_concurrency: int = 32
    connector_batch_size: int = 200
    # How long after an attempt a provider's record of it is complete, so that
    # "no trace of it" means it never happened (per provider, JSON; default:
    # each adapter's own: Twilio 0, SendGrid's activity feed 600 s).
    lookup_settle_seconds: dict[str, float] = Field(default_factory=dict)

    # --- Processors --------------------------------------------------------
    # Razorpay retries a webhook for 24 h; keep seen event ids for three days.
    dedup_retention_hours: float = 72.0
    # A payment for a gateway order the hub never created waits this long for
    # the order to appear, then becomes a dead letter for an operator.
    unmatched_payment_grace_hours: float = 24.0
    # A created order whose payment has not been heard of after this long is asked
    # about at its gateway (a missed webhook), again after 4x and 16x, at most
    # payment_status_max_polls times.
    payment_status_poll_seconds: float = 900.0
    payment_status_max_polls: int = 3

    # --- Messaging (processors.messaging) -------------------------------------
    # Per-tenant messaging policy (weights, costs, limits) and templates, TOML;
    # default: the demo file in the repository (deploy/messaging.toml).
    messaging_config: Path = Path(__file__).resolve().parent.parent / "deploy" / "messaging.toml"
    # A message accepted by a provider that reports delivery but whose final receipt
    # has not come within this long is sent once more through the backup provider.
    receipt_deadline_seconds: float = 600.0
    # How often the messenger releases messages held by a rate limit and checks deadlines.
    messenger_tick_seconds: float = 1.0
    bulk_batch_size: int = 100
    # Circuit breakers per provider account (seed 000): open when at least half of the
    # last breaker_window calls failed, for breaker_open_seconds; then breaker_probes
    # calls for the whole fleet decide (a majority of them succeeding closes it).
    breaker_window: int = 10
    breaker_failure_ratio: float = 0.5
    breaker_open_seconds: float = 60.0
    breaker_probes: int = 3
    # A probe grant unused (its worker gone) for this long is given to another worker.
    breaker_probe_lease_seconds: float = 30.0
    # Provider categories whose connectors go through breakers (payment gateways
    # have their own health-based routing, processors.gateways).
    breaker_categories: list[str] = Field(default_factory=lambda: ["sms", "email", "whatsapp"])

    # --- Dead letters ------------------------------------------------------
    # Alert (on hub.alerts.v1) when a dead-letter topic gains more than this many
    # records within the window; checked every interval.
    dlq_alert_threshold: int = 10
    dlq_alert_window_seconds: float = 300.0
    dlq_monitor_interval_seconds: float = 15.0

    # --- Change data capture ------------------------------------------------
    # The source database. Unset: the local development PostgreSQL that
    # `hub postgres up` runs on postgres_port (data under postgres_dir).
    postgres_dsn: str | None = None
    postgres_port: int = 15432
    postgres_dir: Path | None = None
    # Debezium names its topics cdc.<source>.<table>.v1 and the sync streams
    # follow; the tables it captures; the tenant the database belongs to.
    cdc_source_name: str = "erp"
    cdc_tables: str = "students,guardians,invoices"
    cdc_tenant: str = "greenwood"
    cdc_slot_name: str = "hub_erp"
    # The transactional outbox's relay (a second Debezium connector in the same
    # worker) reads the ERP database through its own replication slot and
    # publication, both named this (PostgreSQL's rule for slot names).
    outbox_slot_name: str = Field(default="hub_outbox", pattern=r"^[a-z0-9_]{1,63}$")
    cdc_connect_port: int = 18083  # Kafka Connect's REST API (status), 127.0.0.1 only
    sync_mapping_file: Path | None = None

    # --- Simulators (local development and tests only) ---------------------
    simulator_host: str = "127.0.0.1"
    simulator_port: int = 8099

    # --- Instances -----------------------------------------------------------
    # Tells apart instances of one component (a second processors process, a
    # StatefulSet's pods). Transactional ids derive from it, so it must be
    # stable across restarts of one instance and distinct between instances.
    instance_id: str = "0"

    # --- Logging -----------------------------------------------------------
    log_level: str = "INFO"
    log_format: str = "json"  # json | console

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # HUB_<NAME>_FILE after the variables: both set for one setting is an error anyway.
        return (
            init_settings,
            env_settings,
            SecretFileSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    def tiers_for(self, provider: str) -> list[float]:
        return self.retry_tiers.get(provider, self.retry_tiers.get("default", []))

    @property
    def tables(self) -> list[str]:
        return [t.strip() for t in self.cdc_tables.split(",") if t.strip()]

    @property
    def source_dsn(self) -> str:
        return self.postgres_dsn or f"postgresql://hub@127.0.0.1:{self.postgres_port}/school_erp"

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def uses_local_broker(self) -> bool:
        return self.kafka_bootstrap_servers is None

    @property
    def catalog_dsn(self) -> str:
        return self.catalog_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def master_key_path(self) -> Path:
        return (self.master_key_file or self.home / "master-keys.json").expanduser()

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"

    @property
    def simulator_url(self) -> str:
        return f"http://{self.simulator_host}:{self.simulator_port}"

    @property
    def ingress_url(self) -> str:
        return f"http://{self.ingress_host}:{self.ingress_port}"

    @property
    def webhook_url_template(self) -> str:
        """Where a provider calls the hub, with {provider} and {tenant} to fill in."""
        base = (self.public_ingress_url or self.ingress_url).rstrip("/")
        return f"{base}/webhooks/{{provider}}/{{tenant}}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
