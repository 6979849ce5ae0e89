"""The GPU check (benchmarks/gpu_check.py) before any GPU is lent: its runner contains a failing or
hanging check, and its CPU rehearsal runs in a fresh environment holding only the GPU image's
packages (scripts/gpu_check_venv.sh; CPU torch stands in for CUDA torch) plus the carried wheels
(scripts/gpu_check_wheels.sh), which must fit in one call's 64 MiB with the working tree.

The rehearsal is `slow`: the first test here builds the environment and the wheels once (~2 GB
under .cache/ and benchmarks/gpu_check_wheels/, a few minutes; a newcomer's install does not). Each check runs in its own process that
imports torch and transformers, ~1-3 minutes in all on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# benchmarks/ on the path only while importing the runner: it holds modules named like libraries
# (verifiers.py, sync.py) that must not shadow them for the rest of the session
sys.path.insert(0, str(REPO / "benchmarks"))
try:
    from gpu_check import Check, run_check
    from gpu_check_common import Ctx
finally:
    sys.path.remove(str(REPO / "benchmarks"))

GPU_CHECKS = {
    "kernel",
    "kernel_speed",
    "learner_logprobs",
    "learner_steps",
    "engine",
    "ipc_sync",
    "deepspeed",
}
FAKE_CHECKS = """
import time

def ok(ctx):
    return {"status": "passed", "summary": "fine"}

def boom(ctx):
    raise ValueError("broken on purpose")

def hang(ctx):
    time.sleep(120)
"""


def test_runner_contains_failing_and_hanging_checks(tmp_path):
    (tmp_path / "fake_checks.py").write_text(FAKE_CHECKS)
    ctx = Ctx("cpu", tmp_path, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    log = tmp_path / "gpu_check.log"

    def run(func: str, seconds: float) -> dict:
        return run_check(Check(func, "fake_checks", func, seconds), ctx, env, log, seconds)

    assert run("ok", 60)["status"] == "passed"
    boom = run("boom", 60)
    assert boom["status"] == "failed" and "ValueError: broken on purpose" in boom["summary"]
    hang = run("hang", 3)
    assert (hang["status"], hang["summary"]) == ("failed", "stopped after 3 s")
    assert hang["seconds"] < 30
    assert "Traceback" in log.read_text()  # the failing check's output is kept


@pytest.mark.parametrize(
    "script",
    [
        "benchmarks/gpu_check.sh",
        "benchmarks/gpu_check_train.sh",
        "scripts/gpu_check_wheels.sh",
        "scripts/gpu_check_venv.sh",
    ],
)
def test_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", script], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", script], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


def _script(name: str, timeout: float) -> str:
    proc = subprocess.run(
        ["bash", f"scripts/{name}"], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def rehearsal() -> dict[str, str]:
    """The image-like environment's python and the wheel script's size line."""
    sizes = _script("gpu_check_wheels.sh", timeout=600)
    python = _script("gpu_check_venv.sh", timeout=1800).strip().splitlines()[-1]
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])"
    names = ("rlcore", "omegaconf", "ray", "deepspeed", "vllm", "torch", "triton")
    found = subprocess.run(
        [str(REPO / python), "-c", probe % (names,)], capture_output=True, text=True, cwd="/"
    )
    assert found.stdout.strip() == "['torch', 'triton']", found.stdout + found.stderr
    return {"python": str(REPO / python), "sizes": sizes}


def _run_entry(python: str, out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [python, "benchmarks/gpu_check.py", str(out), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    report = json.loads((out / "gpu_check.json").read_text())
    return proc, report


@pytest.mark.slow
def test_wheels_and_working_tree_fit_in_one_call(rehearsal):
    match = re.search(r"= ([\d.]+) MiB of 64 MiB", rehearsal["sizes"])
    assert match and float(match.group(1)) < 64, rehearsal["sizes"]
    wheels = REPO / "benchmarks" / "gpu_check_wheels"
    assert [p.name for p in wheels.glob("*.whl")] == ["omegaconf-2.4.0-py3-none-any.whl"]
    assert list((wheels / "deepspeed").glob("deepspeed-*.tar.gz"))


@pytest.mark.slow
def test_rehearsal_reports_gpu_parts_skipped_without_cuda(rehearsal, tmp_path):
    proc, report = _run_entry(rehearsal["python"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    checks = report["checks"]
    assert {k for k, v in checks.items() if v["status"] == "skipped: no CUDA"} == GPU_CHECKS
    others = {k: v["status"] for k, v in checks.items() if k not in GPU_CHECKS}
    assert set(others) == {"vllm_engine", "ray_training_loop", "nccl_sync"}
    assert all(s.startswith("not checked: ") for s in others.values()), others
    env = report["environment"]
    assert env["carried_wheels_installed"] == ["omegaconf-2.4.0-py3-none-any.whl"]
    assert env["packages"]["transformers"] == "5.17.0" and env["packages"]["ray"] is None
    table = (tmp_path / "gpu_check.txt").read_text()
    assert "| kernel | skipped: no CUDA |" in table and "passed" not in table


@pytest.mark.slow
def test_rehearsal_cpu_smoke_runs_every_part(rehearsal, tmp_path):
    proc, report = _run_entry(rehearsal["python"], tmp_path, "--cpu-smoke", "--budget", "1500")
    log = (tmp_path / "gpu_check.log").read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + log[-6000:]
    statuses = {k: v["status"] for k, v in report["checks"].items()}
    for name in GPU_CHECKS - {"deepspeed"}:
        assert statuses[name] == "passed (cpu smoke)", (name, report["checks"][name])
    assert statuses["deepspeed"] == "not checked: DeepSpeed is tried on the GPU only"
    assert "nothing here is proven on a GPU" in (tmp_path / "gpu_check.txt").read_text()
