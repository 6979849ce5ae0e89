"""`rlcore replay` (rlcore/replay.py): step 3 of a 5-step tiny run, rebuilt from the step-2
checkpoint, equals the logged step on every metric and records its samples; after one byte of
the checkpoint's weights is altered, the replay names the first metric that differs. Real parts:
a local Ray cluster, vLLM on CPU, DeepSpeed ZeRO-2."""

from __future__ import annotations

import json

import pytest
from rlcore.launch.cli import main as cli

from rlcore.config import load_config
from rlcore.replay import replay, report_table
from rlcore.trainer import train
from tests.test_train_e2e import SMALL


@pytest.mark.slow
def test_a_replayed_step_equals_the_logged_one_until_the_checkpoint_is_altered(
    tmp_path, tiny_chat_model, ray_local, capsys
):
    import torch

    run_dir = tmp_path / "run"
    overrides = [*SMALL, f"model.path={tiny_chat_model}", f"run_dir={run_dir}"]
    train(load_config("configs/tiny_zero.yaml", [*overrides, "steps=5", "checkpoint_every=2"]))

    report = replay(run_dir, 3)
    assert report.start == "step_000002" and report.warnings == []
    assert report.differences == [] and len(report.compared) > 20  # every metric but timings
    rows = [json.loads(x) for x in report.samples.open()]
    assert len(rows) == report.logged["groups_kept"] * 4  # n=4 samples per kept group
    for r in rows:
        assert {
            "prompt",
            "response",
            "reward",
            "advantage",
            "tokens",
            "ratio",
            "clipped_tokens",
        } <= set(r)
        assert r["ratio"] == pytest.approx(1.0, abs=1e-3)  # the engine serves the learner's weights
    assert "all" in report_table(report) and "metrics equal" in report_table(report)

    # one byte of one weight (the final norm's first scale), changed on disk in every copy
    # DeepSpeed keeps: the module's, and under ZeRO 1-2 (several ranks) the fp32 partition too
    # (flat; the norm's 96 come last). One rank runs the plain engine: the module's alone.
    state = run_dir / "checkpoints" / "step_000002" / "deepspeed" / "state"
    module = torch.load(state / "mp_rank_00_model_states.pt", weights_only=False)
    module["module"]["model.norm.weight"].view(torch.uint8)[2] ^= 0x40
    torch.save(module, state / "mp_rank_00_model_states.pt")
    for shard in state.glob("zero_pp_rank_*_optim_states.pt"):
        optim = torch.load(shard, weights_only=False)
        flat = optim["optimizer_state_dict"]["single_partition_of_fp32_groups"][0]
        flat[-96:].view(torch.uint8)[2] ^= 0x40
        torch.save(optim, shard)
    assert cli(["replay", str(run_dir), "--step", "3"]) == 1
    out = capsys.readouterr().out
    assert "metrics differ; the first:" in out
    assert (run_dir / "replay" / "step_000003.jsonl").exists()
