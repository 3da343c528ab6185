"""`hub templates list | show | render` against the demo file and small files of our own."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "deploy" / "messaging.toml"

OWN = """
[templates."*".alert.sms.en]
text = "Shared: {{ student_name }} absent"
dlt_template_id = "1107000000000000001"
provider_templates = { msg91 = "flow-shared" }

[templates.greenwood.alert.sms.en]
text = "Greenwood: {{ student_name }} absent on {{ date }}"
dlt_template_id = "1107000000000000002"

[templates."*".alert.whatsapp.en]
text = "WA {{ student_name }}"
provider_templates = { whatsapp = "alert_wa" }
parameters = ["student_name"]
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("HUB_MESSAGING_CONFIG", raising=False)
    return {"COLUMNS": "220"}


@pytest.fixture
def own(tmp_path: Path) -> Path:
    path = tmp_path / "messaging.toml"
    path.write_text(OWN)
    return path


def hub(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_every_templates_command_has_help(env: dict[str, str]) -> None:
    for command in [["templates"], ["templates", "list"], ["templates", "show"]]:
        code, out = hub(env, *command, "--help")
        assert code == 0, (command, out)
        assert "Usage" in out
    code, out = hub(env, "templates", "render", "--help")
    assert code == 0
    assert "--var" in out
    assert "--locale" in out


def test_list_the_demo_templates(env: dict[str, str]) -> None:
    code, out = hub(env, "templates", "list")
    assert code == 0, out
    rows = [line for line in out.splitlines() if "│" in line]
    assert rows[0].split("│")[1].strip() == "attendance_alert"
    assert [c.strip() for c in rows[0].split("│")[1:-1]] == [
        "attendance_alert",
        "sms",
        "*",
        "en, hi",
        "date, school, student_name",
        "1107172534810295631",
        "msg91: 6650f1c2d4e8a93b7c1e2f40",
    ]
    assert "1107172534810295648" in rows[1]  # the Hindi text's own DLT id, on the next line
    assert out.strip().endswith("5 template(s)")


def test_list_by_channel(env: dict[str, str]) -> None:
    code, out = hub(env, "templates", "list", "--channel", "WhatsApp")
    assert code == 0, out
    assert "whatsapp: attendance_alert" in out
    assert "fee_reminder" not in out
    assert out.strip().endswith("1 template(s)")


def test_list_for_a_tenant_shows_its_overrides(env: dict[str, str], own: Path) -> None:
    code, out = hub(env, "templates", "list", "--tenant", "greenwood", "--config", str(own))
    assert code == 0, out
    assert "1107000000000000002" in out
    assert "1107000000000000001" not in out
    assert "greenwood" in out
    code, out = hub(env, "templates", "list", "--tenant", "riverside", "--config", str(own))
    assert code == 0, out
    assert "1107000000000000001" in out
    assert "1107000000000000002" not in out


def test_the_config_comes_from_the_environment(own: Path) -> None:
    code, out = hub({"COLUMNS": "220", "HUB_MESSAGING_CONFIG": str(own)}, "templates", "list")
    assert code == 0, out
    assert "alert_wa" in out
    assert "attendance_alert" not in out


def test_show_prints_the_sources_and_ids(env: dict[str, str]) -> None:
    code, out = hub(env, "templates", "show", "attendance_alert", "--channel", "sms")
    assert code == 0, out
    assert "attendance_alert sms en (tenant '*')" in out
    assert "attendance_alert sms hi (tenant '*')" in out
    assert "whatsapp" not in out
    assert "Dear parent, {{ student_name }} was absent today ({{ date }}). {{ school }}" in out
    assert "DLT entity id    1101587263540012345" in out
    assert "parameters       student_name, date, school" in out


def test_show_resolves_as_the_hub_would(env: dict[str, str], own: Path) -> None:
    args = ["templates", "show", "alert", "--channel", "sms", "--config", str(own)]
    code, out = hub(env, *args, "--tenant", "greenwood", "--locale", "hi-IN")
    assert code == 0, out
    assert "alert sms en (tenant 'greenwood')" in out
    assert "Greenwood: {{ student_name }} absent on {{ date }}" in out
    assert "Shared:" not in out


def test_show_an_email_template_shows_subject_and_html(env: dict[str, str]) -> None:
    code, out = hub(env, "templates", "show", "fee_reminder", "--channel", "email")
    assert code == 0, out
    assert "Fee reminder: {{ amount }} due on {{ due_date }} for {{ student_name }}" in out
    assert '<p><a href="{{ pay_link }}">Pay online</a></p>' in out


def test_show_unknown_names_what_there_is(env: dict[str, str]) -> None:
    code, out = hub(env, "templates", "show", "nope")
    assert code == 2
    assert "no template 'nope' (known: attendance_alert, exam_result, fee_reminder)" in out
    code, out = hub(env, "templates", "show", "exam_result", "--channel", "email")
    assert code == 2
    assert "template 'exam_result' has no such channel or locale (it has: sms en)" in out


def test_render_sms_tells_encoding_and_segments(env: dict[str, str]) -> None:
    code, out = hub(
        env,
        "templates", "render", "attendance_alert", "--tenant", "greenwood", "--channel", "sms",
        "--var", "student_name=Asha", "--var", "date=2026-12-02",
        "--var", "school=Greenwood [High]",
    )  # fmt: skip
    assert code == 0, out
    assert "Dear parent, Asha was absent today (2026-12-02). Greenwood [High]" in out
    # 65 characters; "[" and "]" are in GSM-7's extension table: two septets each.
    assert "encoding: GSM-7  characters: 67  segments: 1  (160 per segment)" in out


def test_render_hindi_is_ucs2(env: dict[str, str]) -> None:
    code, out = hub(
        env,
        "templates", "render", "attendance_alert", "--tenant", "sunrise", "--channel", "sms",
        "--locale", "hi", "--var", "student_name=Asha", "--var", "date=2026-12-02",
        "--var", "school=Sunrise",
    )  # fmt: skip
    assert code == 0, out
    assert "attendance_alert sms hi" in out
    assert "encoding: UCS-2  characters: 71  segments: 2  (67 per segment)" in out


def test_render_whatsapp_lists_the_parameters(env: dict[str, str]) -> None:
    code, out = hub(
        env,
        "templates", "render", "attendance_alert", "--tenant", "riverside",
        "--channel", "whatsapp", "--var", "student_name=Asha", "--var", "date=2 Dec",
        "--var", "school=Riverside",
    )  # fmt: skip
    assert code == 0, out
    assert "parameters: 'Asha', '2 Dec', 'Riverside'" in out
    assert "encoding" not in out


def test_render_a_missing_variable_says_which_var_to_add(env: dict[str, str]) -> None:
    code, out = hub(
        env,
        "templates", "render", "attendance_alert", "--tenant", "greenwood", "--channel", "sms",
        "--var", "student_name=Asha",
    )  # fmt: skip
    assert code == 2
    assert (
        "error: template 'attendance_alert' needs variables 'date', 'school'; "
        "add --var date=… --var school=…"
    ) in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["exam", "--tenant", "greenwood", "--channel", "sms"],
            "no template 'exam' for SMS of tenant 'greenwood' "
            "(known: attendance_alert, exam_result, fee_reminder)",
        ),
        (
            ["exam_result", "--tenant", "greenwood", "--channel", "fax"],
            "unknown channel 'fax'; use one of sms, email, whatsapp",
        ),
        (
            ["exam_result", "--tenant", "greenwood", "--channel", "sms", "--var", "exam"],
            "--var 'exam': write it as name=value",
        ),
    ],
)
def test_render_refuses_bad_arguments(env: dict[str, str], args: list[str], message: str) -> None:
    code, out = hub(env, "templates", "render", *args)
    assert code == 2
    assert message in out


def test_a_broken_config_is_exit_code_1_naming_the_key(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[templates."*".alert.sms.en]\nsubject = "x"\n')
    code, out = hub(env, "templates", "list", "--config", str(bad))
    assert code == 1
    assert f'error: {bad}: templates."*".alert.sms.en: has no text' in out
