"""In-training evaluation through generate/score functions, and the retention alarm."""

import json

import pytest
from rlcore.verifiers import build

from rlcore.config import DataConfig, RolloutConfig
from rlcore.eval.periodic import PeriodicEval, retention_alarms, suite_config
from rlcore.eval.suite import load_suite
from rlcore.rollout.engine import Completion
from rlcore.sampling import Local, Sampler

ROWS = [
    {"id": "a", "prompt": "1+1=?", "reference": {"answer": "2"}},
    {"id": "b", "prompt": "2+2=?", "reference": {"answer": "4"}},
    {"id": "c", "prompt": "3+3=?", "reference": {"answer": "6"}},
    {"id": "d", "prompt": "4+4=?", "reference": {"answer": "8"}},
]


def test_retention_alarm_only_beyond_the_margin():
    buckets = {"math": {"metrics": {"mean@n": 0.50}}, "code": {"metrics": {"mean@n": 0.29}}}
    base = {"math": 0.54, "code": 0.40, "gone": 0.9}
    alarms = retention_alarms(buckets, base, margin=0.05, metric="mean@n")
    assert len(alarms) == 1 and "'code'" in alarms[0] and "0.400" in alarms[0]
    assert retention_alarms(buckets, None, 0.05, "mean@n") == []


@pytest.fixture
def evaluator(tmp_path, tiny_chat_model):
    from transformers import AutoTokenizer

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cfg = load_suite(
        None,
        [
            "name=t",
            "k=[1,2]",
            "bootstrap=20",
            "margin=0.1",
            "sampling.max_tokens=16",
            f"benchmarks=[{{name: arith, loader: jsonl, args: {{path: {rows}}}, bucket: math}}]",
        ],
    )
    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    return PeriodicEval.build(
        cfg, tok, [tok.eos_token_id], window=256, out_dir=tmp_path / "ev"
    ), tok


def fake_cluster(tok, right: int):
    """generate: the first `right` problems answered correctly (both samples), the rest wrong;
    score: the row's verifier, in this process, as Cluster.score returns (dicts)."""
    answers = {}

    def generate(prompt_ids, params):
        out = []
        for i, _ in enumerate(prompt_ids):
            ans = ROWS[i]["reference"]["answer"] if i < right else "0"
            ids = tok(f"so \\boxed{{{ans}}}", add_special_tokens=False)["input_ids"]
            out.append([Completion(ids, [0.0] * len(ids), "stop") for _ in range(params.n)])
        answers["n"] = params.n
        return out

    def score(items):
        return [build(spec).verify(sample).to_dict() for spec, sample in items]

    return generate, score


def fake_sampler(tok, right: int):
    return as_sampler(tok, *fake_cluster(tok, right))


def as_sampler(tok, generate, score):
    """The run's sampling service over test doubles of the engines and verifier actors."""
    return Sampler(Local(generate, score), tok, DataConfig(), RolloutConfig())


