"""Per-token KL estimators between the policy and a reference, from sampled-token logprobs.

With r = ref_logprob - logprob (log of pi_ref / pi_theta at the sampled token, sampled from pi_theta):
    k1 = -r                 unbiased, high variance, can be negative
    k2 = r**2 / 2           biased, low variance
    k3 = exp(r) - 1 - r     unbiased, non-negative (Schulman, "Approximating KL divergence")
Shapes: logprob, ref_logprob [B, T] -> [B, T].
"""

from __future__ import annotations

import torch


def kl_estimate(logprob: torch.Tensor, ref_logprob: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    log_ratio = ref_logprob.float() - logprob.float()
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio.square()
    if kind == "k3":
        # clamp keeps exp() finite when the two models disagree wildly on one token
        log_ratio = log_ratio.clamp(-20.0, 20.0)
        return torch.exp(log_ratio) - 1.0 - log_ratio
    raise ValueError(f"unknown KL estimator {kind!r} (k1, k2, k3)")
