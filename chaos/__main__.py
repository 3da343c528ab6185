"""`make chaos` (`python -m chaos [SCENARIO…] [--short]`): run fault scenarios, print the table."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chaos.check import Tally
from chaos.scenarios import FULL, SHORT, Row
from chaos.suite import SCENARIOS
from core.logging import configure_logging


def table(rows: list[Row]) -> Table:
    out = Table(
        "scenario",
        "traffic",
        "faults injected",
        "lost",
        "duplicated",
        "out of order",
        "stuck",
        "verdict",
        "time",
    )
    for row in rows:
        kinds: dict[str, int] = {}
        for fault in row.faults:
            kinds[fault] = kinds.get(fault, 0) + 1
        described = ", ".join(f"{n}× {k}" for k, n in kinds.items()) or "none"
        t = row.tally
        colour = "green" if row.verdict == "PASS" else "red"
        out.add_row(
            row.scenario,
            row.traffic,
            described,
            str(t.lost),
            str(t.duplicated),
            str(t.out_of_order),
            str(t.stuck),
            f"[{colour}]{row.verdict}[/]",
            f"{row.seconds:.0f}s",
        )
    return out


def _stop_on_sigterm() -> None:
    """SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so every broker, database and
    component a scenario started is stopped on the way out."""

    def interrupt(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str]) -> int:
    _stop_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("scenarios", nargs="*", help=f"default: all ({', '.join(SCENARIOS)})")
    parser.add_argument("--short", action="store_true", help="about 100 payments, 1-2 faults each")
    args = parser.parse_args(argv)
    chosen = args.scenarios or list(SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    # The suite prints its own progress and table; the components log to their files.
    configure_logging("WARNING", "console", component="chaos")
    console = Console(width=180)
    rows = []
    for name in chosen:
        console.print(f"[bold]▶ {name}[/]")
        started = time.monotonic()
        try:
            row = SCENARIOS[name](SHORT if args.short else FULL)
        except Exception as exc:  # a scenario that breaks is a failed scenario, not the end
            console.print_exception()
            row = Row(name, "(did not finish)", tally=Tally(notes=[f"{type(exc).__name__}: {exc}"]))
            row.tally.stuck = 1
        row.seconds = time.monotonic() - started
        rows.append(row)
        for note in row.tally.notes:
            console.print(f"  [yellow]{note}[/]")
        console.print(table([row]))
    console.print(table(rows))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps([{**row.__dict__, "tally": row.tally.__dict__} for row in rows], indent=2)
    )
    return 0 if all(row.verdict == "PASS" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
