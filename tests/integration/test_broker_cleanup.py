"""A broker that fails to start does not outlive the command (or test run) that started it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.ports import free_port
from core.settings import Settings
from hub.local_kafka import BrokerConfig, KafkaSetupError, LocalBroker, pid_alive


def test_a_broker_not_ready_in_time_is_stopped_and_no_process_is_left(tmp_path: Path) -> None:
    broker = LocalBroker(
        BrokerConfig(
            home=tmp_path,
            port=free_port(),
            controller_port=free_port(),
            heap="256m",
            cache_home=Settings().home,
        )
    )
    with pytest.raises(KafkaSetupError, match="did not become ready"):
        broker.up(timeout=0.5)  # the JVM alone takes longer than that to start
    state = broker.cfg.state_file
    assert not state.exists()
    assert broker.status().pid is None
    assert not any(
        pid_alive(int(p.name))
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and str(broker.cfg.dir).encode() in _cmdline(p)
    )


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
