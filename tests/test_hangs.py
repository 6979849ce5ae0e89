"""Hang dumps (rlcore/hangs.py): a process's stack through the SIGUSR2 side channel, the watchdog's
limits and its stop, and a real run whose model-based verifier blocks forever: the dump names the
actor and its frame, the run stops with a named error, and resume continues it."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rlcore.verifiers import Result, Sample, Verifier, VerifierConfig

from rlcore.config import load_config
from rlcore.hangs import HUNG, Watchdog, dump_stacks, process_info, write_pids
from rlcore.trainer import RunFailed, train
from tests.test_train_e2e import SMALL

SLEEPER = """
import time
from rlcore.hangs import register_stack_dump
register_stack_dump()
def wait_here_forever():
    print("ready", flush=True)
    time.sleep(600)
wait_here_forever()
"""


def test_a_process_that_cannot_answer_still_gives_its_stack(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        write_pids(tmp_path, {"sleeper0": {"pid": proc.pid, "host": process_info()["host"]}})
        out = dump_stacks(tmp_path, "test")
    finally:
        proc.kill()
    assert "wait_here_forever" in (out / "sleeper0.txt").read_text()
    summary = (out / "summary.txt").read_text()
    assert "reason: test" in summary and f"sleeper0 (pid {proc.pid})" in summary


def test_the_watchdog_limit_follows_the_slowest_time_with_a_floor(tmp_path):
    dog = Watchdog(tmp_path, None, "wait", on_stop=lambda name: None, floor_s=2.0, factor=10.0)
    assert dog.limit("learn") == 2.0  # nothing measured yet: the floor
    with dog.phase("learn"):
        time.sleep(0.3)
    assert dog.limit("learn") == pytest.approx(3.0, rel=0.2)  # 10 x the slowest
    assert Watchdog(tmp_path, 7.0, "wait", lambda n: None).limit("learn") == 7.0
    dog.close()


def test_a_phase_past_its_limit_is_dumped_once_and_stopped(tmp_path):
    write_pids(tmp_path, {"driver": process_info()})
    stops: list[str] = []
    dog = Watchdog(tmp_path, 0.5, "stop", on_stop=stops.append)
    with dog.phase("sync"):
        time.sleep(2.5)
    dog.close()
    assert stops == [HUNG]  # once, though the phase stayed over its limit for 2 s
    assert "phase 'sync'" in dog.reason and "stacks in" in dog.reason
    dumps = [d for d in (tmp_path / "hangs").iterdir() if d.is_dir()]
    assert (
        len(dumps) == 1 and "test_a_phase_past_its_limit" in (dumps[0] / "driver.txt").read_text()
    )


@dataclass(frozen=True)
class BlockingConfig(VerifierConfig):
    block_file: str = ""  # while this file exists, every batch blocks forever


class BlockingJudge(Verifier):
    """A model-based verifier whose model hangs (never returns) once `block_file` exists."""

    name = "blocking_judge"
    model_based = True
    config_cls = BlockingConfig

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        while Path(self.config.block_file).exists():
            time.sleep(1.0)
        return [Result(reward=0.0, correct=None) for _ in samples]


@pytest.mark.slow
def test_a_verifier_that_blocks_forever_is_named_and_the_run_resumes(
    tmp_path, tiny_chat_model, ray_local
):
    block = tmp_path / "block"
    judge = "tests.test_hangs:BlockingJudge"  # importable where Ray runs the actor
    cfg = yaml.safe_load(Path("configs/tiny_zero.yaml").read_text())
    cfg["data"]["verifier"] = [{"name": "math", "weight": 1.0}, {"name": judge, "weight": 0.1}]
    cfg["verifier"] = {"options": {judge: {"block_file": str(block)}}, "timeout_s": 600.0}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    overrides = [*SMALL, f"model.path={tiny_chat_model}", f"run_dir={run_dir}", "steps=3"]
    watch = ["watchdog_s=20", "watchdog_action=stop"]

    def block_after_step_1(stage, step, total, metrics):
        if stage == "rl" and step == 1:
            block.touch()

    t0 = time.time()
    with pytest.raises(RunFailed, match=r"hung: phase 'rollout'") as info:
        train(load_config(path, [*overrides, *watch]), progress=block_after_step_1)
    message = str(info.value)
    assert "model_verifier0" in message and "busy in verify_batch (test_hangs.py:" in message
    dump = Path(message.rsplit("stacks in ", 1)[1])
    assert "verify_batch" in next(dump.glob("model_verifier0.txt")).read_text()
    assert (dump / "driver.txt").exists()
    assert time.time() - t0 < 600  # it stopped, where the verifier would have held it forever
    block.unlink()
    summary = train(load_config(path, [*overrides, *watch, f"resume={run_dir}"]))
    assert summary["steps"] == 3


def test_the_busy_frame_is_the_innermost_call_of_the_thread_running_an_actor_method():
    """What the hang summary names: the actor's method may live in any plain class (the actors
    are made from them), so the thread is found by Ray's method executor below it."""
    from rlcore.hangs import stuck_frame

    busy = (
        "Thread 0x01 (most recent call first):\n"
        '  File "/x/rlcore/verifiers/pool.py", line 7 in wait\n\n'
        "Current thread 0x02 (most recent call first):\n"
        '  File "/t/tests/test_hangs.py", line 80 in verify_batch\n'
        '  File "/x/rlcore/verifier_actors.py", line 60 in score_dicts\n'
        '  File "/v/ray/_private/function_manager.py", line 743 in actor_method_executor\n'
        '  File "/v/ray/_private/worker.py", line 900 in main_loop\n'
    )
    assert stuck_frame(busy) == "verify_batch (test_hangs.py:80)"
    idle = "Current thread 0x02 (most recent call first):\n" + busy.splitlines()[-1] + "\n"
    assert stuck_frame(idle) is None
