"""`hub providers list | show`: what each provider declares (providers/<name>.py)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

import providers
from core.settings import Settings
from core.topics import commands_topic, connector_stage, dlq_topic, ledger_topic, results_topic
from hub.cli.common import console, fail, settings
from providers.spec import API, Provider

app = typer.Typer(
    help="The providers the hub speaks, as each declares itself.", no_args_is_help=True
)


def _base_url_key(name: str, which: str) -> str:
    return name if which == API else f"{name}.{which}"


def describe(declared: Provider, s: Settings) -> dict[str, Any]:
    """Everything `show` prints, as data (also the --json form)."""
    model = declared.account_model
    return {
        "name": declared.name,
        "title": declared.title,
        "category": declared.category,
        "summary": declared.summary,
        "operations": list(declared.operations),
        "webhooks": declared.webhooks is not None,
        "account_fields": [
            {
                "name": field,
                "secret": field in declared.secret_fields,
                "required": info.is_required(),
            }
            for field, info in model.model_fields.items()
        ],
        "base_urls": {
            which: {
                "default": default,
                "configured": providers.base_url(s, declared.name, which),
                "override": f"HUB_PROVIDER_BASE_URLS[{_base_url_key(declared.name, which)!r}]",
                "simulator_path": declared.simulator_paths[which],
            }
            for which, default in declared.base_urls.items()
        },
        "topics": {
            "commands": commands_topic(declared.name),
            "results": results_topic(declared.name),
            "ledger": ledger_topic(declared.name),
            "dead_letters": dlq_topic(connector_stage(declared.name)),
        },
        "docs": declared.docs_url,
    }


@app.command("list")
def list_providers(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per provider."),
) -> None:
    """Every declared provider: category, operations, webhooks and where it is called."""
    s = settings()
    described = [describe(p, s) for p in providers.registry().values()]
    if as_json:
        console.print_json(json.dumps(described))
        return
    table = Table("provider", "category", "operations", "webhooks", "base URL", "secret fields")
    for d in described:
        secrets = [f["name"] for f in d["account_fields"] if f["secret"]]
        table.add_row(
            f"{d['name']}\n[dim]{d['title']}[/]",
            d["category"],
            ", ".join(d["operations"]) or "-",
            "yes" if d["webhooks"] else "-",
            d["base_urls"][API]["configured"],
            ", ".join(secrets) or "-",
        )
    console.print(table)


@app.command("show")
def show_provider(
    name: str = typer.Argument(..., help="The provider's name (hub providers list)."),
    as_json: bool = typer.Option(False, "--json", help="As JSON."),
) -> None:
    """One provider: its account fields (which are secret), base URLs, topics, docs."""
    try:
        declared = providers.get(name)
    except providers.UnknownProviderError as exc:
        fail(str(exc))
    d = describe(declared, settings())
    if as_json:
        console.print_json(json.dumps(d))
        return
    console.print(f"[bold]{d['title']}[/] ({d['name']}, {d['category']}): {d['summary']}")
    fields = Table("account field", "secret", "required", title="account")
    for f in d["account_fields"]:
        fields.add_row(f["name"], "yes" if f["secret"] else "", "yes" if f["required"] else "")
    console.print(fields)
    urls = Table("base URL", "configured", "default", "override with", title="endpoints")
    for which, u in d["base_urls"].items():
        urls.add_row(which, u["configured"], u["default"], u["override"])
    console.print(urls)
    topics = Table("topic", "name", title="topics")
    for role, topic in d["topics"].items():
        topics.add_row(role, topic)
    console.print(topics)
    if d["docs"]:
        console.print(f"docs: {d['docs']}")