def test_periodic_eval_metrics_baseline_and_alarm(evaluator):
    ev, tok = evaluator
    assert ev.specs == ["math"] * 4
    metrics, alarms = ev(fake_sampler(tok, right=3), step=0)
    assert metrics["math/pass@1"] == pytest.approx(0.75)
    assert metrics["arith/maj@2"] == pytest.approx(0.75)
    assert alarms == [] and ev.baseline == {"math": 0.75}
    metrics, alarms = ev(fake_sampler(tok, right=3), step=5)
    assert alarms == []
    metrics, alarms = ev(fake_sampler(tok, right=1), step=10)  # 0.75 -> 0.25: beyond 0.1
    assert metrics["math/mean@n"] == pytest.approx(0.25)
    assert len(alarms) == 1 and "math" in alarms[0]
    # the baseline survives a restart (resume) and every evaluation is logged
    again = PeriodicEval(ev.suite, ev.out_dir)
    assert again.baseline == {"math": 0.75}
    logged = [json.loads(x) for x in (ev.out_dir / "periodic.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [0, 5, 10] and logged[-1]["alarms"] == alarms
    # the run's capability table: first vs last evaluation, also after a restart
    out = again.finish(trained=["math", "tool"])
    assert out["trained_buckets"] == ["math"]
    math = out["buckets"]["math"]
    assert (math["start"]["pass@1"], math["end"]["pass@1"]) == (0.75, 0.25)
    assert (math["start_step"], math["end_step"]) == (0, 10)
    assert "| math | yes | 0.750" in (ev.out_dir / "buckets.md").read_text()
    assert (ev.out_dir / "buckets.png").stat().st_size > 0


def test_from_the_trainers_eval_section(tiny_chat_model):
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    section = SimpleNamespace(
        suite="embedded", n=2, k=[1, 2], limit=3, max_tokens=16, margin=0.1, metric="pass@1"
    )
    ev = PeriodicEval.build(suite_config(section), tok, [tok.eos_token_id], window=256)
    cfg = ev.suite.cfg
    assert (cfg.n, cfg.k, cfg.limit, cfg.margin, cfg.alarm_metric) == (2, [1, 2], 3, 0.1, "pass@1")
    assert cfg.sampling.max_tokens == 16 and len(ev.specs) == 3


def test_against_start_gives_every_later_answer_the_first_evaluations_answer(tmp_path, evaluator):
    """`against: start`: a verifier sees the run's first answer to the same prompt as
    reference["response"] (what a pairwise judge compares with), also after a restart."""
    ev, tok = evaluator
    start = PeriodicEval.build(
        load_suite(None, ["name=s", *[f"{k}={v}" for k, v in _against_start(tmp_path).items()]]),
        tok,
        [tok.eos_token_id],
        window=256,
        out_dir=tmp_path / "ev2",
    )
    seen: list[list[dict]] = []

    def recording(score):
        def wrapped(items):
            seen.append([dict(s.reference) | {"_response": s.response} for _, s in items])
            return score(items)

        return wrapped

    generate, score = fake_cluster(tok, right=3)
    start(as_sampler(tok, generate, recording(score)), step=0)
    first = {r["_response"] for r in seen[0]}
    assert all(r["response"] == r["_response"] for r in seen[0])  # judged against itself
    generate, score = fake_cluster(tok, right=1)  # later answers differ
    PeriodicEval(start.suite, start.out_dir)(
        as_sampler(tok, generate, recording(score)), step=5
    )  # a restart
    later = seen[1]
    assert any(r["_response"] != r["response"] for r in later)
    assert {r["response"] for r in later} <= first  # still the step-0 answers
    assert json.loads((tmp_path / "ev2" / "start_answers.json").read_text())["arith"]


def _against_start(tmp_path) -> dict[str, str]:
    rows = tmp_path / "rows.jsonl"
    bench = f"{{name: arith, loader: jsonl, args: {{path: {rows}}}, bucket: math, against: start}}"
    return {"k": "[1]", "bootstrap": "20", "sampling.max_tokens": "16", "benchmarks": f"[{bench}]"}


def test_a_benchmark_with_every_runs_at_the_ends_and_its_own_cadence(tmp_path, tiny_chat_model):
    from transformers import AutoTokenizer

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    bench = f"loader: jsonl, args: {{path: {rows}}}"
    cfg = load_suite(
        None,
        [
            "name=t",
            "bootstrap=0",
            "sampling.max_tokens=16",
            f"benchmarks=[{{name: trained, {bench}, bucket: math}}, "
            f"{{name: costly, {bench}, bucket: other, every: 10}}]",
        ],
    )
    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    ev = PeriodicEval.build(cfg, tok, [tok.eos_token_id], window=256, out_dir=tmp_path / "ev")
    ran = {}
    for step, final in [(0, False), (5, False), (10, False), (15, False), (17, True)]:
        metrics, _ = ev(fake_sampler(tok, right=2), step=step, final=final)
        ran[step] = sorted(k.split("/")[0] for k in metrics if k.endswith("/pass@1"))
    assert ran[0] == ran[10] == ran[17] == ["costly", "math", "other", "trained"]
    assert ran[5] == ran[15] == ["math", "trained"]
    # the bucket table still compares first and last evaluation for both buckets
    out = ev.finish(trained=["math"])
    assert set(out["buckets"]) == {"math", "other"}
    # the summary's curve: the trained bucket at every evaluation, the costly one at its own
    assert [p[0] for p in out["curve"]["math"]] == [0, 5, 10, 15, 17]
    assert [p[0] for p in out["curve"]["other"]] == [0, 10, 17]
    assert out["curve"]["math"][0][1] == pytest.approx(0.5)
