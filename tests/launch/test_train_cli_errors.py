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


def test_a_config_that_is_not_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 3\nrollout:\n  n: [4\n  temperature: 0.7\n")
    r = rlcore([str(bad)], tmp_path)
    assert r.returncode == 2
    assert f"{bad}:4:" in r.stderr and "not valid YAML" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


def test_training_rows_that_are_all_held_out_refuse_to_start(tmp_path, tiny_chat_model):
    rows = tmp_path / "rows.jsonl"
    row = {"prompt": "1+2=?", "reference": {"answer": "3"}}
    rows.write_text("".join(json.dumps({**row, "prompt": f"{i}+2=?"}) + "\n" for i in range(4)))
    r = rlcore(
        [f"model.path={tiny_chat_model}", f"data.train={rows}", f"data.heldout={rows}"], tmp_path
    )
    assert r.returncode == 2
    assert "data.train: no training rows left" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_a_single_held_out_row_and_an_overlong_prompt_refuse_to_start(tmp_path, tiny_chat_model):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"prompt": "1+2=?", "reference": {"answer": "3"}}) + "\n")
    r = rlcore([f"model.path={tiny_chat_model}", f"data.heldout={one}"], tmp_path)
    assert r.returncode == 2 and "data.heldout: 1 row(s); at least 2 are needed" in r.stderr
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"id": "big", "prompt": "1+" * 400 + "2=?"}) + "\n")
    r = rlcore([f"model.path={tiny_chat_model}", f"data.train={long}"], tmp_path)
    assert r.returncode == 2
    assert "data.train: row 'big' has a" in r.stderr and "rollout.max_model_len=256" in r.stderr
    assert not (tmp_path / "runs").exists()
