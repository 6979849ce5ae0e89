"""A persistent pool of worker processes that runs rule-based verifiers with a per-sample timeout.

Why processes and not threads: math-verify (sympy underneath) bounds its own work with
`signal.alarm`, which only works on a process's main thread, and a pathological sample can hang in C
code that no signal interrupts. So each worker runs `verify` on its main thread, one sample at a time,
and the parent enforces the wall-clock limit from outside: past `config.timeout_s` it kills the
worker's whole process group (anything the verifier spawned goes with it), records the sample as
`error="timeout"` and starts a replacement. An exception inside `verify` becomes
`error="crash: <Type>: <message>"`; a worker that dies (segfault, `os._exit`, OOM kill) becomes
`error="crash: worker died (exit code N)"`. Results are never dropped and come back in input order.

Start-up is paid once: create the pool when the trainer starts and call `score` every step.

    with WorkerPool({"math": MathVerifier()}, workers=2) as pool:
        results = pool.score([("math", sample), ...])
        pool.error_counts  # Counter({"timeout": 1, ...}), cumulative

Workers start with the 'spawn' context (never fork from a threaded parent such as a Ray actor);
'forkserver' can be chosen. What this does NOT do: sandbox the verifier (the code verifier brings its
own sandbox), or reach processes that leave the worker's process group (setsid) - a verifier that
spawns such processes must clean them up itself. Each worker also watches its parent and kills its own
group if the parent disappears, so a crashed trainer leaves no hung workers behind.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
import signal
import threading
import time
import traceback
import weakref
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, TypeAlias

from rlcore.verifiers.types import Result, Sample

if TYPE_CHECKING:
    from rlcore.verifiers.base import Verifier

logger = logging.getLogger(__name__)

VerifierOrFactory: TypeAlias = "Verifier | Callable[[], Verifier]"

_START_TIMEOUT_S = 120.0  # a worker that has not built its verifiers by then is an error
_KIND = re.compile(r"[A-Za-z_]+")


def error_kind(error: str) -> str:
    """The counter key of an error string: its leading word ("timeout", "crash", "unparseable")."""
    m = _KIND.match(error.strip())
    return m.group(0) if m else "other"


# ----------------------------------------------------------------------------- worker side


def _watch_parent(parent_pid: int) -> None:
    """Kill this worker's process group when the parent process is gone (trainer crashed)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os.killpg(os.getpgrp(), signal.SIGKILL)


def _crash(e: BaseException) -> str:
    return f"crash: {type(e).__name__}: {e}"[:2000]


def _worker_main(conn: Connection, verifiers: Mapping[str, VerifierOrFactory], parent: int) -> None:
    os.setsid()  # own process group: a kill on timeout reaches everything this worker started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        # a Verifier instance has `verify`; a class, or any other callable, is a factory
        built: dict[str, Verifier] = {
            n: v() if isinstance(v, type) or not hasattr(v, "verify") else v  # type: ignore[operator]
            for n, v in verifiers.items()
        }
        for v in built.values():
            v.setup()
        conn.send(("ready", {n: float(v.config.timeout_s) for n, v in built.items()}))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("init_error", f"{_crash(e)}\n{traceback.format_exc()}"))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        idx, name, sample = msg
        t0 = time.perf_counter()
        try:
            res = built[name].verify(sample)
            if not isinstance(res, Result):
                raise TypeError(f"{name}.verify returned {type(res).__name__}, not Result")
        except BaseException as e:  # noqa: BLE001 - SystemExit too: a sample must not end the worker
            res = Result(reward=0.0, error=_crash(e))
        res = replace(res, elapsed_s=time.perf_counter() - t0)
        try:
            conn.send((idx, res))
        except Exception as e:  # unpicklable details
            conn.send((idx, Result(reward=0.0, error=_crash(e), elapsed_s=res.elapsed_s)))


# ----------------------------------------------------------------------------- parent side


