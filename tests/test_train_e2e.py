"""The whole loop on a local Ray cluster: a 2-step cold-start run, its run directory, and resume.

Real parts throughout: Ray actors, the vLLM CPU engine (or the transformers engine where vLLM does
not import), DeepSpeed ZeRO-2 on CPU, the math and format verifiers in their process pool, and the
broadcast weight sync with its logprob check after every step.
"""

import json
from pathlib import Path

import pytest

from rlcore.config import load_config
from rlcore.trainer import train

SMALL = [
    "rollout.prompts_per_step=4",
    "rollout.n=4",
    "rollout.max_tokens=24",
    "data.train_size=64",
    "data.heldout_size=8",
    "data.sft_size=16",
    "sft.epochs=1",
    "sft.batch_size=8",
    "learner.micro_batch_size=8",
    "verifier.workers=1",
]


def _adam_moments(ckpt: Path) -> int:
    """AdamW moment tensors saved in a checkpoint: in the module's file (one rank: DeepSpeed's
    plain engine) or in ZeRO's optimizer shards (several ranks)."""
    import torch

    state = ckpt / "deepspeed" / "state"
    saved = [torch.load(state / "mp_rank_00_model_states.pt", weights_only=False)["optimizer"]]
    for f in state.glob("*optim_states.pt"):
        saved.append(
            torch.load(f, weights_only=False)["optimizer_state_dict"]["base_optimizer_state"]
        )
    count = 0
    for sd in saved:
        if sd is None:
            continue
        groups = sd["state"].values() if isinstance(sd, dict) else sd
        count += sum(k in g for g in groups for k in ("exp_avg", "exp_avg_sq"))
    return count


