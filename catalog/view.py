"""Each component's current view of the tenant catalog, kept from hub.catalog.tenants.v1.

Components never query the catalog database: the admin API and the CLI
publish one snapshot per changed tenant (the outbox relay), and every process
reads the compacted topic whole at start, then follows it. A new account or a
rotated secret takes effect within about a second, without a restart, and no
process gets tenants' secrets in its environment: they arrive sealed and are
opened here with the master keys.

A snapshot that cannot be opened (a master key missing here, a tampered
blob) leaves that tenant's previous state in place and is logged loudly; one
bad account never takes the others down with it.
"""

from __future__ import annotations

import threading
import time
import uuid

import structlog
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from catalog.errors import CatalogValidationError
from catalog.snapshot import VERSION_HEADER, open_account
from core.crypto import Keyring, KeyringError
from core.kafka import as_header_list, client_config, consume_batch
from core.masking import MASKER
from core.settings import Settings
from core.tenants import Tenant, TenantDirectory
from core.topics import CATALOG_TENANTS
from schemas.codec import Codec, DecodeError, make_codec
from schemas.events import TenantCatalogEntry, decode_as

log = structlog.get_logger("catalog")

# How long a follower waits for the topic before it reports the catalog unreadable.
LOAD_TIMEOUT = 60.0


class CatalogUnavailableError(RuntimeError):
    pass


def tenant_of(
    entry: TenantCatalogEntry, keyring: Keyring, previous: Tenant | None = None
) -> Tenant:
    """The tenant a snapshot describes, its secrets opened. An account that cannot be
    opened keeps its previous state (if it had one), loudly logged."""
    accounts = []
    for account in entry.accounts:
        try:
            accounts.append(open_account(keyring, entry.tenant_id, account))
        except (KeyringError, CatalogValidationError) as exc:
            log.error(
                "catalog.account_unusable",
                tenant=entry.tenant_id,
                account=account.label,
                provider=account.provider,
                error=str(exc),
                kept_previous=bool(previous and previous.by_label(account.label)),
            )
            earlier = previous.by_label(account.label) if previous else None
            if earlier is not None:
                accounts.append(earlier)
    return Tenant(
        id=entry.tenant_id,
        name=entry.name,
        enabled=entry.enabled,
        accounts=tuple(accounts),
        routing={k: tuple(v) for k, v in entry.routing.items()},
    )


def key_ids(entry: TenantCatalogEntry) -> set[str]:
    return {a.sealed.key_id for a in entry.accounts if a.sealed is not None}


class CatalogView(TenantDirectory):
    """A TenantDirectory that follows the catalog topic in a daemon thread."""

    def __init__(
        self, settings: Settings, keyring: Keyring | None = None, codec: Codec | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.keyring = keyring or Keyring.from_settings(settings)
        self.codec = codec or make_codec(settings.schema_registry_url)
        self._versions: dict[str, int] = {}
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, settings: Settings, timeout: float = LOAD_TIMEOUT) -> CatalogView:
        view = cls(settings)
        view.follow()
        view.wait_loaded(timeout)
        return view

    def follow(self) -> None:
        self._thread = threading.Thread(target=self._run, name="catalog-view", daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout: float = LOAD_TIMEOUT) -> None:
        if not self._loaded.wait(timeout):
            raise CatalogUnavailableError(
                f"could not read {CATALOG_TENANTS} within {timeout:.0f}s from "
                f"{self.settings.bootstrap_servers}: is Kafka up and `hub topics apply` done?"
            )
        if self._error is not None:
            raise CatalogUnavailableError(f"catalog view failed: {self._error}")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def apply(self, key: str, entry: TenantCatalogEntry | None, version: int | None) -> None:
        """One record of the topic: a snapshot, or a tombstone (None) for `key`, at `version`
        (the tenant's catalog version; versions go on across a deletion)."""
        version = entry.version if entry is not None else version
        if version is not None and version < self._versions.get(key, -1):
            return  # an older state republished late (a relay retrying): the newer one stands
        if version is not None:
            self._versions[key] = version
        tenants = {t.id: t for t in self}
        if entry is None:
            tenants.pop(key, None)
        else:
            if not key_ids(entry) <= set(self.keyring.key_ids):
                self._reload_keys()  # a rotation added a master key since this process started
            tenant = tenant_of(entry, self.keyring, tenants.get(key))
            MASKER.register(tenant.secret_values())
            tenants[tenant.id] = tenant
        self.replace(tenants.values())
        log.info("catalog.tenant_updated", tenant=key, deleted=entry is None, tenants=len(tenants))

    def _reload_keys(self) -> None:
        try:
            self.keyring = Keyring.from_settings(self.settings)
        except KeyringError as exc:
            log.error("catalog.keys_unreadable", error=str(exc))

    def _run(self) -> None:
        try:
            self._follow()
        except BaseException as exc:  # reported by wait_loaded; the view keeps its last state
            self._error = exc
            self._loaded.set()
            log.error("catalog.view_failed", error=str(exc))

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                **client_config(self.settings),
                "group.id": f"hub-catalog-view-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
            }
        )

    def _follow(self) -> None:
        consumer = self._consumer()
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(CATALOG_TENANTS, 0), timeout=LOAD_TIMEOUT
            )
            consumer.assign([TopicPartition(CATALOG_TENANTS, 0, low)])
            if high <= low:
                self._loaded.set()
            while not self._stop.is_set():
                for msg in consume_batch(consumer, 500, 0.2):
                    self._handle(msg, high)
        finally:
            consumer.close()

    def _handle(self, msg: Message, high: int) -> None:
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if (msg.offset() or 0) >= high:
                    self._loaded.set()
                return
            if error.fatal():
                raise RuntimeError(f"catalog consumer: {error.str()}")
            log.warning("catalog.consume_error", error=error.str())
            time.sleep(0.5)
            return
        key = (msg.key() or b"").decode()
        value = msg.value()
        try:
            entry = None if value is None else decode_as(self.codec, value, TenantCatalogEntry)
        except DecodeError as exc:
            log.error("catalog.undecodable", tenant=key, offset=msg.offset(), error=str(exc))
            return
        raw_version = next(
            (v.decode() for k, v in as_header_list(msg.headers()) if k == VERSION_HEADER and v),
            None,
        )
        self.apply(key, entry, int(raw_version) if raw_version and raw_version.isdigit() else None)
        if (msg.offset() or 0) + 1 >= high:
            self._loaded.set()
