"""Checkpoints carry a manifest (size + SHA-256 of every file); resume skips a damaged one."""

import json
import logging

import pytest

from rlcore import checkpoint


def _write(run_dir, step, payload=b"weights" * 100):
    tmp = checkpoint.begin(run_dir, step)
    (tmp / "policy").mkdir()
    (tmp / "policy" / "model.safetensors").write_bytes(payload)
    (tmp / "rng_rank0.pt").write_bytes(b"rng")
    return checkpoint.commit(tmp, checkpoint.step_dir(run_dir, step), {"stage": "rl", "step": step})


def test_manifest_lists_every_file_and_a_good_checkpoint_passes(tmp_path):
    ckpt = _write(tmp_path, 2)
    files = json.loads((ckpt / checkpoint.MANIFEST).read_text())
    assert set(files) == {"policy/model.safetensors", "rng_rank0.pt"}
    assert files["rng_rank0.pt"][0] == 3
    assert checkpoint.problem(ckpt) is None
    assert checkpoint.latest(tmp_path) == ckpt


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda c: (c / "policy" / "model.safetensors").write_bytes(b"short"), "has 5 bytes"),
        (lambda c: (c / "policy" / "model.safetensors").write_bytes(b"W" * 700), "SHA-256"),
        (lambda c: (c / "rng_rank0.pt").unlink(), "rng_rank0.pt is missing"),
        (lambda c: (c / "trainer_state.json").write_text('{"step": 4,'), "trainer_state.json"),
        (lambda c: (c / checkpoint.MANIFEST).write_text("[oops"), "manifest.json"),
    ],
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage, why):
    good = _write(tmp_path, 2)
    bad = _write(tmp_path, 4)
    damage(bad)
    assert why in checkpoint.problem(bad)
    with caplog.at_level(logging.WARNING, logger="rlcore.checkpoint"):
        assert checkpoint.latest(tmp_path) == good
    assert "step_000004 is damaged" in caplog.text


def test_half_written_and_unmanifested_checkpoints(tmp_path):
    good = _write(tmp_path, 2)
    half = checkpoint.begin(tmp_path, 4)  # a crash before commit: only the .tmp folder
    (half / "rng_rank0.pt").write_bytes(b"rng")
    assert checkpoint.latest(tmp_path) == good
    (good / checkpoint.MANIFEST).unlink()  # written before manifests existed: state file only
    assert checkpoint.problem(good) is None
    (good / "trainer_state.json").unlink()
    assert checkpoint.latest(tmp_path) is None


def test_checkpoint_keep_deletes_the_oldest_but_never_the_kl_reference(tmp_path):
    for step in (0, 2, 4, 6, 8):
        _write(tmp_path, step)
    assert checkpoint.prune(tmp_path, 0, set()) == []  # 0 keeps every one
    gone = checkpoint.prune(tmp_path, 2, {"step_000000"})
    assert gone == ["step_000002", "step_000004"]
    left = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert left == ["step_000000", "step_000006", "step_000008"]
