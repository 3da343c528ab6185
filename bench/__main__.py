"""`make bench`: run every benchmark on a throwaway broker and print the ratios.

python -m bench            # all
python -m bench ingress    # one
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench import cdc, e2e, fuzz_ingress, ingress, messaging, replay, runner
from bench.common import bench_environment
from core.logging import configure_logging

BENCHES = {
    "ingress": ingress.run,
    "e2e": e2e.run,
    "replay": replay.run,
    "cdc": cdc.run,
    "runner": runner.run,
    "messaging": messaging.run,
    "fuzz_ingress": fuzz_ingress.run,
}
# Run when named only (`make fuzz` does): 100,000 hostile requests take minutes.
ON_REQUEST = frozenset({"fuzz_ingress"})


def main(names: list[str]) -> None:
    if any(n in ("-h", "--help") for n in names):
        print(__doc__.strip() + f"\n\nbenchmarks: {', '.join(BENCHES)}")
        return
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        sys.exit(f"no benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    chosen = names or [n for n in BENCHES if n not in ON_REQUEST]
    configure_logging("WARNING", "console", component="bench")
    results: dict[str, object] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for name in chosen:
        # A fresh broker per benchmark: one's leftovers must not be another's backlog.
        with (
            tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp,
            bench_environment(Path(tmp)) as settings,
        ):
            print(f"running {name}…", flush=True)
            results[name] = BENCHES[name](settings)
            print(json.dumps(results[name], indent=2), flush=True)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"written to {out / 'latest.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
