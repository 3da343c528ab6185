"""`hub run`: the whole hub on this machine, the fee-payment story, then serve until Ctrl-C."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType

import typer
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from core.kafka import admin_config
from core.logging import configure_logging
from core.masking import mask_dsn  # a DSN's password never reaches the screen
from core.settings import Settings
from core.topic_admin import apply_catalog
from hub import erp
from hub.cli.admin_cmd import open_service, print_first_admin_key
from hub.cli.cdc_cmd import local_postgres
from hub.cli.common import console, fail, local_broker, settings
from hub.demo import FeePaymentStory, Step, StoryFailedError
from hub.demo_sync import PhoneSyncStory
from hub.local_kafka import KafkaSetupError
from hub.local_postgres import LocalPostgres, PostgresSetupError
from hub.stack import HubStack, PortTakenError, with_simulators
from hub.supervisor import Crashed, Event, GaveUp, Restarted, ServiceFailedError
from hub.tenants_seed import DEMO_TENANTS, DUAL_GATEWAY_TENANT, demo_tenants, publish_catalog
from providers import registry as provider_registry
from providers import topics as topic_catalog
from simulators.client import SimulatorClient

STORY_PROVIDERS = ("twilio", "sendgrid")


def _story_tenant(s: Settings, gateway: str = "razorpay") -> str:
    service = open_service(s)
    wanted = (gateway, *STORY_PROVIDERS)
    for info in service.list_tenants():
        tenant = service.load_tenant(info.id)
        if tenant.enabled and all(tenant.has(p) for p in wanted):
            return tenant.id
    fail(f"no tenant has {', '.join(wanted)} accounts configured for the story")


def prepare_catalog(s: Settings) -> None:
    """The SQLite catalog (or HUB_CATALOG_URL's), the demo tenants when it has none, the
    first admin key, and every pending change published for the components to read."""
    from admin_api.keys import ensure_first_admin_key

    service = open_service(s)
    if not service.list_tenants():
        service.import_tenants(demo_tenants())
        console.print(
            f"[green]✓[/] demo tenants {', '.join(t for t, _ in DEMO_TENANTS)} "
            f"seeded into the catalog ({mask_dsn(s.catalog_dsn)})"
        )
    token = ensure_first_admin_key(service)
    if token is not None:
        print_first_admin_key(token)
    published = publish_catalog(service, s)
    console.print(f"[green]✓[/] catalog published ({published} tenant snapshot(s))")


def _print_step(step: Step) -> None:
    console.print(
        f"  [green]✓[/] {step.title} [dim]({step.latency_ms:,.0f} ms)[/]\n    {step.detail}",
        highlight=False,
    )


def play_story(s: Settings, outcome: str, gateway: str = "razorpay") -> None:
    console.print(
        f"\n[bold]The fee payment story[/] (seed 000, use case 1) through {gateway}, "
        f"outcome: {outcome}"
    )
    sim = SimulatorClient(s.simulator_url)
    story = FeePaymentStory(s, _story_tenant(s, gateway), sim, _print_step, gateway=gateway)
    try:
        story.play(outcome)
    except (StoryFailedError, TimeoutError) as exc:
        fail(f"the story stopped: {exc}. Component logs: {s.home / 'logs'}")


def play_failover_story(s: Settings) -> None:
    """Seed 004: Cashfree is down (the simulator answers 503), the order goes to Razorpay."""
    known = {t.id for t in open_service(s).list_tenants()}
    if DUAL_GATEWAY_TENANT not in known:
        console.print(
            f"[yellow]![/] no tenant {DUAL_GATEWAY_TENANT!r} for the dual-gateway story (the "
            "catalog predates it): `hub tenants import` one with routing payment = "
            '["cashfree-primary", "razorpay-primary"]'
        )
        return
    console.print(
        f"\n[bold]The dual-gateway story[/] (seed 004): {DUAL_GATEWAY_TENANT} collects through "
        "Cashfree, which answers 503 for now; Razorpay takes over"
    )
    sim = SimulatorClient(s.simulator_url)
    sim.add_fault("cashfree", status=503, times=s.failover_attempts, tenant=DUAL_GATEWAY_TENANT)
    story = FeePaymentStory(s, DUAL_GATEWAY_TENANT, sim, _print_step, timeout=60.0)
    try:
        story.play("captured")
    except (StoryFailedError, TimeoutError) as exc:
        fail(f"the story stopped: {exc}. Component logs: {s.home / 'logs'}")
    finally:
        sim.clear_faults()


def play_messaging_stories(s: Settings, which: str = "all") -> None:
    from hub.demo_messages import MessagingStories
    from hub.demo_messages import StoryFailedError as MessageStoryFailed

    tenant = _story_tenant(s)
    missing = _missing_messaging_accounts(s, tenant)
    if missing:
        # A catalog seeded before these providers existed: say so, keep serving.
        console.print(
            f"[yellow]![/] {tenant} has no {', '.join(missing)} account: the messaging stories "
            "need them (a fresh HUB_HOME seeds demo tenants that have them)"
        )
        return
    stories = MessagingStories(s, tenant, SimulatorClient(s.simulator_url), _print_step)
    plays: dict[str, tuple[str, Callable[[], object]]] = {
        "email": (
            "The email failover story (seed 002): SendGrid answers 503, SES takes it",
            stories.email_failover,
        ),
        "sms": (
            "The SMS receipt story (seed 000): Twilio's receipt says undelivered, MSG91 delivers",
            stories.sms_receipt_failover,
        ),
        "bulk": (
            "The bulk attendance SMS (seed 000, use case 2): 500 parents, 4 wrong numbers",
            stories.bulk_attendance,
        ),
    }
    for name, (title, play) in plays.items():
        if which not in ("all", name):
            continue
        console.print(f"\n[bold]{title}[/] ({tenant})")
        try:
            play()
        except (MessageStoryFailed, TimeoutError) as exc:
            console.print(f"[red]✗[/] the story stopped: {exc}. Component logs: {s.home / 'logs'}")


def _missing_messaging_accounts(s: Settings, tenant_id: str) -> list[str]:
    tenant = open_service(s).load_tenant(tenant_id)
    return [p for p in ("msg91", "ses") if not tenant.has(p)]


def play_phone_story(s: Settings) -> None:
    console.print("\n[bold]The student data sync story[/] (seed 000, use case 3)")
    story = PhoneSyncStory(s, SimulatorClient(s.simulator_url), _print_step)
    try:
        story.play()
    except (StoryFailedError, TimeoutError) as exc:
        fail(f"the story stopped: {exc}. Component logs: {s.home / 'logs'}")


def _start_postgres(s: Settings) -> LocalPostgres | None:
    """The local ERP database, unless HUB_POSTGRES_DSN names one; None if it was running."""
    database = None if s.postgres_dsn else local_postgres(s)
    started = database is not None and not database.running()
    began = time.monotonic()
    if database is not None:
        database.up()
    erp.install(erp.engine_for(s.source_dsn))
    took = time.monotonic() - began
    console.print(f"[green]✓[/] PostgreSQL ready at {mask_dsn(s.source_dsn)} ({took:.1f}s)")
    return database if started else None


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(
    story: bool = typer.Option(True, help="Play the fee-payment story once after start."),
    simulators: bool = typer.Option(True, help="Point providers at the local simulators."),
) -> None:
    """Start Kafka, the ingress, processors, connectors and simulators; Ctrl-C stops them all."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    base = settings()
    # This process talks to the person running it; its components log to their files.
    configure_logging("WARNING", "console", component="hub-run")
    s = with_simulators(base) if simulators else base
    broker = local_broker(s) if s.uses_local_broker else None
    started_broker = False
    started_postgres: LocalPostgres | None = None
    stack = HubStack(s, s.home / "logs", simulators=simulators, on_event=report_event)
    try:
        if broker is not None:
            started_broker = not broker.status().running
            began = time.monotonic()
            broker.up()
            console.print(
                f"[green]✓[/] Kafka ready at {s.bootstrap_servers} "
                f"({time.monotonic() - began:.1f}s)"
            )
        topics = topic_catalog(s)
        apply_catalog(
            AdminClient(admin_config(s)), topics, s.topic_partitions, s.topic_replication_factor
        )
        console.print(f"[green]✓[/] {len(topics)} topics applied")
        prepare_catalog(s)
        started_postgres = _start_postgres(s)
        stack.start(
            on_ready=lambda name, took: console.print(f"[green]✓[/] {name} ready ({took:.1f}s)")
        )
        if story:
            play_story(s, "captured")
            play_failover_story(s)
            play_phone_story(s)
            play_messaging_stories(s)
        _serve(s, stack)
    except (
        KafkaSetupError,
        PortTakenError,
        ServiceFailedError,
        KafkaException,
        PostgresSetupError,
    ) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("\nstopping…")
    finally:
        stack.stop()
        if started_postgres is not None:
            started_postgres.down()
        if broker is not None and started_broker:
            broker.down()
        console.print("stopped: every process this run started has exited")


def _serve(s: Settings, stack: HubStack) -> None:
    table = Table("what", "where", show_header=False, box=None)
    table.add_row("webhooks", f"POST {s.ingress_url}/webhooks/<provider>/<tenant>")
    table.add_row("admin API", f"{s.admin_url}/v1 (OpenAPI at {s.admin_url}/openapi.json)")
    table.add_row("catalog", s.catalog_dsn)
    table.add_row("simulators", f"{s.simulator_url}/_sim/requests")
    table.add_row("database", f"{mask_dsn(s.source_dsn)} (change a student: the sync follows)")
    table.add_row("logs", str(s.home / "logs"))
    console.print("\n[bold]The hub is running.[/] Ctrl-C stops everything it started.")
    console.print(table)
    while True:
        time.sleep(1.0)
        stack.restart_crashed()  # reports through report_event; never waits for a backoff


def report_event(event: Event) -> None:
    """What the supervisor did about a crashed component, for the person running the hub."""
    service = event.service
    match event:
        case Crashed(returncode=code, attempt=attempt, delay=delay):
            console.print(
                f"[yellow]![/] {service.name} exited (code {code}); restart attempt {attempt} "
                f"in {delay:.1f}s (log: {escape(str(service.log_file))})",
                highlight=False,
            )
        case Restarted(attempt=attempt, delay=delay):
            console.print(
                f"[yellow]↻[/] {service.name} restarted (attempt {attempt}, after {delay:.1f}s)",
                highlight=False,
            )
        case GaveUp():
            _report_given_up(event)


def _report_given_up(event: GaveUp) -> None:
    # Loud on purpose: the hub keeps serving, but without this component.
    service, name = event.service, event.service.name
    body = Text()
    body.append(
        f"{name} crashed {event.rapid_crashes} times in a row (last exit code "
        f"{event.returncode}), each soon after starting, so it is no longer restarted. "
        "The rest of the hub keeps running without it; fix the cause and restart `hub run`.\n",
        style="bold red",
    )
    body.append(f"log: {service.log_file}\nlast lines:\n", style="red")
    body.append(service.log_tail(20))
    console.print(Panel(body, title=f"gave up on {name}", title_align="left", border_style="red"))


def demo(
    outcome: str = typer.Option("captured", help="Fee story: captured or failed."),
    gateway: str = typer.Option(
        "razorpay", help="The payment gateway the fee story goes through (hub providers list)."
    ),
    failover: bool = typer.Option(
        False, "--failover", help="Play seed 004's dual gateway: Cashfree down, Razorpay takes it."
    ),
    phone: bool = typer.Option(False, "--phone", help="Play the student phone sync story instead."),
    messages: str | None = typer.Option(
        None,
        "--messages",
        help="Play a messaging story instead: email (SendGrid -> SES), sms (Twilio's "
        "receipt -> MSG91), bulk (500 parents), or all.",
    ),
) -> None:
    """Play a seed story against a hub that is already running (`hub run`)."""
    s = with_simulators(settings())
    if phone:
        play_phone_story(s)
        return
    if messages is not None:
        if messages not in ("email", "sms", "bulk", "all"):
            fail("--messages must be email, sms, bulk or all")
        play_messaging_stories(s, messages)
        return
    if failover:
        play_failover_story(s)
        return
    if outcome not in ("captured", "failed"):
        fail("--outcome must be captured or failed")
    gateways = [n for n, p in provider_registry().items() if p.category == "payment"]
    if gateway not in gateways:
        fail(f"--gateway must be one of {', '.join(gateways)}")
    play_story(s, outcome, gateway)
