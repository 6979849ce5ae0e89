"""WorkerPool: order, timeouts, crashes, dying workers, reuse, and no process left behind."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from rlcore.verifiers import Result, Sample, Verifier, WorkerPool
from rlcore.verifiers.base import VerifierConfig

MARGIN_S = 10.0  # generous: the machine is shared; a hang would take forever, not 10 s more


class Echo(Verifier):
    """reward = reference["x"]; or misbehaves as reference["do"] says."""

    name = "echo"

    def verify(self, sample: Sample) -> Result:
        do = sample.reference.get("do")
        if do == "sleep":
            time.sleep(10_000)
        if do == "crash":
            raise ValueError("boom")
        if do == "exit":
            sys.exit(0)
        if do == "die":
            os._exit(3)
        if do == "spawn_and_hang":  # a grandchild the timeout kill must reach
            p = subprocess.Popen(["sleep", "1000"])
            Path(sample.reference["pidfile"]).write_text(str(p.pid))
            time.sleep(10_000)
        if do == "bad_return":
            return 1.0  # type: ignore[return-value]
        return Result(reward=float(sample.reference["x"]), correct=True)


class Other(Echo):
    name = "other"

    def verify(self, sample: Sample) -> Result:
        return Result(reward=-float(sample.reference["x"]))


class BrokenInit(Verifier):
    name = "broken"

    def setup(self) -> None:
        raise RuntimeError("cannot load my model")


def _s(**ref: object) -> Sample:
    return Sample(prompt="p", response="r", reference=ref)


def _fast() -> Echo:
    return Echo(VerifierConfig(timeout_s=1.0))


def _new_children(before: set[int]) -> list[psutil.Process]:
    # multiprocessing's own singletons (resource tracker, forkserver) outlive pools by design
    kids = psutil.Process().children(recursive=True)
    singletons = ("resource_tracker", "forkserver")
    return [
        p
        for p in kids
        if p.pid not in before and not any(s in " ".join(_cmdline(p)) for s in singletons)
    ]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


@pytest.fixture
def no_leftovers():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 5
    while _new_children(before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _new_children(before) == []


def test_results_in_input_order_across_verifiers(no_leftovers) -> None:
    with WorkerPool({"echo": Echo(), "other": Other()}, workers=2) as pool:
        items = [("echo" if i % 3 else "other", _s(x=i)) for i in range(50)]
        got = [r.reward for r in pool.score(items)]
        assert got == [float(i) if i % 3 else -float(i) for i in range(50)]
        assert pool.score([]) == []


def test_hung_sample_times_out_and_pool_keeps_going(no_leftovers) -> None:
    with WorkerPool({"echo": _fast()}, workers=2) as pool:
        t0 = time.monotonic()
        res = pool.score(
            [
                ("echo", _s(x=1)),
                ("echo", _s(do="sleep")),
                ("echo", _s(x=2)),
                ("echo", _s(do="sleep")),
                ("echo", _s(x=3)),
            ]
        )
        assert time.monotonic() - t0 < 1.0 + MARGIN_S
        assert [r.error for r in res] == [None, "timeout", None, "timeout", None]
        assert [r.reward for r in res] == [1.0, 0.0, 2.0, 0.0, 3.0]
        assert res[1].elapsed_s >= 1.0
        assert pool.error_counts["timeout"] == 2 and pool.restarts == 2
        # reusable, with the replacement workers
        assert [r.reward for r in pool.score([("echo", _s(x=i)) for i in range(6)])] == list(
            map(float, range(6))
        )
        assert pool.stats()["errors/timeout"] == 2


def test_timeout_kills_the_whole_process_group(tmp_path: Path, no_leftovers) -> None:
    pidfile = tmp_path / "pid"
    with WorkerPool({"echo": _fast()}, workers=1) as pool:
        (r,) = pool.score([("echo", _s(do="spawn_and_hang", pidfile=str(pidfile)))])
        assert r.error == "timeout"
        pid = int(pidfile.read_text())
        deadline = time.monotonic() + 5
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
            assert time.monotonic() < deadline, "grandchild survived the timeout kill"
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("do", "error", "restarted"),
    [
        ("crash", "crash: ValueError: boom", 0),
        ("exit", "crash: SystemExit: 0", 0),
        ("bad_return", "crash: TypeError: echo.verify returned float, not Result", 0),
        ("die", "crash: worker died (exit code 3)", 1),
    ],
)
def test_failures_become_recorded_results(
    do: str, error: str, restarted: int, no_leftovers
) -> None:
    with WorkerPool({"echo": _fast()}, workers=1) as pool:
        res = pool.score([("echo", _s(x=1)), ("echo", _s(do=do)), ("echo", _s(x=2))])
        assert [r.reward for r in res] == [1.0, 0.0, 2.0]
        assert res[1].error == error and res[1].correct is None
        assert pool.error_counts == {"crash": 1}
        assert pool.restarts == restarted


def test_close_leaves_no_process_and_is_idempotent(no_leftovers) -> None:
    pool = WorkerPool({"echo": _fast()}, workers=2)
    pids = [w.proc.pid for w in pool._workers]
    pool.score([("echo", _s(do="sleep")), ("echo", _s(x=1))])
    pool.close()
    pool.close()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.score([("echo", _s(x=1))])


def test_init_failure_raises_at_construction(no_leftovers) -> None:
    with pytest.raises(RuntimeError, match="cannot load my model"):
        WorkerPool({"broken": BrokenInit()}, workers=2)


def test_unknown_name_and_bad_arguments() -> None:
    with pytest.raises(ValueError):
        WorkerPool({"echo": Echo()}, workers=0)
    with pytest.raises(ValueError):
        WorkerPool({"echo": Echo()}, mp_context="fork")
    with WorkerPool({"echo": Echo()}, workers=1) as pool, pytest.raises(KeyError, match="nope"):
        pool.score([("nope", _s(x=1))])


def test_factory_and_created_from_a_thread(no_leftovers) -> None:
    # As inside a Ray actor: the pool is created and used from a non-main thread.
    out: list[object] = []

    def body() -> None:
        try:
            with WorkerPool({"echo": Echo}, workers=1, mp_context="forkserver") as pool:
                out.extend(r.reward for r in pool.score([("echo", _s(x=5)), ("echo", _s(x=6))]))
        except Exception as e:  # surfaced below
            out.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join(60)
    assert out == [5.0, 6.0]


def test_verify_batch_uses_the_pool(no_leftovers) -> None:
    res = _fast().verify_batch([_s(x=1), _s(do="sleep"), _s(x=3)], workers=2)
    assert [(r.reward, r.error) for r in res] == [(1.0, None), (0.0, "timeout"), (3.0, None)]
