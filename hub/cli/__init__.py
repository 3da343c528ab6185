"""`hub`: the operator's command line. Every command has --help."""

from __future__ import annotations

import typer

from hub.cli import (
    admin_cmd,
    audit_cmd,
    cdc_cmd,
    components_cmd,
    dlq_cmd,
    kafka_cmd,
    keys_cmd,
    messages_cmd,
    providers_cmd,
    publish_cmd,
    run_cmd,
    templates_cmd,
    tenants_cmd,
    topics_cmd,
)

app = typer.Typer(
    name="hub",
    help="Integration Hub: webhooks in, provider calls out, on Apache Kafka.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
app.add_typer(kafka_cmd.app, name="kafka")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(components_cmd.ingress, name="ingress")
app.add_typer(components_cmd.processors, name="processors")
app.add_typer(components_cmd.connectors, name="connectors")
app.add_typer(components_cmd.retries, name="retries")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(cdc_cmd.postgres, name="postgres")
app.add_typer(cdc_cmd.cdc, name="cdc")
app.add_typer(components_cmd.simulators, name="simulators")
app.add_typer(providers_cmd.app, name="providers")
app.add_typer(admin_cmd.admin, name="admin")
app.add_typer(admin_cmd.api_keys, name="api-keys")
app.add_typer(templates_cmd.app, name="templates")
app.add_typer(tenants_cmd.tenants, name="tenants")
app.add_typer(tenants_cmd.accounts, name="accounts")
app.add_typer(keys_cmd.keys, name="keys")
app.add_typer(messages_cmd.messages, name="messages")
app.add_typer(messages_cmd.bulk, name="bulk")
app.command()(publish_cmd.publish)
app.command()(run_cmd.run)
app.command()(run_cmd.demo)


def main() -> None:
    app()
