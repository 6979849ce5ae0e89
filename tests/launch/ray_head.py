"""A private Ray head for tests: 127.0.0.1, free ports, its own temp dir and token file.

    with local_head(num_cpus=4) as head:
        head.dashboard        # http://127.0.0.1:PORT (job submission API)
        head.env              # RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH=<its token file>, PATH

It is started with `ray start --head --block` in its own session and stopped by signalling that
process group, then any process still naming its temp dir. Never `ray stop`: that stops every Ray
cluster on the machine, other people's included. The token lives in the temp dir, so
~/.ray/auth_token is neither read nor written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Head:
    dashboard: str
    temp_dir: Path
    token: str
    env: dict[str, str]
    log: Path


def _wait_ready(url: str, token: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.time() + timeout
    req = urllib.request.Request(url + "/api/version", headers={"Authorization": f"Bearer {token}"})
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return
        time.sleep(1.0)
    raise TimeoutError(f"the Ray dashboard at {url} did not answer in {timeout}s")


def _stop(proc: subprocess.Popen, temp_dir: Path) -> None:
    import psutil

    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)  # `ray start --block` shuts its node down on SIGTERM
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    mine = str(temp_dir)
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(mine in part for part in p.info["cmdline"] or []):
                p.kill()


@contextlib.contextmanager
def local_head(num_cpus: int = 4, timeout: float = 240.0) -> Iterator[Head]:
    temp_dir = Path(tempfile.mkdtemp(prefix="rlr", dir="/tmp"))  # short: socket paths < 108
    token = secrets.token_hex(16)
    (temp_dir / "token").write_text(token)
    gcs, dash, agent, agent_grpc, rt_env, metrics, client, nm, om = free_ports(9)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN") and not k.startswith("RAY_JOB")
    }
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(temp_dir / "token"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_USAGE_STATS_ENABLED="0",
    )
    cmd = [
        str(BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address", "127.0.0.1", "--port", str(gcs), "--temp-dir", str(temp_dir),
        "--num-cpus", str(num_cpus), "--num-gpus", "0", "--include-dashboard", "true",
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
        "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
        "--runtime-env-agent-port", str(rt_env), "--metrics-export-port", str(metrics),
        "--ray-client-server-port", str(client), "--node-manager-port", str(nm),
        "--object-manager-port", str(om),
    ]  # fmt: skip
    log = temp_dir / "ray_start.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{dash}"
    try:
        _wait_ready(url, token, proc, log, timeout)
        yield Head(url, temp_dir, token, env, log)
    finally:
        _stop(proc, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
