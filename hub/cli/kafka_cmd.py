"""`hub kafka up | down | status | logs`: the local single-node broker."""

from __future__ import annotations

import time

import typer

from core.settings import env_variable, file_variable
from hub.cli.common import console, fail, local_broker, settings
from hub.local_kafka import BrokerConfig, KafkaSetupError, resolve_classpath

app = typer.Typer(
    help="Run a local single-node Kafka (KRaft) from Maven-resolved jars.", no_args_is_help=True
)


def _refuse_if_external() -> None:
    s = settings()
    if not s.uses_local_broker:
        fail(
            f"KAFKA_BOOTSTRAP_SERVERS={s.kafka_bootstrap_servers} is set: the hub uses that "
            "cluster and does not manage a local broker. Unset it to use `hub kafka`."
        )


@app.command()
def prepare() -> None:
    """Resolve the broker's jars with Maven (cached; later starts skip Maven)."""
    s = settings()
    try:
        classpath = resolve_classpath(s.home)
    except KafkaSetupError as exc:
        fail(str(exc))
    console.print(f"Kafka classpath ready: {len(classpath.split(':'))} jars")


@app.command()
def up(
    timeout: float = typer.Option(90.0, help="Seconds to wait for the broker to be ready."),
) -> None:
    """Start the broker (formats storage on first start) and wait until it is ready."""
    _refuse_if_external()
    broker = local_broker(settings())
    started = time.monotonic()
    try:
        status = broker.up(timeout=timeout)
    except KafkaSetupError as exc:
        fail(str(exc))
    console.print(
        f"Kafka ready at [bold]{status.bootstrap}[/] (pid {status.pid}) "
        f"in {time.monotonic() - started:.1f}s; log: {status.log_file}"
    )
    if broker.cfg.sasl_port is not None:
        console.print("SASL_SSL listener (SCRAM-SHA-512): point the hub at it with")
        for line in sasl_env_lines(broker.cfg):
            console.print(f"  {line}", highlight=False)


def sasl_env_lines(cfg: BrokerConfig) -> list[str]:
    """The environment for the SASL_SSL listener; the password by its file, never as a value."""
    names = {"kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS"}
    lines = [
        f"{names.get(name, env_variable(name))}={value}"
        for name, value in cfg.sasl_settings().items()
        if name != "kafka_sasl_password"
    ]
    return [*lines, f"{file_variable('kafka_sasl_password')}={cfg.dir / 'sasl-password'}"]


@app.command()
def check(timeout: float = typer.Option(10.0, help="Seconds to wait for an answer.")) -> None:
    """Connect with the configured settings (TLS, SASL): exit 1 with the reason if refused."""
    from core.kafka_preflight import KafkaConnectionError, check_connection

    s = settings()
    try:
        check_connection(s, timeout, require_reachable=True)
    except KafkaConnectionError as exc:
        fail(str(exc))
    who = f", {s.kafka_sasl_mechanism} as {s.kafka_sasl_username}" if s.kafka_sasl_mechanism else ""
    console.print(f"Kafka at {s.bootstrap_servers}: connected ({s.kafka_security_protocol}{who})")


@app.command()
def down(kill: bool = typer.Option(False, help="SIGKILL instead of a clean shutdown.")) -> None:
    """Stop the local broker (its data stays, so the next `up` keeps the topics)."""
    _refuse_if_external()
    stopped = local_broker(settings()).down(kill=kill)
    console.print("Kafka stopped" if stopped else "Kafka was not running")


@app.command()
def status() -> None:
    """Is the broker running and answering? Exit code 0 only if it answers."""
    s = settings()
    if not s.uses_local_broker:
        console.print(f"external cluster: {s.kafka_bootstrap_servers}")
        return
    st = local_broker(s).status()
    state = (
        "[green]ready[/]"
        if st.reachable
        else ("[yellow]starting[/]" if st.running else "[red]stopped[/]")
    )
    console.print(
        f"Kafka {state}  bootstrap={st.bootstrap}  pid={st.pid or '-'}  log={st.log_file}"
    )
    if not st.reachable:
        raise typer.Exit(1)


@app.command()
def logs(lines: int = typer.Option(40, "--lines", "-n", help="How many lines.")) -> None:
    """Print the end of the broker's log."""
    console.print(local_broker(settings()).log_tail(lines), markup=False, highlight=False)
