"""How each learner metric is reduced, in one table: over the micro-batches of a rank, over the
ranks of a minibatch, over the optimizer steps (minibatches and epochs) of an RL step.

    max           `*_max`: the largest anywhere (e.g. compute_s_max, a rank's busiest time)
    per_step      grad_norm, lr, critic_grad_norm: one value per optimizer step, the same on
                  every rank; the RL step logs their mean over its optimizer steps
    count         nonfinite, critic_nonfinite: one per optimizer step, the same on every rank;
                  the RL step logs how many
    token_sum     everything else: sums over loss tokens; the RL step divides by the tokens learned
"""

from __future__ import annotations

PER_STEP = ("grad_norm", "lr", "critic_grad_norm")
COUNT = ("nonfinite", "critic_nonfinite")


def kind(key: str) -> str:
    if key.endswith("_max"):
        return "max"
    if key in PER_STEP:
        return "per_step"
    if key in COUNT:
        return "count"
    return "token_sum"


def over_ranks(results: list[dict[str, float]]) -> dict[str, float]:
    """One minibatch's metrics from every rank's: token sums added, the rest as the table says."""
    out: dict[str, float] = {}
    for r in results:
        for k, v in r.items():
            how = kind(k)
            if how == "max":
                out[k] = max(out.get(k, 0.0), v)
            elif how == "token_sum":
                out[k] = out.get(k, 0.0) + v
            else:  # the same on every rank
                out[k] = v
    return out


def over_steps(per_step: list[dict[str, float]], tokens: float) -> dict[str, float]:
    """The RL step's metrics from its optimizer steps' (every epoch's minibatches)."""
    out: dict[str, float] = {}
    steps = max(len(per_step), 1)
    for outs in per_step:
        for k, v in outs.items():
            how = kind(k)
            if how == "max":
                out[k] = max(out.get(k, 0.0), v)
            elif how == "per_step":
                out[k] = out.get(k, 0.0) + v / steps
            elif how == "count":
                out[k] = out.get(k, 0.0) + v
            else:
                out[k] = out.get(k, 0.0) + v / max(tokens, 1.0)
    return out
