import socket
from pathlib import Path

import pytest

from hub.local_kafka import (
    BrokerConfig,
    LocalBroker,
    PortInUseError,
    new_cluster_id,
    port_is_free,
    server_properties,
)


def props(cfg: BrokerConfig) -> dict[str, str]:
    lines = [line for line in server_properties(cfg).splitlines() if line]
    return dict(line.split("=", 1) for line in lines)


def test_single_node_kraft_on_loopback_only(tmp_path: Path):
    p = props(BrokerConfig(home=tmp_path, port=29092, controller_port=29093))
    assert p["process.roles"] == "broker,controller"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert p["controller.quorum.bootstrap.servers"] == "127.0.0.1:29093"
    assert p["offsets.topic.replication.factor"] == "1"
    assert p["transaction.state.log.min.isr"] == "1"
    assert p["auto.create.topics.enable"] == "false"
    assert p["log.dirs"].startswith(str(tmp_path))


def test_a_taken_port_is_a_clear_error_naming_the_setting(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        assert not port_is_free(taken)
        broker = LocalBroker(BrokerConfig(home=tmp_path, port=taken, controller_port=taken + 1))
        with pytest.raises(PortInUseError, match="HUB_KAFKA_PORT"):
            broker.up(timeout=1)


def test_status_of_a_broker_that_never_ran(tmp_path: Path):
    status = LocalBroker(BrokerConfig(home=tmp_path, port=1, controller_port=2)).status()
    assert (status.running, status.reachable, status.pid) == (False, False, None)


def test_cluster_ids_never_look_like_an_option():
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
