"""Model-based verifier workers as their own actor group, and verification overlapping generation.

Real parts: a local Ray cluster, the rule-based `math` verifier in its process pool, the
`reward_model` verifier on a tiny sequence classifier built by the `tiny_reward_model` fixture, vLLM
on CPU and DeepSpeed for the runs.
"""

import json
import time
from pathlib import Path

import pytest
from rlcore.verifiers.base import Sample
from rlcore.verifiers.build import Scorer

from rlcore.config import load_config
from rlcore.placement import Placement
from rlcore.trainer import train
from rlcore.verifier_actors import VerifierActors
from tests.test_train_e2e import SMALL

MIXED = [{"name": "math", "weight": 1.0}, {"name": "reward_model", "weight": 0.5}]
RESPONSES = ["\\boxed{12}", "it is 12", "\\boxed{7}", "", "12 12 \\boxed{12}", "what?"]


def _items() -> list[tuple[object, Sample]]:
    items = []
    for i, response in enumerate(RESPONSES * 3):
        spec = (MIXED, "math", "reward_model")[i % 3]
        sample = Sample(prompt="3+4+5=?", response=response, reference={"answer": "12"})
        items.append((spec, sample))
    return items


def _scoring(rm: str, tag: str) -> tuple[VerifierActors, dict]:
    options = {"reward_model": {"model_path": rm}}
    cfg = load_config(None, ["verifier.workers=1", "verifier.num_actors=2"])
    specs = [MIXED, "math", "reward_model"]
    placement = Placement.create(cfg, needs_critic=False, model_verifiers=1)
    return VerifierActors.start(cfg, specs, placement, tag, options), options


def _close(scoring: VerifierActors) -> None:
    import ray

    scoring.close()
    for a in scoring.actors:
        ray.kill(a, no_restart=True)


@pytest.mark.slow
def test_model_based_verifiers_score_in_their_own_group_as_the_in_process_scorer_does(
    ray_local, tiny_reward_model
):
    import ray

    scoring, options = _scoring(tiny_reward_model, "grp")
    try:
        names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
        assert {"verifier-0-grp", "verifier-1-grp", "model-verifier-0-grp"} <= names
        assert scoring.model_names == {"reward_model"} and len(scoring.model) == 1
        got = scoring.score(_items())
    finally:
        _close(scoring)
    configs = {"math": {}, **options}
    with Scorer(["math", "reward_model"], configs, workers=1) as local:
        want = [r.to_dict() for r in local.score(_items())]
    assert len(got) == len(want) == 18
    for g, w in zip(got, want, strict=True):
        assert g["reward"] == pytest.approx(w["reward"], abs=1e-5)
        assert g["correct"] == w["correct"] and g["error"] == w["error"]
    mixed = got[0]["details"]["components"]  # a row of both kinds: one weighted composite
    assert set(mixed) == {"math", "reward_model"}
    rm = mixed["reward_model"]["reward"]
    assert got[0]["reward"] == pytest.approx(1.0 * mixed["math"]["reward"] + 0.5 * rm)


@pytest.mark.slow
def test_a_model_verifier_killed_during_a_batch_is_restarted_and_scores_its_part_again(
    ray_local, tiny_reward_model
):
    import ray

    scoring, _ = _scoring(tiny_reward_model, "kill")
    try:
        before = scoring.score(_items())
        # The tiny model scores a batch in milliseconds, so a kill sent after it was submitted
        # could land after it finished. A long batch queued ahead keeps the actor busy: the kill
        # lands mid-batch, and the batch under test, queued behind it, dies with the actor.
        scoring.submit(_items() * 300)
        pending = scoring.submit(_items())
        ray.kill(scoring.model.actors[0], no_restart=False)  # Ray restarts it
        after = scoring.collect(pending)
        assert scoring.restarts == 1
    finally:
        _close(scoring)
    assert [r["reward"] for r in after] == pytest.approx([r["reward"] for r in before], abs=1e-5)
    assert all(r["error"] is None for r in after)


@pytest.mark.slow
def test_a_verifier_restarted_while_idle_is_counted_though_no_call_failed(
    ray_local, tiny_reward_model
):
    """Ray may restart a killed actor before its next call: no call fails, the restart still counts."""
    import ray

    from rlcore.verifier_actors import wait_ready

    scoring, _ = _scoring(tiny_reward_model, "idle")
    try:
        before = scoring.score(_items())
        actor = scoring.model.actors[0]
        old = ray.get(actor.ready.remote())
        ray.kill(actor, no_restart=False)
        while wait_ready(actor, 60) == old:  # back, in a new process, before the next call
            time.sleep(0.2)
        after = scoring.score(_items())
        assert scoring.restarts == 1
        scoring.score(_items())
        assert scoring.restarts == 1  # the same process again is no restart
    finally:
        _close(scoring)
    assert [r["reward"] for r in after] == pytest.approx([r["reward"] for r in before], abs=1e-5)


