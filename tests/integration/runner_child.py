"""A StageRunner in its own process, for tests that kill it (python runner_child.py ...).

The stage de-duplicates by key: the first record of a key is echoed to the
output topic, later ones are dropped, and the keys seen are its state. With
`--die-at-commit N` the process exits hard (os._exit, as SIGKILL would leave
it) inside its Nth transaction, after the outputs and state were produced and
before the commit: the window a non-transactional processor loses outputs in.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any

from confluent_kafka import Message

from core.kafka import Record
from core.settings import Settings
from core.transactions import Transactor
from processors.runner import Stage, StageRunner, StepContext, stage_producer_config
from schemas.codec import make_codec


class DyingTransactor(Transactor):
    def __init__(self, config: dict[str, Any], die_at: int) -> None:
        super().__init__(config)
        self.die_at = die_at
        self.commits = 0

    def _commit(self) -> None:
        self.commits += 1
        if self.commits == self.die_at:
            self.producer.flush(10)  # outputs and state are on the broker, uncommitted
            os._exit(9)
        super()._commit()


def dedup_stage(source: str, output: str, table: str) -> Stage:
    def step(ctx: StepContext, msg: Message) -> list[Record]:
        key = (msg.key() or b"").decode()
        seen = ctx.table(table)
        if key in seen:
            return []
        seen.set(key, msg.offset())
        return [Record(output, msg.key(), msg.value(), [])]

    return Stage("test-dedup", (source,), step, tables=(table,))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--die-at-commit", type=int, default=0)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    settings = Settings(kafka_bootstrap_servers=args.bootstrap, instance_id="test")
    runner = StageRunner(
        settings,
        args.group,
        [dedup_stage(args.source, args.output, args.table)],
        make_codec(None),
        batch_size=args.batch,
    )
    if args.die_at_commit:
        runner.tx = DyingTransactor(stage_producer_config(settings, args.group), args.die_at_commit)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner.run(stop)


if __name__ == "__main__":
    main()
