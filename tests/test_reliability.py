"""Reliability end to end (issue: exact resume, preemption, every actor kind survivable).

Real parts: `rlcore train` in a subprocess killed with SIGKILL or stopped with SIGTERM, a real local
Ray cluster, vLLM on CPU (or the transformers engine), DeepSpeed. A resumed run must reproduce the
uninterrupted one step for step: same samples, rewards, losses and held-out accuracy.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlcore.config import load_config
from rlcore.trainer import RunFailed, train

SMALL = [
    "rollout.prompts_per_step=4",
    "rollout.n=4",
    "rollout.max_tokens=24",
    "data.train_size=64",
    "data.heldout_size=8",
    "learner.micro_batch_size=8",
    "verifier.workers=1",
    "steps=4",
    "checkpoint_every=1",
]
# what a step computed (timings and the engines' restart counters aside)
SAME = ("reward_mean", "accuracy", "response_len", "truncated_frac", "loss", "entropy", "grad_norm")


def _rl_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    return [r for r in rows if r["stage"] == "rl"]


ASYNC = ["rollout.async_steps=1", "algo.tis_cap=2.0"]


def _overrides(model: str, run_dir: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [*SMALL, *extra, f"model.path={model}", f"run_dir={run_dir}"]


@pytest.fixture(scope="module")
def uninterrupted(tiny_chat_model, ray_local, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    summary = train(load_config("configs/tiny_zero.yaml", _overrides(tiny_chat_model, run_dir)))
    return run_dir, summary


@pytest.fixture(scope="module")
def uninterrupted_async(tiny_chat_model, ray_local, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted_async") / "run"
    cfg = load_config("configs/tiny_zero.yaml", _overrides(tiny_chat_model, run_dir, tuple(ASYNC)))
    return run_dir, train(cfg)


def _start(model: str, run_dir: Path, log: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """`rlcore train` as a user starts it; its output goes to `log` (a pipe nobody reads while
    the test waits would fill up and block the run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "rlcore.launch.cli", "train", "configs/tiny_zero.yaml"]
            + _overrides(model, run_dir, extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own session: what is left of it can be listed
        )


def _wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run_dir / "metrics.jsonl").exists() and any(
            r["step"] >= step for r in _rl_rows(run_dir)
        ):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early (exit {proc.returncode})")
        time.sleep(0.2)
    raise AssertionError(f"step {step} was not reached")


