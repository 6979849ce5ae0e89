"""GPU check, engine part: the transformers rollout engine (rlcore/rollout/hf_engine.py) on the GPU,
and CUDA-IPC weight sync (rlcore/sync/ipc.py) from a learner process to an engine in another process
on the same GPU, judged by the trainer's probe check (rlcore/sync/verify.py). Run by
benchmarks/gpu_check.py; the engine side of the sync runs this file as a child:

    python benchmarks/gpu_check_engine.py --receiver MODEL_DIR PORT   # JSON commands on stdin
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from gpu_check_common import Ctx, build_model, free_port, use_checkout, verdict

DTYPE = "bfloat16"
LOGPROB_TOL = 0.05  # engine (bf16) vs learner fp32, mean |diff| per token
BUCKET_BYTES = 16 * 2**20  # several buckets through one reused CUDA buffer


def _save_model(ctx: Ctx, name: str) -> tuple[Any, Path]:
    model = build_model(ctx.smoke)
    path = ctx.work / name
    model.save_pretrained(path)
    return model, path


def _learner_logprobs(model: Any, seqs: list[list[int]], device: str) -> list[list[float]]:
    from rlcore.learner.logits import policy_logprobs

    out = []
    for seq in seqs:
        ids = torch.tensor([seq], device=device)
        lp, _ = policy_logprobs(model, ids, torch.ones_like(ids), 1.0, "chunked")
        out.append(lp[0].float().cpu().tolist())
    return out


@torch.no_grad()
def engine(ctx: Ctx) -> dict[str, Any]:
    """generate (n samples per prompt) on ctx.device; the engine's logprobs of what it sampled
    against the learner's fp32 logprobs of the same tokens."""
    from rlcore.rollout import EngineSpec, SamplingParams, make_engine

    model, path = _save_model(ctx, "engine_model")
    eng = make_engine(EngineSpec(str(path), "hf", dtype=DTYPE, max_model_len=512))
    assert eng.device.type == ctx.device, f"the engine chose {eng.device}, not {ctx.device}"
    g = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    prompts = [torch.randint(1, vocab, (int(n),), generator=g).tolist() for n in range(16, 48, 4)]
    params = SamplingParams(n=4, temperature=1.0, max_tokens=8 if ctx.smoke else 128, seed=0)
    eng.generate(prompts[:1], SamplingParams(max_tokens=4, seed=0))  # warm-up
    start = time.perf_counter()
    groups = eng.generate(prompts, params)
    seconds = time.perf_counter() - start
    shapes_ok = len(groups) == len(prompts) and all(len(grp) == params.n for grp in groups)
    done = [(p, c) for p, grp in zip(prompts, groups, strict=True) for c in grp]
    shapes_ok = shapes_ok and all(len(c.logprobs) == len(c.token_ids) > 0 for _, c in done)
    learner = _learner_logprobs(
        model.to(ctx.device), [p + c.token_ids for p, c in done], ctx.device
    )
    diffs = [
        abs(a - b)
        for (p, c), lp in zip(done, learner, strict=True)
        for a, b in zip(c.logprobs, lp[len(p) - 1 :], strict=True)
    ]
    mean = sum(diffs) / len(diffs)
    tokens = sum(len(c.token_ids) for _, c in done)
    ok = shapes_ok and mean <= LOGPROB_TOL
    summary = (
        f"{len(prompts)} prompts x {params.n}: {tokens} tokens in {seconds:.2f} s "
        f"({tokens / seconds:,.0f} tok/s, start {eng.start_seconds:.1f} s); engine {DTYPE} vs "
        f"learner fp32 logprobs mean |diff| {mean:.4f} (tol {LOGPROB_TOL})"
    )
    return verdict(ok, summary, tokens=tokens, seconds=seconds, mean_abs_diff=mean)


