"""Backward compatibility of schema changes: can the new schema read old data?

Checked against every version of each .avsc that git has committed
(BACKWARD_TRANSITIVE), so a consumer deployed with today's schemas still reads
records written by any earlier hub. Apache Avro's own checker decides; a
committed file is loaded with its committed siblings so named types resolve as
they did then.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas.store import AVRO_DIR, SchemaStore, full_schema_json


@dataclass(frozen=True)
class Incompatibility:
    schema: str
    against: str  # the commit (or label) of the older version
    messages: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.schema} cannot read data written by {self.against}: " + "; ".join(
            self.messages
        )


def check_backward(new_json: str, old_json: str) -> list[str]:
    """Why a reader with `new_json` cannot read data written with `old_json` (empty: it can)."""
    reader = avro.schema.parse(new_json)
    writer = avro.schema.parse(old_json)
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro is untyped
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    locations = sorted(result.locations)
    return [
        f"{m} at {loc}" for m, loc in zip(sorted(result.messages), locations, strict=False)
    ] or [str(result.compatibility)]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _commits_touching(repo: Path, rel_dir: str) -> list[str]:
    try:
        return _git(repo, "log", "--format=%H", "--", rel_dir).split()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return []


def _store_at(repo: Path, commit: str, rel_dir: str) -> SchemaStore | None:
    names = _git(repo, "ls-tree", "--name-only", f"{commit}:{rel_dir}").split()
    if not names:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="hub-schemas-"))
    for name in names:
        if name.endswith(".avsc"):
            (tmp / name).write_text(_git(repo, "show", f"{commit}:{rel_dir}/{name}"))
    return SchemaStore(tmp)


def check_against_history(
    current: SchemaStore | None = None, directory: Path = AVRO_DIR
) -> list[Incompatibility]:
    """Every backward incompatibility of the working tree's schemas with git history."""
    current = current or SchemaStore(directory)
    repo = Path(_git(directory, "rev-parse", "--show-toplevel").strip())
    rel_dir = str(directory.resolve().relative_to(repo.resolve()))
    problems: list[Incompatibility] = []
    for commit in _commits_touching(repo, rel_dir):
        old_store = _store_at(repo, commit, rel_dir)
        if old_store is None:
            continue
        for old in old_store.entries():
            try:
                new = current.get(old.name)
            except LookupError:
                problems.append(Incompatibility(old.name, commit[:12], ("schema was removed",)))
                continue
            messages = check_backward(full_schema_json(new), full_schema_json(old))
            if messages:
                problems.append(Incompatibility(old.name, commit[:12], tuple(messages)))
    return problems
