"""The whole hub on one machine: simulators, ingress, processors, connectors.

`hub run` and the test suite both start the hub through this, with the same
settings handed to every child as environment variables.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hub.cdc_source import streaming
from hub.ports import port_is_free
from hub.settings import Settings
from hub.supervisor import Supervisor, group_ready, http_ready
from hub.topics import CDC_GROUP, CONNECTOR_PROVIDERS, RETRY_WORKER_GROUP, connector_group

OnReady = Callable[[str, float], None]


class PortTakenError(RuntimeError):
    pass


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a child process build exactly these settings."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        # pydantic-settings reads complex fields (retry tiers) from JSON.
        env[f"HUB_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, dict | list) else str(value)
        )
    if settings.kafka_bootstrap_servers:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    return env


def with_simulators(settings: Settings) -> Settings:
    """Point every provider at the local simulators (development and tests only)."""
    sim = settings.simulator_url
    return settings.model_copy(
        update={
            "razorpay_base_url": f"{sim}/razorpay",
            "twilio_base_url": f"{sim}/twilio",
            "sendgrid_base_url": f"{sim}/sendgrid",
            "gworkspace_base_url": f"{sim}/gworkspace",
            "fcm_base_url": f"{sim}/fcm",
            "mobileapp_base_url": f"{sim}/mobileapp",
            "smsgateway_base_url": f"{sim}/smsgateway",
            "google_token_url": f"{sim}/google/oauth2/token",
            "payment_url_template": f"{sim}/razorpay/checkout/{{order_id}}",
        }
    )


def check_ports(settings: Settings, simulators: bool) -> None:
    ports = [
        (settings.ingress_port, "HUB_INGRESS_PORT", "the webhook ingress"),
        (settings.cdc_connect_port, "HUB_CDC_CONNECT_PORT", "the CDC source (Kafka Connect)"),
    ]
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
    ) -> None:
        self.settings = settings
        self.simulators = simulators
        self.cdc = cdc
        env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        self.supervisor = Supervisor(log_dir, env)

    def _hub(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hub", *args]

    def start(self, on_ready: OnReady | None = None, timeout: float = 120.0) -> None:
        s = self.settings
        check_ports(s, self.simulators)
        plan: list[tuple[str, list[str], Callable[[], bool]]] = []
        if self.simulators:
            plan.append(
                (
                    "simulators",
                    self._hub("simulators", "serve"),
                    http_ready(f"{s.simulator_url}/_sim/health"),
                )
            )
        plan += [
            ("ingress", self._hub("ingress", "serve"), http_ready(f"{s.ingress_url}/readyz")),
            (
                "processors",
                self._hub("processors", "run"),
                group_ready(s.bootstrap_servers, "hub-processors"),
            ),
            (
                "connectors",
                self._hub("connectors", "run"),
                lambda: all(
                    group_ready(s.bootstrap_servers, connector_group(p))()
                    for p in CONNECTOR_PROVIDERS
                ),
            ),
            (
                "retries",
                self._hub("retries", "run"),
                group_ready(s.bootstrap_servers, RETRY_WORKER_GROUP),
            ),
            ("dlq-monitor", self._hub("dlq", "monitor"), lambda: True),
        ]
        if self.cdc:
            # The database must be up (hub postgres up, or HUB_POSTGRES_DSN).
            plan += [
                ("cdc-source", self._hub("cdc", "source"), lambda: streaming(s)),
                (
                    "cdc-consumer",
                    self._hub("cdc", "consume"),
                    group_ready(s.bootstrap_servers, CDC_GROUP),
                ),
            ]
        for name, argv, ready in plan:
            self.supervisor.start(name, argv, ready)
        try:
            for name, _argv, _ready in plan:
                took = self.supervisor.wait_ready(name, timeout)
                if on_ready:
                    on_ready(name, took)
        except BaseException:
            self.stop()
            raise

    def restart_crashed(self) -> list[str]:
        return self.supervisor.restart_crashed()

    def stop(self) -> None:
        self.supervisor.stop_all()
