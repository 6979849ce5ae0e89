"""W&B and MLflow trackers (rlcore/trackers.py) on a real 2-step run, offline: W&B in offline mode,
MLflow in its local store under the run directory. Skipped where the extras are not installed."""

import json

import pytest

from rlcore.config import ConfigError, load_config
from rlcore.preflight import check
from rlcore.trainer import train

SMALL = [
    "rollout.prompts_per_step=4",
    "rollout.n=4",
    "rollout.max_tokens=16",
    "data.train_size=32",
    "data.heldout_size=4",
    "learner.micro_batch_size=8",
    "verifier.workers=1",
    "steps=2",
    "log.completions_every=1",
    "log.completions_max=5",
]


def test_a_backend_whose_package_is_missing_stops_at_launch_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"log.backends: wandb needs .*rlcore\[wandb\]"):
        check(load_config(None, ["log.backends=[jsonl,wandb]"]))
    with pytest.raises(ConfigError, match="unknown backend 'neptune'"):
        check(load_config(None, ["log.backends=[neptune]"]))


@pytest.mark.parametrize(
    "uri, refused",
    [
        ("file:///tmp/mlruns", True),
        ("./mlruns", True),
        ("/srv/mlruns", True),
        ("sqlite:///tmp/mlflow.db", False),
        ("http://tracking:5000", False),
    ],
)
def test_an_mlflow_file_store_uri_is_refused_at_launch_saying_what_to_set(
    monkeypatch, uri, refused
):
    """MLflow 3 refuses a file store unless opted in; before this check the run started Ray and
    then ended in MLflow's traceback."""
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    if refused:
        with pytest.raises(
            ConfigError, match=r"is a file store.*MLFLOW_ALLOW_FILE_STORE=true.*sqlite"
        ):
            check(load_config(None, ["log.backends=[jsonl,mlflow]"]))
    else:
        check(load_config(None, ["log.backends=[jsonl,mlflow]"]))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the opt-in: accepted
    check(load_config(None, ["log.backends=[jsonl,mlflow]"]))


@pytest.mark.slow
def test_wandb_and_mlflow_get_config_metrics_completions_and_summary(
    tmp_path, tiny_chat_model, ray_local, monkeypatch
):
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "run"
    cfg = load_config(
        "configs/tiny_zero.yaml",
        [
            *SMALL,
            f"model.path={tiny_chat_model}",
            f"run_dir={run_dir}",
            "log.backends=[tensorboard,jsonl,wandb,mlflow]",
        ],
    )
    train(cfg)

    # W&B offline: one run folder with the history of both steps and the completions tables
    (offline,) = list((run_dir / "wandb").glob("offline-run-*"))
    assert (run_dir / "wandb_run_id").read_text() in offline.name
    assert list(offline.glob("*.wandb"))

    # MLflow: params from the config, per-step metrics, completions tables, summary artifacts
    mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
    run = mlflow.get_run((run_dir / "mlflow_run_id").read_text())
    assert run.data.params["rollout.n"] == "4"
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "rl/reward_mean")
    assert sorted(m.step for m in history) == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"completions", "summary.json", "rewards.png"} <= artifacts
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="completions/step_000002.json", dst_path=tmp_path
    )
    table = json.loads(open(local).read())
    assert len(table["response"]) == 5 and set(table) >= {"prompt", "reward", "details"}
