"""The CDC consumer's log lines and dead letters quote no credential from the rows it reads.

The consumer loads no tenant (it has no secret to mask by value): what it must never copy
into a log line or a dead letter's error is a quoted credential ("Basic <base64>", "Bearer
…") or a value under a key naming a secret. A change event quoting them runs through the
stage runner's own step (processors.runner: the step, and on failure the dead letter and
its log line); the original record stays in the dead letter untouched, for a replay.
"""

from __future__ import annotations

import base64
import secrets
import time

import orjson
from cdc_support import FakeMessage, key_bytes, phone_update
from secrets_support import Found, leaks, rendered_logs

from core.kafka import Record
from core.masking import MASKER
from core.ports import free_port
from core.settings import Settings
from processors.cdc import consumer
from processors.runner import StageRunner
from schemas.codec import SingleObjectCodec
from schemas.events import DeadLetter, decode_as

CODEC = SingleObjectCodec()
PASSWORD = f"canary-erp-{secrets.token_hex(8)}"
BASIC = base64.b64encode(f"erp-user:{PASSWORD}".encode()).decode()
BEARER = f"ya29.canary{secrets.token_hex(12)}"
NEEDLES = {BASIC: "Basic credential", BEARER: "Bearer token"}


def runner() -> StageRunner:
    # A broker that is not there: the step, the dead letter and its log need none.
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    return StageRunner(settings, "secrets-cdc-test", [consumer.stage(settings, CODEC)], CODEC)


def letter_texts(records: list[Record]) -> list[Found]:
    """What a dead letter says about the failure (its original record is kept as it came)."""
    texts: list[Found] = []
    for record in records:
        if record.value is not None and record.topic.startswith("dlq."):
            letter = decode_as(CODEC, record.value, DeadLetter)
            texts += [("dead letter", letter.error_message), ("dead letter", letter.stack)]
            texts += [
                ("dead letter header", f"{h.key}={h.value!r}") for h in letter.original_headers
            ]
    return texts


def test_failing_and_passing_change_events_leak_no_credential() -> None:
    assert MASKER.mask_text(PASSWORD) == PASSWORD  # nothing registered: as in the consumer
    quoted = f"Authorization: Basic {BASIC}; Bearer {BEARER}"
    bad_op = {**phone_update(), "op": quoted}
    bad_row = {**phone_update(), "after": quoted}
    good = phone_update()
    good["after"] = {**good["after"], "notes": quoted, "password": PASSWORD}
    values = [
        orjson.dumps(bad_op),
        orjson.dumps(bad_row),
        quoted.encode(),  # not JSON at all
        orjson.dumps(good),
    ]
    stage_runner = runner()
    records: list[Record] = []
    with rendered_logs() as logs:
        for offset, value in enumerate(values):
            message = FakeMessage(value, key_bytes(), _offset=offset)
            records += stage_runner._step(message, time.time())  # the runner's own step
    dead = [r for r in records if r.topic.startswith("dlq.")]
    assert len(dead) == 3  # the three broken ones, each a dead letter
    assert '"event": "record.dead_lettered"' in logs.getvalue()
    assert leaks([("log", logs.getvalue()), *letter_texts(records)], NEEDLES) == []
