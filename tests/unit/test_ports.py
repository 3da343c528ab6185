import random
import socket
from pathlib import Path

from core.ports import candidate_range, ephemeral_range, free_port, port_is_free


def test_free_ports_stay_out_of_the_range_outgoing_connections_use() -> None:
    low, high = ephemeral_range()
    ports = {free_port() for _ in range(50)}
    assert len(ports) == 50  # never the same port twice in one process
    assert all(not low <= p <= high for p in ports)
    assert all(port_is_free(p) for p in ports)


def test_a_port_taken_by_a_listener_is_not_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1])


def test_the_range_is_read_from_the_kernel_setting(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n")
    assert ephemeral_range(setting) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)


def test_candidates_lie_below_the_ephemeral_range_or_above_a_low_one() -> None:
    assert candidate_range((32768, 60999)) == range(20000, 32768)
    assert candidate_range((10000, 60000)) == range(60001, 65536)
    port = free_port(random.Random(7))
    assert port in candidate_range(ephemeral_range())