@pytest.mark.slow
def test_two_step_coldstart_run_then_resume(tmp_path, tiny_chat_model, ray_local):
    run_dir = tmp_path / "run"
    cfg = load_config(
        "configs/tiny_coldstart.yaml",
        [
            *SMALL,
            f"model.path={tiny_chat_model}",
            f"run_dir={run_dir}",
            "steps=2",
            "checkpoint_every=1",
            "algo.kl_coef=0.05",
            "sft.lr_schedule=cosine",
        ],
    )
    summary = train(cfg)

    assert {
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "rewards.png",
        "checkpoints",
        "tensorboard",
    } <= {p.name for p in run_dir.iterdir()}
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["steps"] == 2 and on_disk["wall_s"] > 0
    assert set(on_disk["heldout_accuracy"]) == {"base", "sft", "rl"}
    assert summary["heldout_accuracy"] == on_disk["heldout_accuracy"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rows if r["stage"] == "rl"]
    assert [r["step"] for r in rl] == [1, 2]
    for key in (
        "reward_mean",
        "accuracy",
        "response_len",
        "entropy",
        "clip_frac",
        "grad_norm",
        "time_rollout",
        "time_verify",
        "time_learn",
        "time_sync",
    ):
        assert key in rl[0], key
    # the engine serves exactly the learner's weights after every sync (checked in the loop)
    assert all(r["sync_probe_max"] < 1e-3 for r in rl)
    # every actor's resident memory per step, and each one's peak in the summary
    actors = {"learner0", "rollout0", "verifier0", "driver"}
    assert all(r[f"pss_mib/{a}"] > 50 for r in rl for a in actors)
    peak = on_disk["peak_pss_mib"]
    assert actors | {"total"} <= set(peak) and peak["total"] >= max(peak[a] for a in actors)
    # two SFT steps (16 rows, batch 8): the cosine schedule's full rate, then half of it
    assert [r["lr"] for r in rows if r["stage"] == "sft"] == pytest.approx([1e-3, 5e-4])
    # the KL reference is the policy RL starts from (the SFT weights, saved as step 0), not the
    # pre-SFT base: at the first RL step the policy IS the reference
    assert rl[0]["kl"] < 1e-6
    # and RL's optimizer is fresh: a first step with no gradient (every group all-wrong) leaves
    # the weights where SFT left them; SFT's carried-over moments used to move them anyway
    if rl[0]["grad_norm"] == 0.0:
        assert rl[1]["kl"] < 1e-6
    else:
        assert rl[1]["kl"] > 1e-6
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["step_000000", "step_000001", "step_000002"]
    sft_state = json.loads((run_dir / "checkpoints/step_000000/trainer_state.json").read_text())
    assert sft_state["stage"] == "sft_done" and sft_state["reference"] == "step_000000"
    # RL starts with a fresh optimizer (sft.fresh_optimizer): the checkpoint RL starts from holds
    # no AdamW moments, though SFT took two steps; the first RL step creates them
    assert _adam_moments(run_dir / "checkpoints/step_000000") == 0
    assert _adam_moments(run_dir / "checkpoints/step_000001") > 0
    policy = run_dir / "checkpoints" / "step_000002" / "policy"
    assert (policy / "config.json").is_file() and (policy / "tokenizer.json").is_file()

    # resume: two more steps continue from step 2; SFT is not repeated
    cfg2 = load_config(
        "configs/tiny_coldstart.yaml",
        [
            *SMALL,
            f"model.path={tiny_chat_model}",
            f"resume={run_dir}",
            "steps=4",
            "checkpoint_every=1",
            "algo.kl_coef=0.05",
        ],
    )
    summary2 = train(cfg2)
    assert summary2["steps"] == 4
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "rl"] == [1, 2, 3, 4]
    assert sum(r["stage"] == "sft" for r in rows) == 2  # the two SFT steps of the first run only
    state = json.loads((run_dir / "checkpoints" / "step_000004" / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["stage"] == "rl_done"
    assert state["reference"] == "step_000000"  # the resumed learners reloaded the SFT reference
    kl = [r["kl"] for r in rows if r["stage"] == "rl"]
    # one update per step at a small lr: the resumed steps stay as close to the SFT reference as
    # step 2 was (the pre-SFT base, two SFT steps at lr 1e-3 away, is orders of magnitude further)
    assert max(kl[2:]) <= 20 * max(kl[:2]) + 1e-6, kl
    assert not list(Path(run_dir / "checkpoints").glob(".*.tmp"))


@pytest.mark.slow
def test_zero3_over_two_ranks_starts_and_trains_as_zero2_does(tmp_path, tiny_chat_model, ray_local):
    """Every collective call goes to every learner rank: ZeRO-3 over 2 ranks used to hang at
    start-up (rank 0 alone gathered parameters for the sync's description and its probe)."""

    def run(stage: int) -> list[dict]:
        run_dir = tmp_path / f"zero{stage}"
        cfg = load_config(
            "configs/tiny_zero.yaml",
            [
                *SMALL,
                f"model.path={tiny_chat_model}",
                f"run_dir={run_dir}",
                "steps=3",
                "learner.world_size=2",
                f"learner.zero_stage={stage}",
                "sync.verify=true",
            ],
        )
        train(cfg)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
        return [r for r in rows if r["stage"] == "rl"]

    two, three = run(2), run(3)
    assert [r["step"] for r in three] == [1, 2, 3]
    assert all(r["sync_probe_max"] < 1e-3 for r in three)  # the check ran, on every step
    for a, b in zip(two, three, strict=True):
        assert a["reward_mean"] == b["reward_mean"]  # the same samples: the same weights served
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_async_one_step_off_policy_run(tmp_path, tiny_chat_model, ray_local):
    run_dir = tmp_path / "run"
    cfg = load_config(
        "configs/tiny_zero.yaml",
        [
            *SMALL,
            f"model.path={tiny_chat_model}",
            f"run_dir={run_dir}",
            "steps=3",
            "rollout.async_steps=1",
            "algo.tis_cap=2.0",
        ],
    )
    summary = train(cfg)
    assert summary["steps"] == 3
    rl = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    # step 1 samples with the weights it trains; later steps with weights one update old
    assert [r["staleness"] for r in rl] == [0, 1, 1]
    assert all("tis_weight" in r and r["sync_probe_max"] < 1e-3 for r in rl)


@pytest.mark.slow
def test_multi_turn_rollouts_run_through_the_loop(tmp_path, tiny_chat_model, ray_local):
    # the tiny model writes no tool calls: this checks the wiring (episodes -> masks -> learner)
    run_dir = tmp_path / "run"
    cfg = load_config(
        "configs/tiny_zero.yaml",
        [
            *SMALL,
            f"model.path={tiny_chat_model}",
            f"run_dir={run_dir}",
            "steps=1",
            "rollout.max_turns=2",
        ],
    )
    assert train(cfg)["steps"] == 1
    row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert row["turns_mean"] >= 1.0 and "tool_calls_mean" in row and "loss" in row


def test_contaminated_training_data_refuses_to_start(tmp_path):
    from rlcore.data.dataset import DataError
    from rlcore.eval import load_suite, suite_items

    item = next(i for i in suite_items(load_suite("tiny")) if i["benchmark"] == "aime24")
    planted = "  " + item["text"].upper().replace(",", " ,") + "  "  # case, spacing, punctuation
    train_file = tmp_path / "train.jsonl"
    rows = [{"id": "clean", "prompt": "12+7-3=?", "reference": {"answer": "16"}}]
    rows.append({"id": "planted", "prompt": planted, "reference": {"answer": "0"}})
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(
        "configs/tiny_zero.yaml",
        [f"data.train={train_file}", "data.decontam_against=tiny", f"run_dir={tmp_path / 'run'}"],
    )
    with pytest.raises(DataError, match="decontam_against=tiny: 1 training row.*planted"):
        train(cfg)


@pytest.mark.slow
def test_periodic_eval_logs_buckets_from_step_zero(tmp_path, tiny_chat_model, ray_local):
    run_dir = tmp_path / "run"
    cfg = load_config(
        "configs/tiny_zero.yaml",
        [
            *SMALL,
            f"model.path={tiny_chat_model}",
            f"run_dir={run_dir}",
            "steps=2",
            "eval.every=1",
            "eval.limit=4",
            "eval.n=2",
            "eval.k=[1,2]",
        ],
    )
    train(cfg)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    evals = [r for r in rows if r["stage"] == "eval"]
    assert [r["step"] for r in evals] == [0, 1, 2]
    assert (run_dir / "eval" / "periodic_baseline.json").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["trained_buckets"] == ["math"]  # the chain-sum rows' bucket, in the suite
    start, end = summary["buckets"]["math"]["start"], summary["buckets"]["math"]["end"]
    assert {"pass@1", "ci95", "pass@2", "truncated"} <= set(start) and set(start) == set(end)
    assert (run_dir / "eval" / "buckets.md").is_file() and (
        run_dir / "eval" / "buckets.png"
    ).is_file()
