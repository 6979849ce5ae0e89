"""rlcore.kernels: per-token logprob and entropy over the vocabulary without materialising [N, V].

`token_logprobs` (from hidden states and the output projection) and `token_logprobs_from_logits`
dispatch to a fused Triton kernel (CUDA), a chunked torch path (CPU, fallback) or the plain reference
(`logprob_and_entropy`); see kernels/logprob.py. Imports only torch (and triton, lazily).
"""

from .logprob import IMPLS, Impl, logprob_and_entropy, token_logprobs, token_logprobs_from_logits

__all__ = ["IMPLS", "Impl", "logprob_and_entropy", "token_logprobs", "token_logprobs_from_logits"]
