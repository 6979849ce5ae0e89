"""`rlcore train` on bad input: a clear message naming what is wrong, a non-zero exit, and no run
directory (nothing half-written)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def rlcore(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlcore.launch.cli", "train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def gpu_config(tmp_path) -> Path:
    p = tmp_path / "gpu.yaml"
    p.write_text("gpus: 8\nlearner:\n  gpus_per_rank: 1\n  world_size: 8\n")
    return p


def test_unknown_key_is_named_with_nearest(tmp_path):
    r = rlcore([str(REPO / "configs/tiny_coldstart.yaml"), "rollout.temprature=0.7"], tmp_path)
    assert r.returncode == 2
    assert "unknown config key 'rollout.temprature'" in r.stderr
    assert "did you mean 'rollout.temperature'" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_zero_temperature_is_a_config_error_before_anything_is_written(tmp_path):
    r = rlcore(["rollout.temperature=0"], tmp_path)
    assert r.returncode == 2
    assert "config error: rollout.temperature: 0.0 must be > 0" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_gpu_config_on_cpu_machine(tmp_path, gpu_config):
    r = rlcore([str(gpu_config)], tmp_path)
    assert r.returncode == 2
    assert "asks for 8 GPU(s)" in r.stderr and "this machine has 0" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_model_path(tmp_path):
    r = rlcore(["model.path=/nonexistent/model"], tmp_path)
    assert r.returncode == 2
    assert "model.path: /nonexistent/model is not a Hugging Face model folder" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_data_file(tmp_path, tiny_chat_model):
    r = rlcore([f"model.path={tiny_chat_model}", "data.train=nope/train.jsonl"], tmp_path)
    assert r.returncode == 2
    assert "data.train: data file not found: nope/train.jsonl" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_malformed_jsonl_row_names_file_and_line(tmp_path, tiny_chat_model):
    data = tmp_path / "train.jsonl"
    good = json.dumps({"prompt": "1+2=?", "reference": {"answer": "3"}})
    data.write_text(f'{good}\n{good}\n{{"prompt": "3+4=?", \n')
    r = rlcore([f"model.path={tiny_chat_model}", f"data.train={data}"], tmp_path)
    assert r.returncode == 2
    assert f"{data}:3: malformed JSON" in r.stderr
    assert not (tmp_path / "runs").exists()