class _Worker:
    def __init__(self, ctx: Any, verifiers: Mapping[str, VerifierOrFactory]) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_worker_main, args=(child, verifiers, os.getpid()), daemon=True
        )
        self.proc.start()
        child.close()
        self.ready = False
        self.task: tuple[int, float] | None = None  # (item index, deadline)
        self.started = time.monotonic()

    def kill(self) -> None:
        try:  # the whole group, once the worker leads its own (after its setsid)
            if os.getpgid(self.proc.pid) == self.proc.pid:
                os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


def _shutdown(workers: list[_Worker]) -> None:
    """Stop every worker; used by close() and as a finalizer if a pool is dropped unclosed.
    Idle workers are asked to exit; busy or still-starting ones are killed at once."""
    asked = []
    for w in workers:
        try:
            if w.ready and w.task is None and w.proc.is_alive():
                w.conn.send(None)
                asked.append(w)
        except OSError:
            pass
    deadline = time.monotonic() + 2.0
    for w in asked:
        w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
    for w in workers:
        w.kill()
    workers.clear()


class WorkerPool:
    """Persistent worker processes scoring (verifier name, Sample) items with per-sample timeouts.

    verifiers: name -> a picklable Verifier instance, or a picklable zero-argument factory that builds
        one in each worker (for verifiers with heavy or unpicklable state).
    workers: number of processes; each runs one sample at a time on its main thread.
    mp_context: "spawn" (default) or "forkserver"; never "fork" (unsafe from a threaded parent).
    """

    def __init__(
        self,
        verifiers: Mapping[str, VerifierOrFactory],
        workers: int = 1,
        mp_context: str = "spawn",
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if mp_context not in ("spawn", "forkserver"):
            raise ValueError(f"mp_context must be 'spawn' or 'forkserver', got {mp_context!r}")
        if not verifiers:
            raise ValueError("WorkerPool needs at least one verifier")
        self._verifiers = dict(verifiers)
        self._ctx = mp.get_context(mp_context)
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)
        self.timeouts: dict[str, float] = {}
        self.error_counts: Counter[str] = Counter()  # errors by kind, cumulative over calls
        self.restarts = 0  # workers replaced after a timeout or death
        self.scored = 0
        try:
            self._workers.extend(_Worker(self._ctx, self._verifiers) for _ in range(workers))
            for w in self._workers:
                self._await_ready(w, block=True)
        except BaseException:
            self.close()
            raise

    # -- life cycle

    @property
    def workers(self) -> int:
        return len(self._workers)

    def close(self) -> None:
        """Stop all workers; no process is left behind. Idempotent."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _await_ready(self, w: _Worker, block: bool) -> None:
        """Consume a worker's start-up message; raise if it could not build its verifiers."""
        timeout = max(0.0, w.started + _START_TIMEOUT_S - time.monotonic()) if block else 0.0
        if not w.conn.poll(timeout):
            if not w.proc.is_alive() or block:
                raise RuntimeError(
                    f"verifier worker failed to start (exit code {w.proc.exitcode}); "
                    "are the verifiers and their configs picklable and importable?"
                )
            return
        try:
            kind, payload = w.conn.recv()
        except (EOFError, OSError):
            kind, payload = "init_error", f"worker exited (exit code {w.proc.exitcode})"
        if kind != "ready":
            raise RuntimeError(f"verifier worker could not build its verifiers: {payload}")
        w.ready = True
        self.timeouts = payload

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers[self._workers.index(w)] = _Worker(self._ctx, self._verifiers)
        self.restarts += 1

    # -- scoring

    def score(
        self,
        items: Sequence[tuple[str, Sample]],
        progress: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """Score items in input order; never drops one. `progress(n)` is called as n more finish."""
        unknown = {name for name, _ in items} - set(self._verifiers)
        if unknown:
            raise KeyError(
                f"verifier(s) {sorted(unknown)} not in this pool (has {sorted(self._verifiers)})"
            )
        with self._lock:
            if self._closed:
                raise RuntimeError("WorkerPool is closed")
            results: list[Result | None] = [None] * len(items)
            try:
                self._run(items, results, progress)
            except BaseException:
                # Interrupted mid-batch: replace busy workers so the pool stays consistent.
                for w in [w for w in self._workers if w.task is not None]:
                    self._replace(w)
                raise
        out = [r for r in results if r is not None]
        assert len(out) == len(items)
        for r in out:
            if r.error is not None:
                self.error_counts[error_kind(r.error)] += 1
        self.scored += len(out)
        return out

    def _run(
        self,
        items: Sequence[tuple[str, Sample]],
        results: list[Result | None],
        progress: Callable[[int], None] | None,
    ) -> None:
        pending = deque(range(len(items)))
        in_flight = 0

        def finish(w: _Worker, res: Result) -> None:
            nonlocal in_flight
            assert w.task is not None
            results[w.task[0]] = res
            w.task = None
            in_flight -= 1
            if progress is not None:
                progress(1)

        while pending or in_flight:
            for w in list(self._workers):  # hand work to every idle, ready worker
                if not w.ready:
                    self._await_ready(w, block=False)
                if w.ready and w.task is None and pending:
                    idx = pending.popleft()
                    name, sample = items[idx]
                    w.task = (idx, time.monotonic() + self.timeouts[name])
                    in_flight += 1
                    try:
                        w.conn.send((idx, name, sample))
                    except OSError:  # worker died while idle; the sentinel check below handles it
                        pass
            now = time.monotonic()
            deadlines = [w.task[1] for w in self._workers if w.task is not None]
            timeout = max(0.0, min(deadlines) - now) if deadlines else 0.05
            watched = [w.conn for w in self._workers] + [w.proc.sentinel for w in self._workers]
            wait(watched, timeout=min(timeout, 1.0))
            for w in list(self._workers):
                self._collect(w, items, finish)

    def _collect(self, w: _Worker, items: Sequence[tuple[str, Sample]], finish: Any) -> None:
        """Take a worker's finished result, or time it out / notice its death and replace it."""
        if w.task is None:
            if w.ready and not w.proc.is_alive():
                self._replace(w)
            return
        idx, deadline = w.task
        name = items[idx][0]
        started = deadline - self.timeouts[name]
        try:
            if w.conn.poll():
                got_idx, res = w.conn.recv()
                assert got_idx == idx, (got_idx, idx)
                finish(w, res)
                return
        except (EOFError, OSError):
            pass
        if not w.proc.is_alive():
            w.proc.join(timeout=1)
            elapsed = time.monotonic() - started
            msg = f"crash: worker died (exit code {w.proc.exitcode})"
            logger.warning("verifier %r: %s on item %d", name, msg, idx)
            finish(w, Result(reward=0.0, error=msg, elapsed_s=elapsed))
            self._replace(w)
        elif time.monotonic() >= deadline:
            elapsed = time.monotonic() - started
            logger.warning("verifier %r: timeout after %.1fs on item %d", name, elapsed, idx)
            finish(w, Result(reward=0.0, error="timeout", elapsed_s=elapsed))
            self._replace(w)

    def stats(self) -> dict[str, Any]:
        """Counters for logging: samples scored, errors by kind, workers replaced."""
        return {
            "scored": self.scored,
            "restarts": self.restarts,
            **{f"errors/{k}": v for k, v in sorted(self.error_counts.items())},
        }


def run_pool(verifier: Verifier, samples: Sequence[Sample], workers: int = 1) -> list[Result]:
    """Score samples with one verifier in a short-lived pool (start-up is paid on every call;
    a trainer keeps one WorkerPool or Scorer instead)."""
    if not samples:
        return []
    name = verifier.name or type(verifier).__name__
    with WorkerPool({name: verifier}, workers=max(1, min(workers, len(samples)))) as pool:
        return pool.score([(name, s) for s in samples])
