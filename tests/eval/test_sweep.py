"""Cached sweeps with a tiny model through the transformers engine: a rerun samples nothing, a larger
n samples only the difference, a new verifier only re-verifies, a run directory is swept."""

import json
import logging
import shutil
from pathlib import Path

import pytest

from rlcore.eval.suite import load_suite
from rlcore.eval.sweep import run_eval

ROWS = [
    {"id": "p1", "prompt": "1+1=?", "reference": {"answer": "2"}},
    {"id": "p2", "prompt": "2+5=?", "reference": {"answer": "7"}},
    {"id": "p3", "prompt": "9-3=?", "reference": {"answer": "6"}},
]


@pytest.fixture
def suite(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: t\nengine: hf\nverifier_workers: 1\nbootstrap: 50\n"
        "sampling: {temperature: 1.0, max_tokens: 6}\n"
        f"benchmarks:\n  - {{name: arith, loader: jsonl, args: {{path: {rows}}}, bucket: math}}\n"
    )
    return str(path)


def sweep(suite, model, out, *overrides):
    cfg = load_suite(suite, [f"out_dir={out}", *overrides])
    return run_eval(cfg, [model])["results"]


def test_reruns_cost_only_what_changed(suite, tiny_chat_model, tmp_path, caplog):
    out = tmp_path / "out"
    caplog.set_level(logging.INFO, logger="rlcore")
    (r,) = sweep(suite, tiny_chat_model, out, "k=[1,2]")
    assert r["counts"] == {"drawn": 6, "reused": 0, "verified": 6, "verdicts_reused": 0}
    first = json.loads((out / "results.json").read_text())
    problems = first["benchmarks"]["arith"]["problems"]
    assert [(p["id"], p["n"]) for p in problems] == [("p1", 2), ("p2", 2), ("p3", 2)]
    assert set(first["benchmarks"]["arith"]["metrics"]) >= {"pass@1", "pass@2", "maj@2", "mean@n"}

    caplog.clear()
    (r,) = sweep(suite, tiny_chat_model, out, "k=[1,2]")
    assert r["counts"] == {"drawn": 0, "reused": 6, "verified": 0, "verdicts_reused": 6}
    assert "samples drawn 0, reused 6; verdicts computed 0, reused 6" in caplog.text
    again = json.loads((out / "results.json").read_text())["benchmarks"]["arith"]
    for key in ("problems", "metrics", "ci"):
        assert again[key] == first["benchmarks"]["arith"][key]

    (r,) = sweep(suite, tiny_chat_model, out, "k=[1,2,4]")  # n follows max k: 2 more each
    assert r["counts"]["drawn"] == 6 and r["counts"]["reused"] == 6
    assert r["benchmarks"]["arith"]["problems"][0]["n"] == 4

    (r,) = sweep(suite, tiny_chat_model, out, "k=[1]", "n=3")  # a smaller n reuses the first 3
    assert r["counts"]["drawn"] == 0 and r["counts"]["verified"] == 0

    weighted = "benchmarks.arith.verifier=[{name: math, weight: 1.0}, {name: format, weight: 0.5}]"
    (r,) = sweep(suite, tiny_chat_model, out, "k=[1,2,4]", weighted)
    assert r["counts"]["drawn"] == 0 and r["counts"]["verified"] == 12

    # an interrupted append (torn last line) costs nothing but that line
    cache = next((out / "cache").glob("*/arith.samples.jsonl"))
    with cache.open("a") as f:
        f.write('{"key": "x", "j": 0, "ids": [1, 2')
    (r,) = sweep(suite, tiny_chat_model, out, "k=[1,2,4]", "n=5")
    assert r["counts"]["drawn"] == 3


def test_run_directory_sweep_table_and_plots(suite, tiny_chat_model, tmp_path):
    run = tmp_path / "run"
    for step in (2, 4):
        ckpt = run / "checkpoints" / f"step_{step:06d}"
        shutil.copytree(tiny_chat_model, ckpt / "policy")
        (ckpt / "trainer_state.json").write_text(json.dumps({"step": step}))
    (run / "checkpoints" / ".step_000006.tmp").mkdir()  # an unfinished checkpoint
    (run / "config.yaml").write_text(
        f"model:\n  path: {tiny_chat_model}\ndata:\n  prompt_format: chat\n"
    )
    cfg = load_suite(suite, ["k=[1,2]", "every=4"])
    out = run_eval(cfg, [str(run)])
    labels = [r["label"] for r in out["results"]]
    assert labels == ["start", "step_000004"]  # the start, then every 4th (and the last)
    assert [r["step"] for r in out["results"]] == [0, 4]
    # the same weights as the starting model: every sample is reused (content-hashed key)
    assert out["results"][1]["counts"]["drawn"] == 0
    ev = run / "eval"
    assert (ev / "step_000004" / "results.json").is_file()
    assert (ev / "passk.png").stat().st_size > 0 and (ev / "buckets.png").stat().st_size > 0
    assert "step_000004" in (ev / "sweep.md").read_text()

    # two runs in one sweep: labels (and result folders) name the run
    shutil.copytree(run, tmp_path / "run2", ignore=shutil.ignore_patterns("eval"))
    both = run_eval(load_suite(suite, ["k=[1,2]", "every=4", f"out_dir={tmp_path / 'both'}"]),
                    [str(run), str(tmp_path / "run2")])  # fmt: skip
    assert [r["label"] for r in both["results"]][1::2] == ["run/step_000004", "run2/step_000004"]
    assert (tmp_path / "both" / "run2" / "step_000004" / "results.json").is_file()
    assert sum(r["counts"]["drawn"] for r in both["results"]) == 6  # one model, sampled once


def test_a_cold_start_runs_start_and_sft_checkpoint_are_two_targets(tiny_chat_model, tmp_path):
    # after a cold start, checkpoints/step_000000 holds the SFT model, not the starting one
    from rlcore.eval.targets import resolve_targets

    run = tmp_path / "run"
    for step in (0, 3):
        ckpt = run / "checkpoints" / f"step_{step:06d}"
        shutil.copytree(tiny_chat_model, ckpt / "policy")
        (ckpt / "trainer_state.json").write_text(json.dumps({"step": step}))
    (run / "config.yaml").write_text(f"model:\n  path: {tiny_chat_model}\n")
    targets = resolve_targets(str(run))
    assert [(t.label, t.step) for t in targets] == [
        ("start", 0),
        ("step_000000", 0),
        ("step_000003", 3),
    ]
    assert targets[0].model_path == str(Path(tiny_chat_model).resolve())
    assert targets[1].model_path == str(run / "checkpoints" / "step_000000" / "policy")
