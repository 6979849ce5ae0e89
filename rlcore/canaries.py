"""Reward integrity during a run: canaries (the items and their format: rlcore/verifiers/canaries.py)
and the reward-hacking alarm.

    watch = CanaryWatch.load(cfg, specs)          # None when no verifier of the run has any
    metrics, flips = watch.check(cluster.score, state)
    alarm = hacking_alarm(history, window=3, margin=0.05)   # after each periodic evaluation

The canaries are scored like real samples: by the run's verifier actors, in the same batch path.
The first check (at the start of RL) records each canary's verdict in the run's state, so a
resumed run compares with the same start; a canary whose start verdict is not the one it expects
is named in a warning then (a verifier configured differently, e.g. with an `answer_pattern`, may
rightly judge it otherwise) and watched against that start. Later checks name every canary whose
verdict moved: `canary/<verifier>/flips` counts them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlcore.config import TrainConfig
from rlcore.verifiers.build import parse_spec
from rlcore.verifiers.canaries import builtin_for, load_file, passed
from rlcore.verifiers.registry import get_verifier_class
from rlcore.verifiers.types import Sample

log = logging.getLogger(__name__)


class CanaryError(RuntimeError):
    """A canary's verdict flipped and verifier.canary_action is stop."""


def verdict(result: dict[str, Any]) -> str:
    """pass | fail | error (the verifier could not judge it: a crash, a timeout)."""
    if result.get("error") and result.get("correct") is None:
        return "error"
    return "pass" if passed(result) else "fail"


@dataclass
class CanaryWatch:
    items: list[dict[str, Any]]
    action: str  # warn | stop

    @classmethod
    def load(cls, cfg: TrainConfig, specs: list[Any]) -> CanaryWatch | None:
        """The built-in canaries of the run's verifiers and the user's file; ValueError names a
        user canary whose verifier the run does not use (its actors could not score it)."""
        names = {n for spec in specs for n, _ in parse_spec(spec)}
        items = _builtin(names, dict(cfg.verifier.options))
        if cfg.verifier.canaries:
            for row in load_file(cfg.verifier.canaries):
                unknown = {n for n, _ in parse_spec(row["verifier"])} - names
                if unknown:
                    raise ValueError(
                        f"{row['id']}: verifier {sorted(unknown)} is not one this run uses "
                        f"({sorted(names)})"
                    )
                items.append(row)
        if not items or not cfg.verifier.canary_every:
            return None
        return cls(items, cfg.verifier.canary_action)

    def check(
        self, score: Callable[[list[tuple[Any, Any]]], list[dict[str, Any]]], state: dict[str, Any]
    ) -> tuple[dict[str, float], list[str]]:
        """Scores every canary; returns ({canary/<verifier>/flips: n}, one line per flip)."""
        samples = [
            (c["verifier"], Sample(c.get("prompt", ""), c["response"], c.get("reference", {})))
            for c in self.items
        ]
        results = score(samples)
        now = [verdict(r) for r in results]
        first = len(state.get("canary_start", [])) != len(now)  # none yet, or another set
        if first:  # the start every later check is compared with
            state["canary_start"] = now
            for c, v in zip(self.items, now, strict=True):
                if v != c["expect"]:
                    log.warning(
                        "canary %s: expected %s, got %s at the start (%s); watched for changes",
                        c["id"],
                        c["expect"],
                        v,
                        c.get("why", ""),
                    )
        flips, lines = Counter(), []
        for c, r, was, v in zip(self.items, results, state["canary_start"], now, strict=True):
            if v != was:
                flips[_label(c["verifier"])] += 1
                lines.append(
                    f"canary {c['id']} ({c.get('why', '')}): {was} at the start, now {v} "
                    f"(reward {r.get('reward', 0.0):.3g}, expected {c['expect']})"
                )
        metrics = {
            f"canary/{name}/flips": float(flips[name])
            for name in sorted({_label(c["verifier"]) for c in self.items})
        }
        return metrics, lines


def _builtin(names: set[str], options: dict[str, Any]) -> list[dict[str, Any]]:
    """The built-in canaries of each name's verifier class, scored under that name: a verifier
    configured under a name of its own (`answer: {path: rlcore.verifiers.math:MathVerifier}`)
    gets the math canaries as `answer`, under its own options."""
    out = []
    for name in sorted(names):
        opts = options.get(name)
        path = opts.get("path") if isinstance(opts, dict) else None
        try:
            kind = get_verifier_class(path or name).name
        except Exception:  # noqa: BLE001 - an unknown name fails where the actors are built
            continue
        for c in builtin_for({kind}):
            out.append(dict(c, verifier=name, id=c["id"] if name == kind else f"{name}:{c['id']}"))
    return out


def _label(spec: Any) -> str:
    return "+".join(n for n, _ in parse_spec(spec))


def hacking_alarm(history: list[dict[str, Any]], window: int, margin: float) -> str | None:
    """ "reward hacking suspected" when, over the last `window` periodic evaluations, the mean
    training reward between them rose by more than `margin` while a held-out bucket fell by more
    than `margin`. history: one {"step", "reward", "buckets": {name: score}} per evaluation."""
    if window < 2 or len(history) < window:
        return None
    first, last = history[-window], history[-1]
    rose = last["reward"] - first["reward"]
    fell = {
        name: (first["buckets"][name], score)
        for name, score in last["buckets"].items()
        if name in first["buckets"] and first["buckets"][name] - score > margin
    }
    if rose <= margin or not fell:
        return None
    shown = ", ".join(f"{n} {a:.3f} -> {b:.3f}" for n, (a, b) in sorted(fell.items()))
    return (
        f"reward hacking suspected: training reward {first['reward']:.3f} -> {last['reward']:.3f} "
        f"from step {first['step']} to {last['step']} while held-out fell ({shown})"
    )


def top_rewarded(examples: list[dict[str, Any]], k: int = 3, chars: int = 300) -> list[str]:
    """The k samples of a batch that earned the most reward, one line each, for the alarm."""
    best = sorted(examples, key=lambda e: -float(e.get("reward", 0.0)))[:k]
    return [
        f"reward {e.get('reward', 0.0):.3g}: {str(e.get('response', ''))[:chars]!r}" for e in best
    ]
