"""`hub kafka up | down | status | logs`: the local single-node broker."""

from __future__ import annotations

import time

import typer

from hub.cli.common import console, fail, local_broker, settings
from hub.local_kafka import KafkaSetupError, resolve_classpath

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
