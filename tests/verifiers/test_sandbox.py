"""The sandbox (verifiers/sandbox.py) against hostile programs: each returns within its limit plus a
small margin, with nothing left running and nothing written on the host."""

from __future__ import annotations

import os
import socket
import time
import uuid

import psutil
import pytest
from rlcore.verifiers.sandbox import SandboxLimits, isolation, run_python

FAST = SandboxLimits(wall_s=3.0, cpu_s=2, memory_mb=512, max_procs=16, output_bytes=1000)
MARGIN_S = 3.0


def _strays(before: frozenset[int], uid: int) -> list[psutil.Process]:
    """Our new children (other tests may keep pool workers), and any process of the run's uid."""
    own = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    per_run = [p for p in psutil.process_iter(["uids"]) if uid and p.info["uids"].real == uid]
    return own + per_run


def _run(src: str, limits: SandboxLimits = FAST):
    before = frozenset(p.pid for p in psutil.Process().children(recursive=True))
    t0 = time.monotonic()
    r = run_python(src, limits=limits)
    assert time.monotonic() - t0 < limits.wall_s + MARGIN_S
    assert _strays(before, r.extra["uid"]) == []
    return r


def needs_bwrap():
    if isolation() != "bwrap":
        pytest.skip(f"filesystem/network isolation needs bubblewrap; this machine: {isolation()}")


def test_runs_python_and_reports_isolation():
    r = _run("print(6 * 7)")
    assert r.returncode == 0 and r.stdout.strip() == "42"
    assert r.isolation in ("bwrap", "unshare", "rlimits")


HOSTILE = {
    "infinite_loop": "while True: pass",
    "sleep_forever": "import time; time.sleep(1000)",
    "fork_bomb": "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
    "setsid_escape": "import os, time\nif os.fork() == 0:\n    os.setsid(); time.sleep(1000)\n"
    "time.sleep(1000)",
    "memory_bomb": "x = []\nwhile True: x.append(bytearray(50 << 20))",
    "output_flood": "import sys\nwhile True: sys.stdout.write('A' * 65536)",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_programs_end_within_limits(name):
    r = _run(HOSTILE[name])
    assert r.timed_out or r.returncode != 0
    if name == "output_flood":
        assert len(r.stdout) <= FAST.output_bytes and r.stdout_truncated


def test_no_network_to_host_loopback_or_outside():
    needs_bwrap()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    src = f"""
import socket
for addr in [("127.0.0.1", {port}), ("8.8.8.8", 53), ("1.1.1.1", 443)]:
    try:
        socket.create_connection(addr, timeout=1); print("CONNECTED", addr)
    except OSError as e:
        print("blocked", addr)
"""
    r = _run(src)
    assert "CONNECTED" not in r.stdout and r.stdout.count("blocked") == 3
    with pytest.raises(BlockingIOError):
        srv.accept()  # nothing reached the host's listener
    srv.close()


def test_writes_outside_work_dir_do_not_reach_host():
    needs_bwrap()
    token = uuid.uuid4().hex
    targets = [
        f"/tmp/rlcore-escape-{token}",
        f"/var/tmp/rlcore-escape-{token}",
        os.path.join(os.getcwd(), f"rlcore-escape-{token}"),
        f"/rlcore-escape-{token}",
    ]
    src = "import os\n" + "".join(
        f"try:\n    open({t!r}, 'w').write('x')\nexcept OSError:\n    pass\n" for t in targets
    )
    src += "open('inside.txt', 'w').write('ok'); print(os.getcwd())"
    r = _run(src)
    assert r.returncode == 0
    assert not any(os.path.exists(t) for t in targets)


def test_channel_fd_and_stdin():
    r = _run(
        "import os, sys\nos.write(int(os.environ['RLCORE_CHANNEL_FD']), sys.stdin.read().encode())"
    )
    assert r.channel == b""  # nothing was fed
    r = run_python(
        "import os, sys\nos.write(int(os.environ['RLCORE_CHANNEL_FD']), sys.stdin.read().encode())",
        stdin=b"hello",
        limits=FAST,
    )
    assert r.channel == b"hello"
