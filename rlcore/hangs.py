"""Hang dumps: every rlcore process's Python stack when a phase of the run takes far too long.

    register_stack_dump()                  # in each actor process, at start-up
    write_pids(run_dir, {"driver": process_info(), **cluster.processes()})
    dog = Watchdog(run_dir, limit_s, "stop", on_stop=stop.request)
    with dog.phase("rollout"):             # a thread watches the clock meanwhile
        ...
    rlcore stacks RUN_DIR                  # the same dump, on demand, from a live run

A hung actor cannot answer a Ray call, so the stacks come through a side channel: each actor
registers `faulthandler` on SIGUSR2 to append its threads' stacks to a file of its own
(`stack_file(pid)`), and the dumper signals it and reads what was appended; with py-spy installed
its dump (native frames included) is taken too. The run's actors are listed, with their process
ids, in RUN_DIR/hangs/pids.json. A dump is a folder RUN_DIR/hangs/<UTC time>/ with one file per
process and summary.txt, which names each actor's innermost frame inside a method of rlcore's
actors: the call it is stuck in. Processes on another node are listed there, not signalled.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DUMP_SIGNAL = signal.SIGUSR2
HUNG = "HUNG"  # the name a watchdog stop takes where a signal's would be (rlcore/preempt.py)
_file: Any = None  # kept open: faulthandler writes to its descriptor when the signal comes


def stack_file(pid: int) -> Path:
    """Where process `pid` on this machine appends its stacks (one folder per user)."""
    return Path(tempfile.gettempdir()) / f"rlcore-stacks-{os.getuid()}" / f"{pid}.txt"


def register_stack_dump() -> None:
    """In this process: SIGUSR2 appends every thread's Python stack to stack_file(pid)."""
    global _file
    path = stack_file(os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    _file = path.open("a")
    faulthandler.register(DUMP_SIGNAL, file=_file, all_threads=True, chain=False)


def process_info() -> dict[str, Any]:
    """This process as the dumper finds it: its id and its machine."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _faulthandler_stack(pid: int, wait_s: float = 3.0) -> str:
    """What process `pid` appends to its stack file after SIGUSR2 (empty if nothing came)."""
    path = stack_file(pid)
    if not path.exists():  # it never registered: SIGUSR2 would kill it, not dump it
        raise ProcessLookupError(f"no stack file {path}: not an rlcore process")
    start = path.stat().st_size
    os.kill(pid, DUMP_SIGNAL)
    deadline, size = time.time() + wait_s, start
    while time.time() < deadline:
        time.sleep(0.1)
        now = path.stat().st_size if path.exists() else 0
        if now > start and now == size:  # grew, then stopped growing: the dump is complete
            break
        size = now
    if not path.exists():
        return ""
    with path.open() as f:
        f.seek(start)
        return f.read()


def _py_spy_stack(pid: int) -> str:
    exe = shutil.which("py-spy")
    if exe is None:
        return ""
    try:
        out = subprocess.run(
            [exe, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"py-spy failed: {e}\n"
    return out.stdout if out.returncode == 0 else f"py-spy failed: {out.stderr.strip()}\n"


# the frame Ray runs every actor method under: a thread with it is running a call
_ACTOR_CALL = "ray/_private/function_manager.py"


def stuck_frame(stack: str) -> str | None:
    """The innermost frame of the thread running an actor method in a faulthandler dump, as
    "func (file:line)": the call an actor is busy with; None when it is idle."""
    for block in stack.split("\n\n"):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip().startswith("File ")]
        # faulthandler lists the most recent call first: the first line is the innermost call
        if any(_ACTOR_CALL in line for line in lines):
            path, _, rest = lines[0].partition('", line ')
            number, _, func = rest.partition(" in ")
            name = Path(path.removeprefix("File ").strip('"')).name
            return f"{func} ({name}:{number})"
    return None


def dump_stacks(run_dir: Path | str, reason: str = "on demand") -> Path:
    """Every process in RUN_DIR/hangs/pids.json (the driver and each actor) dumps its stack into
    RUN_DIR/hangs/<UTC time>/, with summary.txt naming what each actor is busy with."""
    hangs = Path(run_dir) / "hangs"
    listed = json.loads((hangs / "pids.json").read_text()) if (hangs / "pids.json").exists() else {}
    out = hangs / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    here = socket.gethostname()
    lines = [f"reason: {reason}", ""]
    for label, proc in sorted(listed.items()):
        pid, host = int(proc["pid"]), proc.get("host", here)
        if pid == os.getpid():
            with (out / f"{label}.txt").open("w") as f:
                faulthandler.dump_traceback(file=f, all_threads=True)
            lines.append(f"{label} (pid {pid}): this process")
            continue
        if host != here:
            lines.append(f"{label} (pid {pid} on {host}): on another node, not dumped")
            continue
        try:
            stack = _faulthandler_stack(pid)
        except ProcessLookupError as e:
            lines.append(f"{label} (pid {pid}): not dumped ({e or 'not running'})")
            continue
        except PermissionError as e:
            lines.append(f"{label} (pid {pid}): {e}")
            continue
        (out / f"{label}.txt").write_text(stack + _py_spy_stack(pid))
        frame = stuck_frame(stack)
        state = f"busy in {frame}" if frame else ("idle" if stack else "no stack came back")
        lines.append(f"{label} (pid {pid}): {state}")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    return out


def write_pids(run_dir: Path | str, pids: dict[str, dict[str, Any]]) -> None:
    """RUN_DIR/hangs/pids.json: each actor's process, for `rlcore stacks` and the watchdog."""
    hangs = Path(run_dir) / "hangs"
    hangs.mkdir(parents=True, exist_ok=True)
    tmp = hangs / "pids.json.tmp"
    tmp.write_text(json.dumps(pids, indent=1, sort_keys=True))
    tmp.replace(hangs / "pids.json")


class Watchdog:
    """Times the run's phases in a thread. A phase older than its limit gets one stack dump
    (dump_stacks), a log line naming the phase and the busy actors, and with action "stop"
    `on_stop(HUNG)`, `reason` then naming the phase, the busy actors and the dump. The limit is
    `limit_s`, or when that is None max(floor_s, factor x the phase's slowest time so far: the
    first one is bounded by the floor alone); 0 turns it off."""

    def __init__(
        self,
        run_dir: Path | str,
        limit_s: float | None,
        action: str,
        on_stop: Callable[[str], None],
        floor_s: float = 600.0,
        factor: float = 10.0,
    ) -> None:
        self.run_dir, self.limit_s, self.action, self.on_stop = run_dir, limit_s, action, on_stop
        self.floor_s, self.factor = floor_s, factor
        self.slowest: dict[str, float] = {}
        self.reason: str | None = None  # set when the watchdog fired with action "stop"
        self._phase: tuple[str, float] | None = None
        self._fired = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def limit(self, name: str) -> float:
        if self.limit_s is not None:
            return self.limit_s
        return max(self.floor_s, self.factor * self.slowest.get(name, 0.0))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.limit_s == 0:
            yield
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="rlcore-watchdog", daemon=True)
            self._thread.start()
        self._phase, self._fired = (name, time.time()), False
        try:
            yield
        finally:
            took = time.time() - self._phase[1]
            self.slowest[name] = max(self.slowest.get(name, 0.0), took)
            self._phase = None

    def close(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            current = self._phase
            if current is None or self._fired:
                continue
            name, since = current
            limit = self.limit(name)
            if time.time() - since > limit:
                self._fired = True
                self._fire(name, time.time() - since, limit)

    def _fire(self, name: str, took: float, limit: float) -> None:
        why = f"phase {name!r} running for {took:.0f} s (limit {limit:.0f} s)"
        try:
            out = dump_stacks(self.run_dir, why)
            busy = [ln for ln in (out / "summary.txt").read_text().splitlines() if "busy in" in ln]
        except Exception as e:  # the dump must not take the run down with it
            log.exception("hang dump failed")
            out, busy = None, [f"(no dump: {e})"]
        reason = f"{why}; {'; '.join(busy) or 'no actor busy'}; stacks in {out}"
        log.error("hang suspected: %s", reason)
        if self.action == "stop":
            self.reason = reason
            self.on_stop(HUNG)
