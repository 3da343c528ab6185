"""The whole hub on one machine: simulators, ingress, processors, connectors.

`hub run` and the test suite both start the hub through this, with the same
settings handed to every child as environment variables. `components()` is the
one list of what the hub runs; docker-compose.yml runs the same list (its test
compares them).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import providers
from core.ports import port_is_free
from core.settings import Settings
from core.topics import CDC_GROUP, RETRY_WORKER_GROUP, connector_group
from hub.cdc_source import streaming
from hub.supervisor import (
    OnEvent,
    ReadyCheck,
    RestartPolicy,
    Service,
    Supervisor,
    group_ready,
    http_ready,
    log_event,
)
from providers import names as provider_names

OnReady = Callable[[str, float], None]


class PortTakenError(RuntimeError):
    pass


@dataclass(frozen=True)
class Component:
    name: str
    args: tuple[str, ...]  # the `hub` subcommand that runs it
    dev_only: bool = False  # local development and tests only, never deployed


def components(simulators: bool, cdc: bool) -> list[Component]:
    """What the hub runs, in start order."""
    listed = [Component("simulators", ("simulators", "serve"), dev_only=True)] if simulators else []
    listed += [
        Component("admin", ("admin", "serve")),
        Component("ingress", ("ingress", "serve")),
        Component("processors", ("processors", "run")),
        Component("connectors", ("connectors", "run")),
        Component("retries", ("retries", "run")),
        Component("dlq-monitor", ("dlq", "monitor")),
    ]
    if cdc:
        # The database must be up (hub postgres up, or HUB_POSTGRES_DSN).
        listed += [
            Component("cdc-source", ("cdc", "source")),
            Component("cdc-consumer", ("cdc", "consume")),
        ]
    return listed


def ready_checks(s: Settings) -> dict[str, ReadyCheck]:
    """How HubStack knows each component is serving, by component name."""

    def connectors_ready() -> bool:
        return all(group_ready(s.bootstrap_servers, connector_group(p))() for p in provider_names())

    return {
        "simulators": http_ready(f"{s.simulator_url}/_sim/health"),
        "admin": http_ready(f"{s.admin_url}/healthz"),
        "ingress": http_ready(f"{s.ingress_url}/readyz"),
        "processors": group_ready(s.bootstrap_servers, "hub-processors"),
        "connectors": connectors_ready,
        "retries": group_ready(s.bootstrap_servers, RETRY_WORKER_GROUP),
        "dlq-monitor": lambda: True,
        "cdc-source": lambda: streaming(s),
        "cdc-consumer": group_ready(s.bootstrap_servers, CDC_GROUP),
    }


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a child process build exactly these settings."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None or name == "master_keys":
            continue
        # pydantic-settings reads complex fields (retry tiers) from JSON.
        env[f"HUB_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, dict | list) else str(value)
        )
    if settings.kafka_bootstrap_servers:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    if settings.master_keys is not None:
        # The one secret a component gets in its environment: it opens the
        # catalog's sealed credentials, which arrive over Kafka.
        env["HUB_MASTER_KEYS"] = settings.master_keys.get_secret_value()
    return env


def with_simulators(settings: Settings) -> Settings:
    """Point every provider at the local simulators (development and tests only)."""
    sim = settings.simulator_url
    return settings.model_copy(
        update={
            "provider_base_urls": {
                **providers.simulator_base_urls(sim),
                **settings.provider_base_urls,
            },
            "payment_url_template": f"{sim}/razorpay/checkout/{{order_id}}",
        }
    )


def check_ports(settings: Settings, simulators: bool, cdc: bool = True) -> None:
    ports = [
        (settings.ingress_port, "HUB_INGRESS_PORT", "the webhook ingress"),
        (settings.admin_port, "HUB_ADMIN_PORT", "the admin API"),
    ]
    if cdc:
        ports.append(
            (settings.cdc_connect_port, "HUB_CDC_CONNECT_PORT", "the CDC source (Kafka Connect)")
        )
    if simulators:
        ports.append((settings.simulator_port, "HUB_SIMULATOR_PORT", "the provider simulators"))
    for port, variable, what in ports:
        if not port_is_free(port):
            raise PortTakenError(
                f"port {port} on 127.0.0.1 is taken, so {what} cannot start: "
                f"stop what uses it or set {variable} to a free port"
            )


class HubStack:
    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        *,
        simulators: bool = True,
        cdc: bool = True,
        extra_env: dict[str, str] | None = None,
        policy: RestartPolicy | None = None,
        on_event: OnEvent = log_event,
    ) -> None:
        self.settings = settings
        self.simulators = simulators
        self.cdc = cdc
        env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        self.supervisor = Supervisor(log_dir, env, policy, on_event=on_event)

    @property
    def components(self) -> list[Component]:
        return components(self.simulators, self.cdc)

    def _hub(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hub", *args]

    def start(self, on_ready: OnReady | None = None, timeout: float = 120.0) -> None:
        check_ports(self.settings, self.simulators, self.cdc)
        checks = ready_checks(self.settings)
        plan = self.components
        for component in plan:
            self.supervisor.start(
                component.name, self._hub(*component.args), checks[component.name]
            )
        try:
            for component in plan:
                took = self.supervisor.wait_ready(component.name, timeout)
                if on_ready:
                    on_ready(component.name, took)
        except BaseException:
            self.stop()
            raise

    def start_instance(self, component: str, instance_id: str, timeout: float = 120.0) -> str:
        """Another instance of a component (scale out), with its own HUB_INSTANCE_ID;
        returns its service name."""
        chosen = next(c for c in self.components if c.name == component)
        name = f"{component}-{instance_id}"
        self.supervisor.start(
            name,
            self._hub(*chosen.args),
            ready_checks(self.settings)[component],
            env={"HUB_INSTANCE_ID": instance_id},
        )
        self.supervisor.wait_ready(name, timeout)
        return name

    def restart_crashed(self) -> list[str]:
        """Restart crashed components whose backoff has passed; never waits."""
        return self.supervisor.restart_crashed()

    @property
    def given_up(self) -> list[Service]:
        return self.supervisor.given_up

    def stop(self) -> None:
        self.supervisor.stop_all()
