"""`rlcore replay RUN_DIR --step N`: rebuild RL step N of a run and compare it with the log.

    report = replay(run_dir, step=3)
    report.differences      # [(metric, logged, replayed)], first difference first; [] = equal

The replay starts from the newest RL checkpoint before step N (or from the start when there is
none), runs the steps in between as the run did, and stops after step N's update. It works in
RUN_DIR/replay/step_N_run/ (the checkpoint is hard-linked there, never written), and writes
RUN_DIR/replay/step_N.jsonl: one line per trained sample with its prompt, response, reward,
verifier details, advantage, loss tokens, learner/engine importance ratio and clipped tokens
(rlcore/step.py sample_record), so a spike in a metric can be traced to the samples behind it.

On CPU a run is deterministic, so every metric but the timings and memory must be equal; a
checkpoint that fails its manifest (a file altered since) is replayed anyway, with a warning,
so the difference it makes shows in the report.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlcore import checkpoint
from rlcore.config import load_config
from rlcore.trainer import replay_step_file, train

log = logging.getLogger(__name__)

VOLATILE = ("time_", "pss_mib/", "compute_s")  # wall time and memory: not part of the result


@dataclass
class Report:
    step: int
    start: str  # the checkpoint replayed from ("" = the start of the run)
    logged: dict[str, Any]
    replayed: dict[str, Any]
    samples: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def compared(self) -> list[str]:
        return [k for k in self.logged if k not in ("step", "stage") and not k.startswith(VOLATILE)]

    @property
    def differences(self) -> list[tuple[str, Any, Any]]:
        return [
            (k, self.logged[k], self.replayed.get(k))
            for k in self.compared
            if self.replayed.get(k) != self.logged[k]
        ]


def _rl_row(run_dir: Path, step: int) -> dict[str, Any] | None:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(x) for x in path.open() if x.strip()]
    found = [r for r in rows if r.get("stage") == "rl" and r.get("step") == step]
    return found[-1] if found else None


def _start_checkpoint(run_dir: Path, step: int) -> Path | None:
    """The newest RL checkpoint of a step before `step` (damaged ones included: see the doc)."""
    best = None
    for ckpt in sorted((run_dir / "checkpoints").glob("step_*")):
        try:
            state = checkpoint.read_state(ckpt)
        except (OSError, ValueError):
            continue
        if state.get("stage") in ("rl", "rl_done") and int(state.get("step", 0)) < step:
            best = ckpt
    return best


def _link_checkpoint(src: Path, work: Path, warnings: list[str]) -> None:
    """Hard-links `src` into work/checkpoints/; a copy that fails its manifest gets a fresh one
    (the original's is never written: its link is replaced, not rewritten)."""
    dst = work / "checkpoints" / src.name
    shutil.copytree(src, dst, copy_function=os.link)
    why = checkpoint.problem(dst)
    if why is not None:
        warnings.append(f"checkpoint {src} fails its manifest ({why}): replayed as it is on disk")
        (dst / checkpoint.MANIFEST).unlink()
        files = {
            str(p.relative_to(dst)): checkpoint.fingerprint(p)
            for p in sorted(dst.rglob("*"))
            if p.is_file() and p.name not in (checkpoint.MANIFEST, "trainer_state.json")
        }
        (dst / checkpoint.MANIFEST).write_text(json.dumps(files, indent=1))


def replay(run_dir: Path | str, step: int, progress: Any = None) -> Report:
    """Step `step` of the run in `run_dir`, rebuilt and compared (see the module doc)."""
    run_dir = Path(run_dir).resolve()
    logged = _rl_row(run_dir, step)
    if logged is None:
        raise ValueError(f"{run_dir}/metrics.jsonl has no RL step {step}")
    start = _start_checkpoint(run_dir, step)
    out = run_dir / "replay"
    work = out / f"step_{step:06d}_run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    warnings: list[str] = []
    no_evals = ["eval.every=0", "log.backends=[jsonl]"]
    if start is not None:
        shutil.copy(run_dir / "config.yaml", work / "config.yaml")
        _link_checkpoint(start, work, warnings)
        reference = checkpoint.read_state(start).get("reference")
        if reference and not (work / "checkpoints" / Path(reference).name).exists():
            _link_checkpoint(run_dir / "checkpoints" / Path(reference).name, work, warnings)
        cfg = load_config(work / "config.yaml", [f"resume={work}", *no_evals])
    else:
        work.rmdir()
        cfg = load_config(run_dir / "config.yaml", [f"run_dir={work}", "resume=", *no_evals])
    for w in warnings:
        log.warning("%s", w)
    train(cfg, progress=progress, replay_step=step)
    replayed = _rl_row(work, step) or {}
    samples = out / f"step_{step:06d}.jsonl"
    shutil.move(str(work / replay_step_file(step)), samples)
    return Report(step, start.name if start else "", logged, replayed, samples, warnings)


def report_table(report: Report) -> str:
    """The comparison, metric by metric, as printed by `rlcore replay`."""
    diff = {k for k, _, _ in report.differences}
    width = max((len(k) for k in report.compared), default=6)
    lines = [f"{'metric':<{width}}  {'logged':>14}  {'replayed':>14}  equal"]
    for k in report.compared:
        a, b = report.logged[k], report.replayed.get(k)
        lines.append(f"{k:<{width}}  {a!s:>14.14}  {b!s:>14.14}  {'no' if k in diff else 'yes'}")
    start = f"checkpoint {report.start}" if report.start else "the start of the run"
    if report.differences:
        k, a, b = report.differences[0]
        verdict = (
            f"step {report.step} replayed from {start}: {len(diff)} of {len(report.compared)} "
            f"metrics differ; the first: {k} logged {a}, replayed {b}"
        )
    else:
        verdict = (
            f"step {report.step} replayed from {start}: all {len(report.compared)} metrics equal"
        )
    return "\n".join([*lines, "", verdict, f"samples: {report.samples}"])
