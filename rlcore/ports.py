"""Free TCP ports for process groups (DeepSpeed's, the weight-sync group's)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now and that no other process will be handed meanwhile: chosen below
    the kernel's ephemeral range, where bind(port 0), which Ray's workers and gRPC servers call all
    the time, never lands. A port from bind(0) itself can be taken between this call and the
    TCPStore's listen (seen once: EADDRINUSE when a restarted engine re-joined the sync group)."""
    low, _ = _ephemeral_range()
    start = 20000  # above Ray's default worker ports (10002-19999)
    for _ in range(64 if low - start >= 64 else 0):
        port = random.randrange(start, low)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no room below the ephemeral range: the kernel's choice
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
