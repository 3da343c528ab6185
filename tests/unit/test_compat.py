import json
import subprocess
from pathlib import Path

from schemas.compat import check_against_history, check_backward

V1 = {"type": "record", "name": "A", "namespace": "t", "fields": [{"name": "x", "type": "int"}]}


def with_fields(*extra):
    return json.dumps({**V1, "fields": V1["fields"] + list(extra)})


def test_adding_a_field_with_a_default_is_backward_compatible():
    assert (
        check_backward(with_fields({"name": "y", "type": "string", "default": ""}), json.dumps(V1))
        == []
    )


def test_adding_a_field_without_a_default_is_not():
    problems = check_backward(with_fields({"name": "y", "type": "string"}), json.dumps(V1))
    assert problems and "y" in " ".join(problems)


def test_type_promotion_int_to_long_is_allowed_but_not_string():
    as_long = json.dumps({**V1, "fields": [{"name": "x", "type": "long"}]})
    as_string = json.dumps({**V1, "fields": [{"name": "x", "type": "string"}]})
    assert check_backward(as_long, json.dumps(V1)) == []
    assert check_backward(as_string, json.dumps(V1)) != []


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_history_check_finds_an_incompatible_change_to_a_committed_schema(tmp_path):
    repo = tmp_path / "repo"
    avro_dir = repo / "schemas" / "avro"
    avro_dir.mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@t")
    _git(repo, "config", "user.name", "t")
    (avro_dir / "t.A.avsc").write_text(json.dumps(V1))
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "v1")
    assert check_against_history(directory=avro_dir) == []
    (avro_dir / "t.A.avsc").write_text(with_fields({"name": "y", "type": "string"}))
    problems = check_against_history(directory=avro_dir)
    assert [p.schema for p in problems] == ["t.A"]


def test_the_repository_schemas_are_backward_compatible_with_every_committed_version():
    # BACKWARD_TRANSITIVE against git history: fails the day someone commits
    # a schema change that cannot read records already on the topics.
    problems = check_against_history()
    assert problems == [], "\n".join(map(str, problems))