def _run(model: str, run_dir: Path, extra: list[str], progress=None) -> list[dict]:
    cfg = load_config(
        "configs/tiny_zero.yaml",
        [
            *SMALL,  # its SFT keys do nothing here: tiny_zero has no SFT stage
            f"model.path={model}",
            f"run_dir={run_dir}",
            *extra,
        ],
    )
    train(cfg, progress=progress)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    return [r for r in rows if r["stage"] == "rl"]


@pytest.mark.slow
def test_a_run_with_rule_and_model_verifiers_survives_killing_the_model_actor(
    tmp_path, tiny_chat_model, tiny_reward_model, ray_local
):
    """3 steps; rows scored by math + reward_model; the model-based actor is killed after step 1
    (Ray restarts it) and the step's samples are scored again, none lost."""
    import ray

    seen: dict[str, list[str]] = {}

    def kill_model_verifier(stage, step, total, metrics):
        if stage == "rl" and step == 1 and not seen:
            names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
            seen["names"] = names
            name = next(n for n in names if n.startswith("model-verifier-0-"))
            ray.kill(ray.get_actor(name), no_restart=False)

    spec = json.dumps(MIXED).replace('"', "")
    rl = _run(
        tiny_chat_model,
        tmp_path / "run",
        [
            "steps=3",
            f"data.verifier={spec}",
            f"verifier.options={{reward_model: {{model_path: {tiny_reward_model}}}}}",
        ],
        kill_model_verifier,
    )
    groups = {n.rsplit("-", 1)[0] for n in seen["names"] if "verifier-" in n}
    assert groups == {"verifier-0", "model-verifier-0"}  # two actor groups
    assert [r["verifier_restarts"] for r in rl] == [0, 1, 1]
    assert all(r["groups_kept"] == 4 and r["verify_errors"] == 0 for r in rl)
    assert all("reward/math" in r and "reward/reward_model" in r for r in rl)


@pytest.mark.slow
def test_scoring_engine_parts_as_they_return_changes_timing_not_results(
    tmp_path, tiny_chat_model, ray_local
):
    """verifier.overlap with 2 parts per engine against scoring the whole batch afterwards: every
    step's samples, rewards and updates are the same (seeds follow the prompt, not the part)."""
    same = ("reward_mean", "accuracy", "response_len", "loss", "grad_norm")
    on = _run(tiny_chat_model, tmp_path / "on", ["steps=2", "rollout.parts_per_engine=2"])
    off = _run(tiny_chat_model, tmp_path / "off", ["steps=2", "verifier.overlap=false"])
    for a, b in zip(on, off, strict=True):
        assert {k: a[k] for k in same} == pytest.approx({k: b[k] for k in same}, rel=1e-6)


@pytest.mark.slow
def test_a_runs_chat_bucket_is_judged_against_the_start_by_a_judge_in_the_model_actor(
    tmp_path, tiny_chat_model, ray_local
):
    """eval.suite with an `against: start` benchmark scored by the `judge` verifier (SmolLM2,
    pairwise, in the model-based verifier actor): step 0 is judged against itself, step 1 against
    step 0's answers, and the bucket is in the run's retention table."""
    from rlcore.models.smollm2 import smollm2_path

    try:
        smollm2_path()  # converted once, then cached
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"SmolLM2 is not installed: {e}")
    suite = tmp_path / "judged.yaml"
    suite.write_text(
        "name: judged\nk: [1]\nsampling: {temperature: 0.0, max_tokens: 12}\n"
        "verifier_options:\n"
        "  judge: {model_path: smollm2-135m-instruct, mode: pairwise, threshold: 0.5, "
        "max_tokens: 8, max_model_len: 1024}\n"
        "benchmarks:\n"
        "  - {name: chat_vs_start, loader: chat, limit: 3, bucket: chat_judge, verifier: judge, "
        "against: start}\n"
    )
    run_dir = tmp_path / "run"
    _run(tiny_chat_model, run_dir, ["steps=1", "eval.every=1", f"eval.suite={suite}"])
    logged = [json.loads(x) for x in (run_dir / "eval" / "periodic.jsonl").open()]
    assert [r["step"] for r in logged] == [0, 1]
    for r in logged:
        problems = r["benchmarks"]["chat_vs_start"]["problems"]
        assert len(problems) == 3 and all(len(p["rewards"]) == 1 for p in problems)
    start = json.loads((run_dir / "eval" / "start_answers.json").read_text())
    assert len(start["chat_vs_start"]) == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "chat_judge" in summary["buckets"]
