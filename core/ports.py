"""Local TCP ports for the servers the hub starts on 127.0.0.1 (tests, bench, chaos).

A port handed out by binding to port 0 comes from the kernel's ephemeral range,
the same range every outgoing connection takes its local port from. Between
"this port is free" and the server binding it, any Kafka client, HTTP client or
database connection on the machine may take it as its own local port, and the
server then fails with "address in use". That was the suite's flaky failure
(the ingress, once in a few runs). Ports are therefore picked *below* the
ephemeral range, where no outgoing connection ever lands.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Below this, ports are well known or registered for common servers.
_LOWEST = 20000
_handed_out: set[int] = set()
_lock = threading.Lock()


def ephemeral_range(path: Path = _RANGE_FILE) -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default if unknown)."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def candidate_range(ephemeral: tuple[int, int]) -> range:
    """Ports below the ephemeral range (or above it, when it starts too low)."""
    low, high = ephemeral
    if low - _LOWEST >= 1000:
        return range(_LOWEST, low)
    return range(high + 1, 65536)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(rng: random.Random | None = None) -> int:
    """A port no server listens on, outside the ephemeral range, not handed out before
    by this process."""
    pick = rng or random.SystemRandom()
    ports = candidate_range(ephemeral_range())
    with _lock:
        for _ in range(200):
            port = pick.choice(ports)
            if port not in _handed_out and port_is_free(port):
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port found in {ports.start}-{ports.stop - 1} on 127.0.0.1")
