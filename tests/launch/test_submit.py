"""`rlcore submit` and `rlcore jobs`: the runtime environment and token handling here, and a real
run through Ray's job API on a private local head (slow)."""

import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from rlcore.launch.jobs import JobsError, connect, find_token
from rlcore.launch.submit import check_config, entrypoint, runtime_env, stage_package

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "steps=2",
    "stages=[rl]",
    "rollout.prompts_per_step=8",
    "rollout.n=2",
    "data.heldout_size=8",
    "data.train_size=64",
    "rollout.engine=hf",
    "verifier.workers=1",
]


def rlcore(
    args: list[str], env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlcore.launch.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_token_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert find_token(None) == (None, "nowhere")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("home-token\n")
    assert find_token(None)[0] == "home-token"
    (tmp_path / "t").write_text("file-token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "t"))
    assert find_token(None)[0] == "file-token"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "env-token")
    assert find_token(None) == ("env-token", "$RAY_AUTH_TOKEN")
    assert find_token("flag-token") == ("flag-token", "--token")
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(JobsError, match="RAY_AUTH_TOKEN_PATH=.*does not exist"):
        find_token(None)


def test_entrypoint_and_runtime_env(tmp_path):
    cmd = entrypoint("configs/tiny_zero.yaml", ["stages=[rl]", "steps=2"])
    assert cmd == (
        "python -m rlcore.launch.cli train configs/tiny_zero.yaml 'stages=[rl]' steps=2 "
        "ray_address=auto"
    )
    assert entrypoint(None, ["ray_address=ray://h:10001"]).endswith(
        "train ray_address=ray://h:10001"
    )
    args = Namespace(pip=["math-verify==0.9"], env=["A=1", "B=x=y"])
    env = runtime_env(args, tmp_path, tmp_path / "rlcore")
    assert env == {
        "working_dir": str(tmp_path),
        "py_modules": [str(tmp_path / "rlcore")],
        "pip": ["math-verify==0.9"],
        "env_vars": {"A": "1", "B": "x=y"},
    }
    with pytest.raises(JobsError, match="--env wants KEY=VALUE"):
        runtime_env(Namespace(pip=[], env=["nope"]), tmp_path, None)
    # rlcore sets the thread counts per actor: a job-level value would be silently overridden
    # `rlcore jobs stop`: Ray's SIGKILL waits for the run's grace period (+30 s) to checkpoint
    env = runtime_env(Namespace(pip=[], env=["A=1"]), tmp_path, None, grace_s=60.0)
    assert env["env_vars"] == {"A": "1", "RAY_JOB_STOP_WAIT_TIME_S": "90"}
    env = runtime_env(Namespace(pip=[], env=["RAY_JOB_STOP_WAIT_TIME_S=5"]), tmp_path, None, 60.0)
    assert env["env_vars"] == {"RAY_JOB_STOP_WAIT_TIME_S": "5"}  # what the user asked for wins
    with pytest.raises(JobsError, match="--env OMP_NUM_THREADS: .*resources.learner_threads"):
        runtime_env(Namespace(pip=[], env=["A=1", "OMP_NUM_THREADS=8"]), tmp_path, None)


def test_staged_package_has_the_installed_layout(tmp_path):
    root = stage_package(tmp_path)
    assert root.name == "rlcore"
    for f in (
        "__init__.py",
        "config.py",
        "launch/cli.py",
        "verifiers/math.py",
        "kernels/__init__.py",
    ):
        assert (root / f).is_file(), f
    assert not list(root.rglob("__pycache__"))


def test_config_is_checked_here_and_must_be_in_the_working_dir(tmp_path):
    assert check_config("configs/tiny_zero.yaml", ["steps=2"], REPO) == "configs/tiny_zero.yaml"
    # a GPU config validates on this CPU machine: the GPU count is the cluster's business
    assert check_config("configs/gpu_ppo_qwen7b.yaml", [], REPO) == "configs/gpu_ppo_qwen7b.yaml"
    with pytest.raises(JobsError, match="unknown config key 'rollout.temprature'"):
        check_config("configs/tiny_zero.yaml", ["rollout.temprature=1"], REPO)
    outside = tmp_path / "c.yaml"
    outside.write_text("steps: 2\n")
    with pytest.raises(JobsError, match="outside the working directory"):
        check_config(str(outside), [], REPO)


def test_unreachable_head_and_no_address_are_clear(monkeypatch):
    with pytest.raises(JobsError, match="no cluster address"):
        connect(None, None)
    r = rlcore(["jobs", "list", "--address", "http://127.0.0.1:9", "--token", "x"])
    assert r.returncode == 2, r.stderr
    assert "cannot reach the Ray dashboard at http://127.0.0.1:9" in r.stderr
    assert "Traceback" not in r.stderr
    r = rlcore(
        [
            "submit",
            "configs/tiny_zero.yaml",
            "rollout.temprature=1",
            "--address",
            "http://127.0.0.1:9",
        ]
    )
    assert r.returncode == 2 and "did you mean 'rollout.temperature'" in r.stderr


# ---- a real head ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def head():
    from ray_head import local_head

    with local_head(num_cpus=4) as h:
        yield h


@pytest.mark.slow
def test_submit_follow_runs_to_success_then_logs_and_metrics(head):
    run_dir = head.temp_dir / "run"
    args = ["submit", "configs/tiny_zero.yaml", *TINY, "resources.nodes=1", f"run_dir={run_dir}"]
    r = rlcore([*args, "--address", head.dashboard, "--follow"], env=head.env, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    job_id = r.stdout.splitlines()[0].strip()
    assert job_id.startswith("raysubmit_")
    assert f"job {job_id}: SUCCEEDED" in r.stderr
    assert "placement group PACK reserved" in r.stdout  # resources.nodes=1 went through placement

    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows if x["stage"] == "rl"] == [1, 2]
    assert all(x["time_rollout"] > 0 and x["response_len"] > 0 for x in rows)
    assert (run_dir / "summary.json").is_file()

    logs = rlcore(["jobs", "logs", job_id, "--address", head.dashboard], env=head.env)
    assert logs.returncode == 0 and "held-out accuracy after rl" in logs.stdout
    listed = rlcore(["jobs", "list", "--address", head.dashboard], env=head.env)
    assert job_id in listed.stdout and "SUCCEEDED" in listed.stdout
    # the hang dump through the cluster: a job of its own runs `rlcore stacks` on the head
    stacks = rlcore(["jobs", "stacks", str(run_dir), "--address", head.dashboard], env=head.env)
    assert stacks.returncode == 0 and "learner0 (pid" in stacks.stdout, stacks.stderr[-2000:]
    assert "stacks in" in stacks.stdout and (run_dir / "hangs" / "pids.json").is_file()
    missing = rlcore(["jobs", "stop", "raysubmit_nope", "--address", head.dashboard], env=head.env)
    assert missing.returncode == 2 and "no such job" in missing.stderr


@pytest.mark.slow
def test_wrong_or_missing_token_is_a_clear_error(head, tmp_path):
    args = ["submit", "configs/tiny_zero.yaml", *TINY, "--address", head.dashboard]
    wrong = rlcore([*args, "--token", "not-the-token"], env=head.env)
    assert wrong.returncode == 2
    assert (
        "rejected the token from --token" in wrong.stderr and "ray get-auth-token" in wrong.stderr
    )
    assert "Traceback" not in wrong.stderr
    env = {k: v for k, v in head.env.items() if k != "RAY_AUTH_TOKEN_PATH"}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token
    missing = rlcore(args, env=env)
    assert missing.returncode == 2
    assert "requires a token" in missing.stderr and "Traceback" not in missing.stderr
