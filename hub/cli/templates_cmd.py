"""`hub templates list | show | render`: the message templates of the messaging config.

The templates live in the messaging policy file (HUB_MESSAGING_CONFIG, default
deploy/messaging.toml; processors/messaging_config.py describes the format). `render`
fills one in as the hub would, and tells an SMS's encoding and segment count: the
number of messages the operator bills.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hub.cli.common import console, err_console, fail, settings

if TYPE_CHECKING:
    from processors.messaging_config import MessagingConfig
    from processors.templates import Template
    from schemas.events import Channel

app = typer.Typer(
    help="Message templates (SMS, email, WhatsApp) from the messaging config.",
    no_args_is_help=True,
)

CONFIG = typer.Option(
    None,
    "--config",
    help="The messaging config TOML. [default: HUB_MESSAGING_CONFIG, else deploy/messaging.toml]",
    dir_okay=False,
)
CHANNEL = typer.Option(None, "--channel", help="sms, email or whatsapp.")
TENANT = typer.Option(
    None, "--tenant", help='A tenant id: its own templates and the shared ("*") ones.'
)
LOCALE = typer.Option(None, "--locale", help="e.g. hi or hi-IN (then its language, then en).")

USAGE = 2  # the exit code for arguments that name nothing or leave something out


def _load(path: Path | None) -> MessagingConfig:
    from processors.messaging_config import MessagingConfigError, load_messaging

    try:
        return load_messaging(path or settings().messaging_config)
    except MessagingConfigError as exc:
        fail(escape(str(exc)))


def _channel(value: str | None) -> Channel | None:
    from processors.messaging_config import CHANNELS

    if value is None:
        return None
    if value.lower() not in CHANNELS:
        fail(f"unknown channel {escape(value)!r}; use one of {', '.join(CHANNELS)}", USAGE)
    return CHANNELS[value.lower()]


def _providers(t: Template) -> str:
    return ", ".join(f"{p}: {ref}" for p, ref in sorted(t.provider_templates.items())) or "-"


@app.command("list")
def list_templates(
    tenant: str | None = TENANT,
    channel: str | None = CHANNEL,
    config: Path | None = CONFIG,
) -> None:
    """Every template: name, channel, locales, variables, DLT template id, providers."""
    book = _load(config).templates
    wanted = _channel(channel)
    groups: dict[tuple[str, str, str], list[Template]] = {}
    for scope, t in book.entries(tenant):
        if wanted is None or t.channel is wanted:
            groups.setdefault((scope, t.name, t.channel.value), []).append(t)
    table = Table(
        "name", "channel", "tenant", "locales", "variables", "DLT template id", "providers"
    )
    for (scope, name, ch), found in groups.items():
        dlt = dict.fromkeys(t.dlt_template_id for t in found if t.dlt_template_id)
        variables = sorted({v for t in found for v in t.variables})
        providers = dict.fromkeys(_providers(t) for t in found)
        table.add_row(
            name,
            ch.lower(),
            scope,
            ", ".join(t.locale for t in found),
            ", ".join(variables) or "-",
            "\n".join(dlt) or "-",
            escape("\n".join(providers)),
        )
    console.print(table)
    console.print(f"{len(groups)} template(s)")


def _show_one(scope: str, t: Template) -> None:
    console.print(
        f"[bold]{t.name}[/] {t.channel.value.lower()} {t.locale} [dim](tenant {escape(scope)!r})[/]"
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_row("variables", ", ".join(t.variables) or "-")
    facts.add_row("parameters", ", ".join(t.parameters) or "-")
    facts.add_row("DLT template id", t.dlt_template_id or "-")
    facts.add_row("DLT entity id", t.dlt_entity_id or "-")
    facts.add_row("providers", escape(_providers(t)))
    console.print(facts)
    for part, source in (("subject", t.subject), ("text", t.text), ("html", t.html)):
        if source is not None:
            console.print(Panel(Text(source), title=part, title_align="left"))


@app.command("show")
def show_template(
    name: str = typer.Argument(..., help="The template's name (hub templates list)."),
    tenant: str | None = TENANT,
    channel: str | None = CHANNEL,
    locale: str | None = LOCALE,
    config: Path | None = CONFIG,
) -> None:
    """One template's source texts and ids, per channel and locale. With --tenant,
    --channel and --locale: the one that tenant would be given."""
    from processors.templates import TemplateError

    book = _load(config).templates
    wanted = _channel(channel)
    if tenant is not None and wanted is not None and locale is not None:
        try:
            found = book.find(tenant, name, wanted, locale)
        except TemplateError as exc:
            fail(escape(str(exc)), USAGE)
        _show_one(next(scope for scope, t in book.entries(tenant) if t is found), found)
        return
    shown = [
        (scope, t)
        for scope, t in book.entries(tenant)
        if t.name == name
        and (wanted is None or t.channel is wanted)
        and (locale is None or t.locale.lower() == locale.lower())
    ]
    if not shown:
        visible = book.list(tenant)
        has = [f"{t.channel.value.lower()} {t.locale}" for t in visible if t.name == name]
        if has:
            fail(
                f"template {name!r} has no such channel or locale (it has: {', '.join(has)})", USAGE
            )
        known = sorted({t.name for t in visible})
        fail(f"no template {name!r} (known: {', '.join(known) or 'none'})", USAGE)
    for scope, t in shown:
        _show_one(scope, t)


def _variables(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--var {escape(pair)!r}: write it as name=value", USAGE)
        values[name] = value
    return values


@app.command("render")
def render_template(
    name: str = typer.Argument(..., help="The template's name (hub templates list)."),
    tenant: str = typer.Option(..., "--tenant", help="The tenant id, e.g. greenwood."),
    channel: str = typer.Option(..., "--channel", help="sms, email or whatsapp."),
    var: list[str] = typer.Option(
        [], "--var", help="A variable: name=value (repeatable), e.g. --var student_name=Asha."
    ),
    locale: str | None = LOCALE,
    config: Path | None = CONFIG,
) -> None:
    """Fill a template in as the hub would; for SMS also its encoding and segments."""
    from processors.templates import MissingVariablesError, TemplateError

    book = _load(config).templates
    wanted = _channel(channel) or fail("--channel is required", USAGE)
    try:
        rendered = book.render(tenant, name, wanted, _variables(var), locale)
    except MissingVariablesError as exc:
        add = " ".join(f"--var {m}=…" for m in exc.missing)
        err_console.print(f"[bold red]error:[/] [red]{escape(str(exc))}[/]; add {escape(add)}")
        raise typer.Exit(USAGE) from None
    except TemplateError as exc:
        err_console.print(f"[bold red]error:[/] [red]{escape(str(exc))}[/]")
        raise typer.Exit(USAGE) from None
    t = rendered.template
    console.print(f"[bold]{t.name}[/] {t.channel.value.lower()} {t.locale}")
    if rendered.subject is not None:
        console.print(Panel(Text(rendered.subject), title="subject", title_align="left"))
    console.print(Panel(Text(rendered.text), title="text", title_align="left"))
    if rendered.html is not None:
        console.print(Panel(Text(rendered.html), title="html", title_align="left"))
    if rendered.parameters:
        console.print(
            "parameters: " + escape(", ".join(repr(p) for p in rendered.parameters)),
            highlight=False,
        )
    if rendered.segments is not None:
        s = rendered.segments
        console.print(
            f"encoding: {s.encoding}  characters: {s.characters}  segments: {s.segments}"
            f"  ({s.per_segment} per segment)",
            highlight=False,
        )
