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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

import providers
from core.kafka import admin_config
from core.ports import port_is_free
from core.settings import Settings, env_variables, file_variable, secret_setting_names
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
        return all(group_ready(admin_config(s), connector_group(p))() for p in provider_names())

    return {
        "simulators": http_ready(f"{s.simulator_url}/_sim/health"),
        "admin": http_ready(f"{s.admin_url}/healthz"),
        "ingress": http_ready(f"{s.ingress_url}/readyz"),
        "processors": group_ready(admin_config(s), "hub-processors"),
        "connectors": connectors_ready,
        "retries": group_ready(admin_config(s), RETRY_WORKER_GROUP),
        "dlq-monitor": lambda: True,
        "cdc-source": lambda: streaming(s),
        "cdc-consumer": group_ready(admin_config(s), CDC_GROUP),
    }


def secret_values(settings: Settings) -> dict[str, str]:
    """The secret settings that are set (core.settings.secret_setting_names), as values."""
    found = {}
    for name in secret_setting_names(Settings):
        value = getattr(settings, name)
        if value is not None:
            found[name] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return found


def write_secret_files(settings: Settings, directory: Path) -> dict[str, Path]:
    """Each secret setting that is set, in a file of its own only this user can read."""
    if not secret_values(settings):
        return {}
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)  # mkdir leaves an existing directory's mode alone
    files = {}
    for name, value in secret_values(settings).items():
        path = directory / name
        # Created 0600 before the value is written: never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value)
        path.chmod(0o600)  # an existing file keeps its mode through os.open
        files[name] = path
    return files


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment less every secret setting's value: a child reads those
    from their files (HUB_<NAME>_FILE), which settings_env then names."""
    dropped = {v for name in secret_setting_names(Settings) for v in env_variables(Settings, name)}
    dropped |= {file_variable(name) for name in secret_setting_names(Settings)}
    return {k: v for k, v in environ.items() if k.upper() not in dropped}


def settings_env(
    settings: Settings, secret_files: Mapping[str, Path] | None = None
) -> dict[str, str]:
    """Environment that makes a child process build exactly these settings. Secret
    settings only as the files holding them (`write_secret_files`), never as values:
    without their file, a child does not get them at all."""
    env = {}
    secret = set(secret_setting_names(Settings))
    for name, path in (secret_files or {}).items():
        env[file_variable(name)] = str(path)
    for name, value in settings.model_dump(mode="json").items():
        if value is None or name == "master_keys" or name in secret:
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


def child_env(settings: Settings, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What every component gets: the parent's environment less its secrets, these
    settings, their secrets as files under HUB_HOME (the master key aside)."""
    files = write_secret_files(settings, settings.home / "secrets")
    return {**inherited_env(environ), **settings_env(settings, files)}


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
        env = {**child_env(settings), **(extra_env or {})}
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