def _session_members(sid: int) -> list[str]:
    """Processes of the run's session: its driver and every Ray process it started (Ray's workers
    take process groups of their own, but stay in the session)."""
    out = subprocess.run(["ps", "-eo", "sid=,pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[0] == str(sid)]


def _kill_session(sid: int) -> None:
    for line in _session_members(sid):
        try:
            os.kill(int(line.split()[1]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def _resume_and_compare(
    model: str, run_dir: Path, reference: tuple[Path, dict], extra: tuple[str, ...] = ()
) -> None:
    summary = train(
        load_config(
            "configs/tiny_zero.yaml", [*SMALL, *extra, f"model.path={model}", f"resume={run_dir}"]
        )
    )
    want, got = _rl_rows(reference[0]), _rl_rows(run_dir)
    assert [r["step"] for r in got] == [1, 2, 3, 4]
    same = SAME + (("staleness", "tis_weight") if extra else ())
    for a, b in zip(want, got, strict=True):
        assert {k: b[k] for k in same} == {k: a[k] for k in same}, f"step {a['step']} differs"
    assert summary["heldout_accuracy"] == reference[1]["heldout_accuracy"]


@pytest.mark.slow
def test_kill_9_of_the_driver_then_resume_reproduces_the_run_exactly(
    tmp_path, tiny_chat_model, ray_local, uninterrupted
):
    run_dir = tmp_path / "run"
    proc = _start(tiny_chat_model, run_dir, tmp_path / "train.log")
    try:
        _wait_for_step(proc, run_dir, 2)
        proc.kill()  # SIGKILL to the driver: no handler runs
        proc.wait(timeout=30)
    finally:
        _kill_session(proc.pid)  # the local Ray processes the killed driver left behind
    _resume_and_compare(tiny_chat_model, run_dir, uninterrupted)


@pytest.mark.slow
def test_sigterm_checkpoints_stops_every_process_and_resume_reproduces_the_run(
    tmp_path, tiny_chat_model, ray_local, uninterrupted
):
    run_dir = tmp_path / "run"
    proc = _start(tiny_chat_model, run_dir, tmp_path / "train.log")
    try:
        _wait_for_step(proc, run_dir, 1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=180)
        err = (tmp_path / "train.log").read_text()
        assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
        assert "stopped by SIGTERM after step" in err and f"resume={run_dir}" in err
        step = int(err.split("stopped by SIGTERM after step ")[1].split()[0])
        state = json.loads(
            (run_dir / "checkpoints" / f"step_{step:06d}" / "trainer_state.json").read_text()
        )
        assert state["step"] == step >= 1 and state["stage"] == "rl"
        deadline = time.time() + 30  # Ray's processes exit with the driver's cluster
        while _session_members(proc.pid) and time.time() < deadline:
            time.sleep(0.5)
        assert not _session_members(proc.pid), _session_members(proc.pid)
    finally:
        _kill_session(proc.pid)
    _resume_and_compare(tiny_chat_model, run_dir, uninterrupted)


@pytest.mark.slow
def test_sigterm_while_the_actors_start_stops_cleanly_without_ray_s_stack_dump(
    tmp_path, tiny_chat_model
):
    """Before, a signal before the first step met Ray's native handler ("SIGTERM received ...",
    logging.cc) instead of rlcore's stop message and exit status."""
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    proc = _start(tiny_chat_model, run_dir, log)
    try:
        deadline = time.time() + 300
        while "Started a local Ray instance" not in log.read_text() and time.time() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(1.0)  # inside Cluster.start: the actors are being created
        assert "weight-sync group" not in log.read_text()  # still starting
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        err = log.read_text()
        assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
        assert "stopped by SIGTERM after step 0 (no checkpoint yet" in err, err[-3000:]
        assert "logging.cc" not in err and "*** SIGTERM received" not in err, err[-3000:]
        assert not run_dir.exists()  # nothing half-written is left
        deadline = time.time() + 30
        while _session_members(proc.pid) and time.time() < deadline:
            time.sleep(0.5)
        assert not _session_members(proc.pid), _session_members(proc.pid)
    finally:
        _kill_session(proc.pid)


@pytest.mark.slow
def test_an_async_run_killed_or_stopped_then_resumed_equals_the_uninterrupted_one(
    tmp_path, tiny_chat_model, ray_local, uninterrupted_async
):
    """In async mode a checkpoint keeps the next step's batch, already sampled one version old:
    the resumed run trains on it (staleness 1, as uninterrupted), not on a fresh sample."""
    extra = tuple(ASYNC)
    killed = tmp_path / "killed"
    proc = _start(tiny_chat_model, killed, tmp_path / "killed.log", extra)
    try:
        _wait_for_step(proc, killed, 2)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        _kill_session(proc.pid)
    assert list(killed.glob("checkpoints/step_*/inflight.pt"))  # the batch in flight was kept
    _resume_and_compare(tiny_chat_model, killed, uninterrupted_async, extra)
    stopped = tmp_path / "stopped"
    proc = _start(tiny_chat_model, stopped, tmp_path / "stopped.log", extra)
    try:
        _wait_for_step(proc, stopped, 1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=180)
        assert proc.returncode == 128 + signal.SIGTERM
    finally:
        _kill_session(proc.pid)
    _resume_and_compare(tiny_chat_model, stopped, uninterrupted_async, extra)


def kill_after_step_1(prefix: str, restart: bool, killed: list[str]):
    """A progress callback that kills the named actor `prefix`* once step 1 is logged; Ray
    restarts it when `restart`."""

    def callback(stage, step, total, metrics):
        import ray

        if stage == "rl" and step == 1 and not killed:
            names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
            name = next(n for n in names if n.startswith(prefix))
            ray.kill(ray.get_actor(name), no_restart=not restart)
            killed.append(name)

    return callback


def _run_killing(prefix: str, model: str, run_dir: Path) -> list[dict]:
    """A 3-step run whose actor `prefix`* is killed (and restarted by Ray) after step 1."""
    killed: list[str] = []
    cfg = load_config("configs/tiny_zero.yaml", [*_overrides(model, run_dir), "steps=3"])
    summary = train(cfg, progress=kill_after_step_1(prefix, True, killed))
    assert killed and summary["steps"] == 3
    return _rl_rows(run_dir)


@pytest.mark.slow
def test_a_killed_rollout_worker_is_restarted_and_no_prompt_is_lost(
    tmp_path, tiny_chat_model, ray_local
):
    rl = _run_killing("rollout-0-", tiny_chat_model, tmp_path / "run")
    assert [r["rollout_restarts"] for r in rl] == [0, 1, 1]
    assert all(r["groups_kept"] == 4 for r in rl)  # every prompt of every step was trained on
    assert all(r["sync_probe_max"] < 1e-3 for r in rl)  # the restarted engine got the weights


@pytest.mark.slow
def test_a_killed_verifier_actor_is_restarted_and_its_samples_scored_again(
    tmp_path, tiny_chat_model, ray_local
):
    rl = _run_killing("verifier-0-", tiny_chat_model, tmp_path / "run")
    assert [r["verifier_restarts"] for r in rl] == [0, 1, 1]
    assert all(r["groups_kept"] == 4 for r in rl)  # 16 samples scored once each, every step
    assert all(r["verify_errors"] == 0 for r in rl)


@pytest.mark.slow
def test_a_killed_learner_rank_stops_the_run_naming_it_and_resume_continues(
    tmp_path, tiny_chat_model, ray_local
):
    run_dir = tmp_path / "run"
    overrides = [*_overrides(tiny_chat_model, run_dir), "steps=3", "learner.world_size=2"]
    with pytest.raises(RunFailed, match=r"learner rank 1 died") as info:
        train(
            load_config("configs/tiny_zero.yaml", overrides),
            progress=kill_after_step_1("learner-1-", False, []),
        )
    assert info.value.run_dir == str(run_dir.resolve())
    summary = train(load_config("configs/tiny_zero.yaml", [*overrides, f"resume={run_dir}"]))
    assert summary["steps"] == 3
    assert [r["step"] for r in _rl_rows(run_dir)] == [1, 2, 3]


def test_a_placement_that_cannot_be_granted_leaves_no_run_directory(
    tmp_path, tiny_chat_model, ray_local
):
    from rlcore.config import ConfigError

    run_dir = tmp_path / "run"
    cfg = load_config(
        "configs/tiny_zero.yaml",
        [*_overrides(tiny_chat_model, run_dir), "resources.nodes=1", "resources.cpus_per_node=64"],
    )
    with pytest.raises(ConfigError, match="resources"):
        train(cfg)
    assert not run_dir.exists()


@pytest.mark.slow
def test_the_final_checkpoint_serves_in_vllm_as_it_is_and_answers_as_the_run_did(uninterrupted):
    """policy/ loads in a fresh vLLM engine, with its own tokenizer, and greedy answers the
    held-out prompts exactly as the run's own (synced) engine did for heldout_rl.jsonl."""
    pytest.importorskip("vllm")
    from transformers import AutoTokenizer

    from rlcore.data.chat import render_prompt
    from rlcore.data.chat import stop_token_ids as _stop_token_ids
    from rlcore.rollout import EngineSpec, SamplingParams, make_engine

    run_dir, _ = uninterrupted
    cfg = load_config(run_dir / "config.yaml")
    policy = run_dir / "checkpoints" / "step_000004" / "policy"
    tok = AutoTokenizer.from_pretrained(policy)
    rows = [json.loads(line) for line in (run_dir / "heldout_rl.jsonl").open()]
    prompts = [
        render_prompt(tok, r["prompt"], cfg.data.prompt_format, cfg.data.raw_template) for r in rows
    ]
    engine = make_engine(EngineSpec(str(policy), "vllm", max_model_len=cfg.rollout.max_model_len))
    try:
        stops = tuple(_stop_token_ids(tok, str(policy)))
        params = SamplingParams(
            n=1, temperature=0.0, max_tokens=cfg.rollout.max_tokens, stop_token_ids=stops
        )
        outs = engine.generate(prompts, params)
    finally:
        engine.shutdown()
    texts = [tok.decode(g[0].token_ids, skip_special_tokens=True) for g in outs]
    assert texts == [r["response"] for r in rows]
