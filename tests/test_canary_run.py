"""Canaries in a real run (rlcore/canaries.py): a plugin verifier that starts rewarding everything
at step 3 is caught at the next check; `warn` logs the flipped canary and goes on, `stop` stops
with an error naming it, and a resumed run compares with the verdicts of the original start."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rlcore.verifiers import Result, Sample, Verifier, VerifierConfig

from rlcore.config import ConfigError, load_config
from rlcore.trainer import RunFailed, train
from tests.test_train_e2e import SMALL

LIAR = "tests.test_canary_run:TurncoatVerifier"  # importable where Ray runs the actor


@dataclass(frozen=True)
class TurncoatConfig(VerifierConfig):
    lie_file: str = ""  # once this file exists, every answer is right


class TurncoatVerifier(Verifier):
    """Exact match with the reference answer, until `lie_file` appears: then everything passes."""

    name = "turncoat"
    config_cls = TurncoatConfig

    def verify(self, sample: Sample) -> Result:
        if Path(self.config.lie_file).exists():
            return Result(reward=1.0, correct=True)
        ok = sample.response.strip() == str(sample.reference.get("answer"))
        return Result(reward=float(ok), correct=ok)


def _config(tmp_path: Path) -> tuple[Path, Path]:
    lie = tmp_path / "lie"
    canaries = tmp_path / "canaries.jsonl"
    rows = [
        {"verifier": LIAR, "response": "7", "reference": {"answer": "7"}, "expect": "pass"},
        {"verifier": LIAR, "response": "8", "reference": {"answer": "7"}, "expect": "fail",
         "why": "a wrong answer"},
    ]  # fmt: skip
    canaries.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = yaml.safe_load(Path("configs/tiny_zero.yaml").read_text())
    cfg["data"]["verifier"] = [{"name": "math", "weight": 1.0}, {"name": LIAR, "weight": 0.1}]
    cfg["verifier"] = {
        "options": {LIAR: {"lie_file": str(lie)}},
        "canaries": str(canaries),
        "canary_every": 1,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, lie


@pytest.mark.slow
def test_a_verifier_that_starts_lying_is_caught_by_its_canaries(
    tmp_path, tiny_chat_model, ray_local, caplog
):
    path, lie = _config(tmp_path)
    run_dir = tmp_path / "run"
    overrides = [*SMALL, f"model.path={tiny_chat_model}", f"run_dir={run_dir}", "steps=3"]

    def lie_after_step_2(stage, step, total, metrics):
        if stage == "rl" and step == 2:
            lie.touch()

    train(load_config(path, overrides), progress=lie_after_step_2)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").open()]
    flips = [r[f"canary/{LIAR}/flips"] for r in rows if r.get("stage") == "rl"]
    assert flips == [0.0, 0.0, 1.0]  # the wrong answer passes from step 3 on
    assert "canary math/" not in caplog.text  # the built-in math canaries held throughout
    assert f"canary {path.parent / 'canaries.jsonl'}:2 (a wrong answer): fail at the start" in (
        caplog.text
    )
    # resumed with canary_action=stop: compared with the original start, step 4 stops the run
    more = [*overrides[:-1], "steps=4", f"resume={run_dir}", "verifier.canary_action=stop"]
    with pytest.raises(RunFailed, match=r"step 4: 1 canary verdict\(s\) changed.*canaries.jsonl:2"):
        train(load_config(path, more))


def test_a_canary_for_a_verifier_the_run_does_not_use_is_refused_before_anything_starts(
    tmp_path, tiny_chat_model
):
    path, _ = _config(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"verifier": "code", "response": "x", "expect": "pass"}) + "\n")
    run_dir = tmp_path / "run"
    cfg = load_config(
        path, [*SMALL, f"model.path={tiny_chat_model}", f"run_dir={run_dir}",
               f"verifier.canaries={bad}"]
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"verifier.canaries: .*bad.jsonl:1: verifier \['code'\]"):
        train(cfg)
    assert not run_dir.exists()


def test_the_hacking_alarm_needs_reward_up_and_held_out_down_over_the_window():
    from rlcore.canaries import hacking_alarm, top_rewarded

    def h(step, reward, acc):
        return {"step": step, "reward": reward, "buckets": {"reasoning": acc, "chat": 0.5}}

    rising = [h(0, 0.2, 0.40), h(10, 0.3, 0.38), h(20, 0.5, 0.30)]
    alarm = hacking_alarm(rising, window=3, margin=0.05)
    assert alarm is not None and "reasoning 0.400 -> 0.300" in alarm and "chat" not in alarm
    assert hacking_alarm(rising[:2], window=3, margin=0.05) is None  # not enough evaluations
    learning = [h(0, 0.2, 0.40), h(10, 0.3, 0.45), h(20, 0.5, 0.50)]
    assert hacking_alarm(learning, window=3, margin=0.05) is None  # both rise: learning
    flat = [h(0, 0.5, 0.40), h(10, 0.5, 0.35), h(20, 0.52, 0.30)]
    assert (
        hacking_alarm(flat, window=3, margin=0.05) is None
    )  # held-out falls, reward does not rise
    best = top_rewarded([{"reward": 0.1, "response": "a"}, {"reward": 0.9, "response": "b"}], k=1)
    assert best == ["reward 0.9: 'b'"]


def test_a_verifier_under_a_name_of_its_own_gets_its_class_canaries():
    from rlcore.canaries import CanaryWatch

    cfg = load_config(
        "configs/smollm2_zero.yaml", ["verifier.canary_every=5"]
    )  # `answer` is rlcore.verifiers.math:MathVerifier with an answer_pattern
    watch = CanaryWatch.load(cfg, ["answer", "tool_call"])
    ids = {c["id"] for c in watch.items}
    assert "answer:math/prompt_copy" in ids and "tool_call/unclosed" in ids
    assert {c["verifier"] for c in watch.items} == {"answer", "tool_call"}
