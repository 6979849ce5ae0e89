"""Experiment trackers beside metrics.jsonl and TensorBoard: Weights & Biases and MLflow.

    log:
      backends: [tensorboard, jsonl, wandb, mlflow]
      completions_every: 10     # a table of sampled completions every 10 RL steps

Each tracker gets the resolved config once, every logged row (SFT, RL and eval steps, keys
prefixed by the stage: "rl/reward_mean", with "rl/step"), a table of sampled completions (prompt,
response, reward, correct, error, verifier details) every `log.completions_every` RL steps, as
TRL's `log_completions` does, and at the end the summary (held-out accuracies, the capability
bucket table) and the run's plots. Offline modes are theirs: WANDB_MODE=offline writes under the
run directory; MLflow logs to MLFLOW_TRACKING_URI, or to a local store in RUN_DIR/mlruns.
The packages are optional extras (`pip install rlcore[wandb]`, `rlcore[mlflow]`); a run naming a
backend whose package is missing stops at launch, naming the extra.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from pathlib import Path
from typing import Any

BACKENDS = {"tensorboard": None, "jsonl": None, "wandb": "wandb", "mlflow": "mlflow"}
COMPLETION_COLUMNS = ("step", "prompt", "response", "reward", "correct", "error", "details")


def missing_backend(backends: list[str]) -> str | None:
    """Why `log.backends` cannot run here, or None."""
    for b in backends:
        if b not in BACKENDS:
            return f"log.backends: unknown backend {b!r}; known: {', '.join(BACKENDS)}"
        module = BACKENDS[b]
        if module and importlib.util.find_spec(module) is None:
            return f"log.backends: {b} needs its package: pip install 'rlcore[{b}]'"
    if "mlflow" in backends:
        return _mlflow_file_store_refused()
    return None


def _mlflow_file_store_refused() -> str | None:
    """MLflow 3 refuses a file store (a file:// URI or a plain path) unless MLFLOW_ALLOW_FILE_STORE
    is set; say so before start-up instead of ending in MLflow's traceback."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri or os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("true", "1"):
        return None  # unset: rlcore's own local store in the run directory (opted in)
    if uri.startswith("file:") or "://" not in uri and ":" not in uri.split("/")[0]:
        return (
            f"log.backends: mlflow: MLFLOW_TRACKING_URI={uri} is a file store, which MLflow 3 "
            "refuses; set MLFLOW_ALLOW_FILE_STORE=true to use it, point MLFLOW_TRACKING_URI at a "
            "database (sqlite:///PATH/mlflow.db) or a server (http://HOST:5000), or unset it for a "
            "store in the run directory"
        )
    return None


def _scalars(stage: str, step: int, metrics: dict[str, Any]) -> dict[str, float]:
    out = {f"{stage}/{k}": float(v) for k, v in metrics.items() if _is_number(v)}
    out[f"{stage}/step"] = float(step)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class WandbTracker:
    def __init__(self, config: dict[str, Any], run_dir: Path, project: str, name: str) -> None:
        import wandb

        self.wandb = wandb
        id_file = run_dir / "wandb_run_id"  # a resumed run continues the same W&B run
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id)
        self.run = wandb.init(
            project=project, name=name, id=run_id, resume="allow", dir=str(run_dir), config=config
        )

    def log(self, step: int, stage: str, metrics: dict[str, Any]) -> None:
        self.run.log(_scalars(stage, step, metrics))

    def completions(self, step: int, rows: list[dict[str, Any]]) -> None:
        table = self.wandb.Table(
            columns=list(COMPLETION_COLUMNS),
            data=[
                [r.get(c) if c != "details" else json.dumps(r.get(c)) for c in COMPLETION_COLUMNS]
                for r in rows
            ],
        )
        self.run.log({"rl/completions": table, "rl/step": float(step)})

    def finish(self, summary: dict[str, Any], files: list[Path]) -> None:
        self.run.summary.update({k: v for k, v in _flat(summary).items() if _is_number(v)})
        buckets = summary.get("buckets") or {}
        if buckets:
            rows = [
                [b, v.get("start", {}).get("pass@1"), v.get("end", {}).get("pass@1")]
                for b, v in buckets.items()
            ]
            table = self.wandb.Table(columns=["bucket", "start pass@1", "end pass@1"], data=rows)
            self.run.log({"eval/buckets": table})
        for f in files:
            if f.suffix == ".png":
                self.run.log({f"plots/{f.stem}": self.wandb.Image(str(f))})
            else:
                self.run.save(str(f), base_path=str(f.parent), policy="now")

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, config: dict[str, Any], run_dir: Path, project: str, name: str) -> None:
        import os

        import mlflow

        self.mlflow = mlflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            # the local default: a file store in the run directory (MLflow 3 asks for the opt-in;
            # point MLFLOW_TRACKING_URI at a server or sqlite:///... for a database instead)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
        mlflow.set_experiment(project)
        id_file = run_dir / "mlflow_run_id"  # a resumed run continues the same MLflow run
        run_id = id_file.read_text().strip() if id_file.is_file() else None
        self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else name)
        id_file.write_text(self.run.info.run_id)
        if run_id is None:
            params = {k: str(v)[:500] for k, v in _flat(config).items()}
            mlflow.log_params(params)

    def log(self, step: int, stage: str, metrics: dict[str, Any]) -> None:
        self.mlflow.log_metrics(_scalars(stage, step, metrics), step=step)

    def completions(self, step: int, rows: list[dict[str, Any]]) -> None:
        data = {
            c: [r.get(c) if c != "details" else json.dumps(r.get(c)) for r in rows]
            for c in COMPLETION_COLUMNS
        }
        self.mlflow.log_dict(data, f"completions/step_{step:06d}.json")

    def finish(self, summary: dict[str, Any], files: list[Path]) -> None:
        numbers = {
            k.replace("@", "_at_"): float(v) for k, v in _flat(summary).items() if _is_number(v)
        }
        self.mlflow.log_metrics({f"summary/{k}": v for k, v in numbers.items()})
        self.mlflow.log_dict(summary, "summary.json")
        for f in files:
            self.mlflow.log_artifact(str(f))

    def close(self) -> None:
        self.mlflow.end_run()


def make_trackers(
    backends: list[str], config: dict[str, Any], run_dir: Path, project: str, name: str
) -> list[Any]:
    kinds = {"wandb": WandbTracker, "mlflow": MlflowTracker}
    return [
        kinds[b](config, run_dir, project, name or run_dir.name) for b in backends if b in kinds
    ]
