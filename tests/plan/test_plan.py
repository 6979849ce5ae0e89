"""rlcore plan (rlcore/plan/): arithmetic on configs and config.json files only, no weights, no Ray.

Speeds are passed in (`CAL`), never measured; the node is a fixed 24 GiB machine, not this one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlcore.config import load_config, to_yaml
from rlcore.plan import Hardware, device_hardware, make_plan, suggest_fixes
from rlcore.plan.memory import (
    Shapes,
    activation_bytes,
    effective_zero_stage,
    learner_memory,
    logits_bytes,
)
from rlcore.plan.shapes import KNOWN, ModelShape, model_shape
from rlcore.plan.speed import Calibration

ROOT = Path(__file__).resolve().parents[2]
CAL = Calibration(3e11, 2e11, 1e10, "test")
NODE = Hardware("test node (24 GiB)", 24.0, 2)
SMOL = ModelShape("smollm2-135m-instruct", *KNOWN["smollm2-135m-instruct"])
TRAIN_CONFIGS = sorted(
    p for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith("eval_")
)
TOO_BIG = [
    "learner.micro_batch_size=256",
    "rollout.max_model_len=2048",
    "rollout.max_tokens=1920",
]


def smol(*overrides: str):
    return load_config(ROOT / "configs" / "smollm2_zero.yaml", list(overrides))


def static(cfg, rank: int = 0) -> float:
    m = learner_memory(cfg, SMOL, Shapes(128, 256), rank, critic=False, needs_ref=False)
    return m.terms["weights"] + m.terms["gradients"] + m.terms["optimizer"]


def test_smollm2_shape_matches_its_parameter_count():
    assert SMOL.params == 134_515_008  # SmolLM2-135M, tied embeddings
    assert model_shape("/data/models/Qwen2.5-7B").params == pytest.approx(7.6e9, rel=0.01)


def test_terms_add_up_per_actor_and_per_node():
    p = make_plan(smol(), NODE, CAL)
    assert {"learner0", "rollout0", "verifier0", "driver"} <= {a.name for a in p.actors}
    for a in p.actors:
        assert a.total == pytest.approx(sum(a.terms.values()))
        assert all(v >= 0 for v in a.terms.values())
    assert p.node_total == pytest.approx(sum(a.host_bound for a in p.actors))
    t = p.time
    assert t["step"] == pytest.approx(t["rollout"] + t["verify"] + t["learn"] + t["sync"])
    assert t["bound"] == max(("rollout", "verify", "learn", "sync"), key=lambda k: t[k])


def test_a_single_rank_runs_the_plain_engine():
    from rlcore.config import LearnerConfig

    def stage(zero: int, world: int, offload: bool) -> int:
        lc = LearnerConfig(zero_stage=zero, world_size=world, offload_optimizer=offload)
        return effective_zero_stage(lc, "float32")

    assert stage(2, 1, False) == 0 and stage(1, 1, False) == 0
    assert stage(2, 1, True) == 2 and stage(2, 2, False) == 2 and stage(3, 1, False) == 3


def tiny(*overrides: str):
    return load_config(ROOT / "configs" / "tiny_zero.yaml", list(overrides))


def test_the_engine_touches_its_steps_kv_and_the_fit_counts_the_reservation():
    from rlcore.plan.memory import GIB, cpu_kv_cache_bytes, engine_memory, kv_bytes_per_token
    from rlcore.plan.report import predicted_peaks

    cfg = tiny("rollout.engine=vllm")
    shape = model_shape(cfg.model.path)
    e = engine_memory(cfg, shape, Shapes(16, 80), 0, None)
    rows = cfg.rollout.prompts_per_step * cfg.rollout.n
    assert e.terms["kv cache"] == pytest.approx(rows * 80 * kv_bytes_per_token(shape, 4))
    # the whole cache, for the fit: one step's sequences (and one more) at max_model_len each
    budget = (rows + 1) * cfg.rollout.max_model_len * kv_bytes_per_token(shape, 4)
    assert budget < GIB and cpu_kv_cache_bytes(cfg, shape) == budget
    assert e.terms["kv cache"] + e.reserved == pytest.approx(budget)
    p = make_plan(cfg, NODE, CAL, prompt_tokens=16)
    engine = next(a for a in p.actors if a.name == "rollout0")
    assert predicted_peaks(p)["rollout0"] == pytest.approx(engine.total / 2**20, abs=0.1)
    assert p.node_total == pytest.approx(sum(a.host_total for a in p.actors) + engine.reserved)
    # a step that writes more than the cache touches all of it, which is at most 1 GiB
    big = engine_memory(smol("rollout.engine=vllm"), SMOL, Shapes(128, 2048), 0, None)
    assert big.terms["kv cache"] == GIB and big.reserved == 0.0


def test_the_kv_cache_is_the_configs_or_the_users_environment_s_when_set(monkeypatch):
    from rlcore.plan.memory import GIB, MIB, cpu_kv_cache_bytes

    cfg = tiny("rollout.engine=vllm", "rollout.kv_cache_mib=300")
    shape = model_shape(cfg.model.path)
    assert cpu_kv_cache_bytes(cfg, shape) == 300 * MIB
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")  # vLLM reads it over what it is passed
    assert cpu_kv_cache_bytes(cfg, shape) == 2 * GIB


def test_skipped_rows_shrink_the_learners_activations_not_its_bound():
    whole = "learner.micro_batch_size=128"  # the step's 128 rows in one micro-batch
    full = learner_memory(smol(whole), SMOL, Shapes(45, 109), 0, False, False).terms
    skip = learner_memory(
        smol(whole, "plan.skip_frac=0.75"), SMOL, Shapes(45, 109), 0, False, False
    )
    assert skip.terms["activations"] == pytest.approx(full["activations"] / 4, rel=0.01)
    assert skip.terms["weights"] == full["weights"]


def test_language_identification_costs_memory_in_every_pool_process():
    from rlcore.plan import heavy_verifiers
    from rlcore.plan.memory import VERIFIER_WORKER_MIB

    math_only, mixed = tiny("data.verifier=math"), tiny("data.verifier=[math,language]")
    assert not heavy_verifiers(math_only) and heavy_verifiers(mixed)

    def verifier(cfg) -> float:
        return next(a.total for a in make_plan(cfg, NODE, CAL).actors if a.name == "verifier0")

    extra = verifier(mixed) - verifier(math_only)
    assert extra == pytest.approx(VERIFIER_WORKER_MIB * 2**20 * mixed.verifier.workers)


def test_async_overlaps_the_rollout_with_learning_and_then_syncs():
    t = make_plan(smol("rollout.async_steps=1", "algo.tis_cap=2.0"), NODE, CAL).time
    assert t["step"] == pytest.approx(max(t["rollout"] + t["verify"], t["learn"]) + t["sync"])
    sync = make_plan(smol(), NODE, CAL).time  # on CPU each side gets half the cores
    assert t["learn"] > sync["learn"] and t["rollout"] > sync["rollout"]
    assert t["sync"] < sync["sync"]  # and the sync's threads no longer oversubscribe them


def test_old_logprobs_are_computed_only_when_the_update_needs_them():
    one = make_plan(smol(), NODE, CAL).time
    two = make_plan(smol("algo.minibatches=2"), NODE, CAL).time
    assert one["learn"] < two["learn"]  # several minibatches: a forward over the batch first


def test_zero3_over_two_ranks_halves_weights_gradients_and_optimizer():
    one = static(smol("learner.zero_stage=3", "learner.world_size=1"))
    two = smol("learner.zero_stage=3", "learner.world_size=2")
    assert static(two, 0) == pytest.approx(one / 2)
    assert static(two, 1) == pytest.approx(one / 2)


def test_lora_shrinks_gradients_and_optimizer():
    full = learner_memory(smol(), SMOL, Shapes(128, 256), 0, False, False).terms
    lora = learner_memory(smol("learner.lora_rank=16"), SMOL, Shapes(128, 256), 0, False, False)
    assert lora.terms["gradients"] < full["gradients"] / 20
    assert lora.terms["optimizer"] < full["optimizer"] / 20
    assert lora.terms["weights"] > full["weights"]  # the base stays, the adapters are added


def test_gradient_checkpointing_shrinks_activations():
    assert activation_bytes(SMOL, 4096, 4, True) < activation_bytes(SMOL, 4096, 4, False) / 5


def test_chunked_logits_are_smaller_than_full_vocabulary():
    full = logits_bytes(SMOL, 4096, 4, "reference", 0, gpu=False)
    chunked = logits_bytes(SMOL, 4096, 4, "chunked", 0, gpu=False)
    assert full == 4096 * SMOL.vocab * 16
    assert chunked < full / 10
    # ZeRO-3 has no hidden-state path: the model's logits exist, still less than the reference
    assert chunked < logits_bytes(SMOL, 4096, 4, "chunked", 3, gpu=False) < full


def test_too_big_is_refused_with_fixes_the_planner_accepts():
    cfg = smol(*TOO_BIG)
    p = make_plan(cfg, NODE, CAL)
    assert not p.fits and p.worst == "learner0"
    fixes = suggest_fixes(cfg, p, CAL)
    assert fixes and fixes[0] == "learner.micro_batch_size=4"
    for fix in fixes:  # every suggestion validates through the schema and fits
        fixed = smol(*TOO_BIG, *fix.split())
        assert make_plan(fixed, NODE, CAL).fits, fix


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=[p.stem for p in TRAIN_CONFIGS])
def test_every_config_plans(path):
    cfg = load_config(path)
    p = make_plan(cfg, NODE, CAL)
    assert p.time["step"] > 0 and p.node_total > 0
    if path.stem.startswith(("tiny_", "smollm2_")):  # the CPU configs run on a 24 GiB machine
        assert p.fits, p.over
    if cfg.gpus:  # GPU configs on their own nodes
        on_gpu = make_plan(cfg, device_hardware("H100"), CAL)
        assert on_gpu.fits, on_gpu.over


def _cli(monkeypatch, tmp_path, *argv: str) -> tuple[int, dict]:
    from rlcore.launch.cli import main

    import rlcore.plan

    monkeypatch.setattr(rlcore.plan, "local_hardware", lambda: NODE)
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"gemm_flops": 3e11, "bf16_flops": 2e11, "mem_bw": 1e10}))
    out = tmp_path / "plan.json"
    rc = main(["plan", *argv, "--calibration", str(cal), "--json", str(out)])
    return rc, json.loads(out.read_text()) if out.exists() else {}


def test_cli_exits_0_when_it_fits_and_2_with_fixes_when_not(monkeypatch, tmp_path, capsys):
    rc, got = _cli(monkeypatch, tmp_path, str(ROOT / "configs" / "tiny_zero.yaml"))
    assert rc == 0 and got["fits"] and "learner0" in got["actors"]
    rc, got = _cli(monkeypatch, tmp_path, str(ROOT / "configs" / "smollm2_zero.yaml"), *TOO_BIG)
    assert rc == 2 and not got["fits"] and "learner.micro_batch_size=4" in got["fixes"]
    assert "does NOT fit" in capsys.readouterr().out


def test_cli_device_and_a_bad_model(monkeypatch, tmp_path):
    rc, got = _cli(
        monkeypatch, tmp_path, str(ROOT / "configs" / "gpu_ppo_qwen7b.yaml"), "--device", "H200"
    )
    assert rc == 0 and got["actors"]["learner0"]["on_gpu"]
    rc, _ = _cli(monkeypatch, tmp_path, "model.path=/nowhere/unknown-model")
    assert rc == 1


def test_compare_reads_a_run_directory(monkeypatch, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config(ROOT / "configs" / "tiny_zero.yaml")
    (run / "config.yaml").write_text(to_yaml(cfg))
    peaks = {"learner0": 900.0, "rollout0": 3000.0, "verifier0": 560.0, "driver": 530.0}
    (run / "summary.json").write_text(json.dumps({"peak_pss_mib": peaks}))
    steps = [
        {"step": s, "stage": "rl", "time_rollout": 1.0 + s, "time_verify": 0.1, "time_learn": 0.5,
         "time_sync": 0.05, "time_step": 2.0, "response_len": 16.0, "learn_skipped_frac": 0.5}
        for s in (1, 2, 3)
    ]  # fmt: skip
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in steps))
    rc, got = _cli(monkeypatch, tmp_path, "--compare", str(run))
    assert rc == 0
    m = got["measured"]
    assert m["time"]["rollout"] == 3.5  # the median of steps 2 and 3: the first is left out
    assert m["peak_pss_mib"]["learner0"] == 900.0 and m["steps"] == 3


def test_the_train_check_refuses_naming_the_actor_and_the_fixes(monkeypatch):
    import rlcore.plan
    from rlcore.plan.report import predicted_peaks, refusal

    monkeypatch.setattr(rlcore.plan, "local_hardware", lambda: NODE)
    p = rlcore.plan.check_fits(smol(*TOO_BIG), 64, 1)
    assert p is not None and not p.fits
    message = refusal(p, suggest_fixes(smol(*TOO_BIG), p, CAL))
    assert (
        "learner0 is predicted at" in message and "has 24.0 GiB (refused above 1.1 x)" in message
    )  # 1.1 x 24 GiB
    assert "learner.micro_batch_size=4" in message and "plan.force=true" in message
    fits = rlcore.plan.check_fits(smol(), 64, 1)
    assert fits is not None and fits.fits
    assert {"learner0", "rollout0", "model_verifier0", "driver", "total"} <= set(
        predicted_peaks(fits)
    )
    assert rlcore.plan.check_fits(smol("ray_address=ray://head:10001"), 64, 1) is None  # a cluster


def test_the_end_of_a_run_names_its_bottleneck_busy_actors_and_peaks_against_the_plan():
    from rlcore.plan.report import live, live_line

    def step(rollout: float, learn: float) -> dict:
        t = {"rollout": rollout, "verify": 0.5, "learn": learn, "sync": 1.0}
        return {
            "stage": "rl",
            **{f"time_{k}": v for k, v in t.items()},
            "time_step": sum(t.values()),
        }

    # the first step (compiling, warming caches) is left out of the medians
    rows = [
        {"stage": "eval"},
        step(50.0, 90.0),
        step(8.0, 20.0),
        step(10.0, 22.0),
        step(12.0, 24.0),
    ]
    got = live(rows, {"learner0": 900.0, "rollout0": 2000.0}, {"learner0": 1000.0, "rollout0": 0.0})
    assert got["bottleneck"] == "learn" and got["phase_s"]["learn"] == 22.0
    assert got["busy_frac"]["rollout"] == pytest.approx(10.0 / 33.5, abs=1e-3)
    assert got["busy_frac"]["learner"] == pytest.approx(23.0 / 33.5, abs=1e-3)
    assert got["peak_over_predicted"] == {"learner0": 0.9}  # no prediction: no ratio
    assert "bound by learn" in live_line(got)
    assert live([{"stage": "sft"}], {}, {}) == {} and "no RL step" in live_line({})
