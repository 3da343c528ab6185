from typer.testing import CliRunner

from hub.cli import app

runner = CliRunner()


def test_every_command_has_help():
    commands = [
        [],
        ["kafka"],
        ["kafka", "up"],
        ["kafka", "down"],
        ["kafka", "status"],
        ["topics", "apply"],
        ["topics", "list"],
        ["publish"],
        ["run"],
        ["demo"],
        ["ingress", "serve"],
        ["processors", "run"],
        ["connectors", "run"],
        ["connectors", "list"],
        ["simulators", "serve"],
    ]
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


def test_topics_list_shows_the_catalog():
    result = runner.invoke(app, ["topics", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "webhooks.raw.v1" in result.output and "RawWebhook" in result.output


def test_publish_explains_bad_input():
    result = runner.invoke(app, ["publish", "invoice", "{not json", "--tenant", "t"])
    assert result.exit_code == 1 and "not JSON" in result.output
    result = runner.invoke(app, ["publish", "refund", "{}", "--tenant", "t"])
    assert result.exit_code == 1 and "unknown event type" in result.output
    result = runner.invoke(app, ["publish", "invoice", '{"invoice_id": "I"}', "--tenant", "t"])
    assert result.exit_code == 1 and "not valid" in result.output


def test_kafka_commands_refuse_to_manage_an_external_cluster():
    result = runner.invoke(app, ["kafka", "up"], env={"KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9092"})
    assert result.exit_code == 1 and "does not manage a local broker" in result.output


def test_unknown_connector_is_refused_with_the_known_ones():
    result = runner.invoke(app, ["connectors", "run", "--provider", "nosuch"])
    assert result.exit_code == 1 and "razorpay" in result.output


def test_the_demo_refuses_a_gateway_that_is_not_declared_and_names_the_known_ones():
    result = runner.invoke(app, ["demo", "--gateway", "nosuch"])
    assert result.exit_code == 1
    assert "--gateway must be one of" in result.output
    assert "mpesa" in result.output
