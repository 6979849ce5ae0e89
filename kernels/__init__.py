"""rlcore.kernels: per-token logprob/entropy (torch reference now; Triton kernel later). Imports only torch."""