class _Receiver:
    """The engine process of the sync check, driven by one JSON command per line."""

    def __init__(self, path: Path, port: int) -> None:
        cmd = [sys.executable, __file__, "--receiver", str(path), str(port)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask_later({"cmd": "hello"})
        self.answer()

    def ask_later(self, msg: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the engine process ended (exit {self.proc.wait()})")
        return json.loads(line)

    def ask(self, msg: dict) -> Any:
        self.ask_later(msg)
        return self.answer()


def _digests(named: Any) -> dict[str, str]:
    return {
        name: hashlib.sha256(t.detach().cpu().contiguous().view(torch.uint8).numpy()).hexdigest()
        for name, t in named
    }


@torch.no_grad()
def ipc_sync(ctx: Ctx) -> dict[str, Any]:
    """Learner (this process) -> engine (a child) over CUDA IPC on one GPU: the probe check passes
    on the synced weights, fails on stale ones, and every tensor arrives bit for bit."""
    from rlcore.sync.buckets import param_meta
    from rlcore.sync.ipc import IPCSender
    from rlcore.sync.verify import ProbeCheck

    model, path = _save_model(ctx, "sync_model")
    learner = copy.deepcopy(model).to(ctx.device, getattr(torch, DTYPE))
    g = torch.Generator().manual_seed(3)
    probe = torch.randint(1, model.config.vocab_size, (48,), generator=g).tolist()
    port = free_port()
    engine = _Receiver(path, port)
    sender = IPCSender(device=ctx.device)
    engine.ask_later({"cmd": "join"})
    sender.init_group("127.0.0.1", port, 2)
    engine.answer()
    check = ProbeCheck(DTYPE, atol=1e-3, factor=4.0)  # the trainer's defaults (sync.verify_*)
    check = check.calibrated(
        engine.ask({"cmd": "score", "probe": probe}), _probe_lp(learner, probe)
    )
    torch.manual_seed(2)  # an update the engine has not seen yet
    for p in learner.parameters():
        p.add_(torch.randn_like(p) * p.float().std().to(p.dtype) * 0.1)
    stale = check.failure(engine.ask({"cmd": "score", "probe": probe}), _probe_lp(learner, probe))
    meta = param_meta(learner)
    engine.ask_later({"cmd": "receive", "meta": meta, "bucket_bytes": BUCKET_BYTES})
    sent = sender.send(learner.named_parameters(), BUCKET_BYTES)
    received = engine.answer()
    after = engine.ask({"cmd": "score", "probe": probe})
    failure = check.failure(after, _probe_lp(learner, probe))
    same = engine.ask({"cmd": "digests"}) == _digests(learner.named_parameters())
    engine.ask({"cmd": "quit"})
    sender.close()
    ok = stale is not None and failure is None and same
    gib_s = sent["bytes"] / 2**30 / max(sent["seconds"], 1e-9)
    summary = (
        f"{'CUDA IPC' if ctx.device == 'cuda' else 'shared memory'}: {sent['bytes'] / 2**20:.1f} MiB "
        f"in {sent['buckets']:.0f} buckets, {sent['seconds']:.3f} s ({gib_s:.1f} GiB/s); probe check "
        f"{'passed' if failure is None else 'FAILED'} after the sync (noise floor "
        f"{check.baseline:.1e}), {'caught' if stale else 'MISSED'} the stale engine before it; "
        f"weights {'bit-exact' if same else 'DIFFER'}"
    )
    return verdict(ok, summary, sent=sent, received=received, stale=stale, failure=failure)


def _probe_lp(model: Any, probe: list[int]) -> list[float]:
    return _learner_logprobs(model, [probe], str(next(model.parameters()).device))[0]


def _receiver_main(path: str, port: int) -> None:
    """The engine side: an HFEngine that joins the sync group as rank 1 (sync.type=ipc)."""
    use_checkout()
    from rlcore.rollout import EngineSpec, make_engine

    replies, sys.stdout = sys.stdout, sys.stderr  # stdout carries the replies and nothing else
    eng = make_engine(EngineSpec(path, "hf", dtype=DTYPE, max_model_len=512))
    for line in sys.stdin:
        msg = json.loads(line)
        cmd: str = msg["cmd"]
        reply: Any = None
        if cmd == "join":
            eng.init_weight_group("127.0.0.1", port, 1, 2, sync_type="ipc")
        elif cmd == "score":
            reply = eng.score([msg["probe"]])[0]
        elif cmd == "receive":
            meta = [(n, d, tuple(s)) for n, d, s in msg["meta"]]
            reply = eng.receive_weights(meta, msg["bucket_bytes"])
        elif cmd == "digests":
            reply = _digests(eng.model.named_parameters())
        print(json.dumps(reply), file=replies, flush=True)
        if cmd == "quit":
            return


if __name__ == "__main__" and sys.argv[1:2] == ["--receiver"]:
    _receiver_main(sys.argv[2], int(sys.argv[3]))
