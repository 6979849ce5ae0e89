"""GPU check, learner part: `policy_logprobs` (rlcore/learner/logits.py) on a real Hugging Face
architecture in bf16 on the GPU, padded and packed, and a few optimizer steps whose loss matches a CPU
fp32 run; then, where DeepSpeed imports or its carried sdist builds offline, the same steps through
rlcore's DeepSpeed learner (ZeRO-2, bf16, one GPU). Run by benchmarks/gpu_check.py.

The steps without DeepSpeed are the learner's update (rlcore/learner/rank.py `rl_step`) written out:
GRPO's token loss over packed logprobs, old logprobs from before the first step, AdamW on fp32 master
weights with the model in bf16 (what DeepSpeed's bf16 mode does), gradient clipping at 1.0.

    python benchmarks/gpu_check_learner.py --zero RESULT.json WORK_DIR   # the ZeRO run (a child)
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from gpu_check_common import (
    Ctx,
    build_model,
    free_port,
    not_checked,
    random_batch,
    use_checkout,
    verdict,
)

STEPS, LR = 4, 1e-3
# bf16 on the GPU against fp32 on the CPU, per target token (|logprob| ~ 12 at this vocabulary)
LOGPROB_TOL = {"mean": 0.05, "max": 0.5}
LOSS_TOL = 0.02  # per step, absolute (the token-mean GRPO loss is of order 1)


def _forward(
    model: Any, batch: Any, device: str, impl: str, packing: bool, position: str = "restart"
):
    """(logprob, entropy) [B, L-1] as the learner computes them (Learner._forward). position
    "continuous" with no mask is a WRONG packing (sequences attend to each other): a control."""
    from rlcore.learner.batch import to_packed
    from rlcore.learner.logits import policy_logprobs

    if not packing:
        ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
        return policy_logprobs(model, ids, mask, 1.0, impl)  # type: ignore[arg-type]
    packed = to_packed(batch, block_mask=position == "restart")
    pos = packed.position_ids
    if position != "restart":
        pos = torch.arange(pos.shape[1])[None]
    mask = None if packed.attention_mask is None else packed.attention_mask.to(device)
    ids, pos = packed.input_ids.to(device), pos.to(device)
    lp, ent = policy_logprobs(model, ids, mask, 1.0, impl, position_ids=pos)  # type: ignore[arg-type]
    width = batch.input_ids.shape[1]
    return packed.unpack(lp, width), packed.unpack(ent, width)


def _errors(actual: torch.Tensor, expected: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    diff = (actual.float().cpu() - expected.float().cpu()).abs()[valid]
    return {"mean": float(diff.mean()), "max": float(diff.max())}


@torch.no_grad()
def logprobs(ctx: Ctx) -> dict[str, Any]:
    """bf16 on ctx.device, every impl, padded and packed, against the fp32 reference on the CPU."""
    model = build_model(ctx.smoke)
    batch = random_batch(ctx.smoke, model.config.vocab_size)
    valid = batch.attention_mask[:, 1:].bool()
    expected, _ = _forward(model, batch, "cpu", "reference", packing=False)
    dev = copy.deepcopy(model).to(ctx.device, torch.bfloat16)
    impls = ("reference", "chunked") if ctx.smoke else ("reference", "chunked", "fused")
    rows: list[dict[str, Any]] = []
    ok, by_impl = True, {}
    for impl in impls:
        for packing in (False, True):
            lp, _ = _forward(dev, batch, ctx.device, impl, packing)
            errs = _errors(lp, expected, valid)
            passed = all(errs[k] <= LOGPROB_TOL[k] for k in errs)
            ok = ok and passed
            rows.append({"impl": impl, "packed": packing, "passed": passed, **errs})
            by_impl[(impl, packing)] = lp
    # the kernel paths against the model's own logits, same bf16 hidden states: rounding only
    agree = _errors(by_impl[(impls[-1], True)], by_impl[("reference", True)], valid)
    leak = _errors(
        _forward(dev, batch, ctx.device, "chunked", True, "continuous")[0], expected, valid
    )
    leak_seen = leak["mean"] > 4 * max(r["mean"] for r in rows)  # the check can see a bad packing
    ok = ok and leak_seen
    worst = max(rows, key=lambda r: r["mean"])
    summary = (
        f"{len(batch)} rows, {int(valid.sum())} tokens, vocab {model.config.vocab_size}: bf16 vs fp32 "
        f"mean/max |diff| <= {worst['mean']:.3f}/{max(r['max'] for r in rows):.3f} "
        f"(tol {LOGPROB_TOL['mean']}/{LOGPROB_TOL['max']}); a wrong packing: {leak['mean']:.3f}"
    )
    return verdict(ok, summary, rows=rows, kernel_vs_logits=agree, wrong_packing=leak)


def train(
    model: Any, batch: Any, device: str, dtype: torch.dtype, impl: str, packing: bool
) -> list[dict]:
    """STEPS GRPO updates of a copy of `model` on `batch`: loss, mean logprob and gradient norm
    per step (the loss of step k is computed before update k)."""
    from rlcore.algo import GRPO

    model = copy.deepcopy(model).to(device, dtype).train()
    params = list(model.parameters())
    masters = [p.detach().float().clone() for p in params]  # fp32 master weights
    opt = torch.optim.AdamW(masters, lr=LR, weight_decay=0.0)
    algo = GRPO(group_size=4)
    mask, adv = batch.loss_mask.to(device), batch.advantages.to(device)
    tokens = float(mask.sum())
    with torch.no_grad():
        old, _ = _forward(model, batch, device, impl, packing)
    out = []
    for _ in range(STEPS):
        lp, ent = _forward(model, batch, device, impl, packing)
        token_loss, _ = algo.token_loss(lp, old, adv, ent, None, mask)
        loss = algo.aggregate(token_loss, mask, tokens, float(len(batch)))
        loss.backward()
        for m, p in zip(masters, params, strict=True):
            m.grad, p.grad = p.grad.float(), None
        norm = torch.nn.utils.clip_grad_norm_(masters, 1.0)
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            for m, p in zip(masters, params, strict=True):
                p.copy_(m)
        mean_lp = float((lp.detach() * mask).sum() / tokens)
        out.append({"loss": float(loss), "mean_logprob": mean_lp, "grad_norm": float(norm)})
    return out


def _compare(runs: dict[str, list[dict]], reference: list[dict]) -> tuple[bool, dict[str, float]]:
    worst = {}
    for name, steps in runs.items():
        worst[name] = max(abs(a["loss"] - b["loss"]) for a, b in zip(steps, reference, strict=True))
    return all(w <= LOSS_TOL for w in worst.values()), worst


def steps(ctx: Ctx) -> dict[str, Any]:
    """bf16 + packing on ctx.device (chunked and fused) against fp32, padded, reference, CPU."""
    model = build_model(ctx.smoke)
    batch = random_batch(ctx.smoke, model.config.vocab_size)
    cpu = train(model, batch, "cpu", torch.float32, "reference", packing=False)
    impls = ("chunked",) if ctx.smoke else ("chunked", "fused")
    runs = {impl: train(model, batch, ctx.device, torch.bfloat16, impl, True) for impl in impls}
    ok, worst = _compare(runs, cpu)
    moved = abs(cpu[-1]["loss"] - cpu[0]["loss"])  # a step that did nothing would show
    ok = ok and moved > 2 * LOSS_TOL
    summary = (
        f"{STEPS} AdamW steps, loss {cpu[0]['loss']:.3f} -> {cpu[-1]['loss']:.3f} (CPU fp32); "
        + ", ".join(f"bf16 {k} max |diff| {v:.4f}" for k, v in worst.items())
        + f" (tol {LOSS_TOL})"
    )
    return verdict(
        ok, summary, cpu_fp32=cpu, **{f"{ctx.device}_bf16_{k}": v for k, v in runs.items()}
    )


def _deepspeed_path(ctx: Ctx) -> tuple[str | None, str]:
    """(a PYTHONPATH entry that makes deepspeed importable, "" if it already is; how), or
    (None, why not). Builds the carried sdist offline with its carried dependencies."""
    code = "import deepspeed; print(deepspeed.__version__)"
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180
    )
    if probe.returncode == 0:
        return "", f"deepspeed {probe.stdout.strip()} importable"
    sdists = sorted((ctx.wheels / "deepspeed").glob("deepspeed-*.tar.gz"))
    if not sdists:
        return None, "deepspeed is not importable, and no sdist is carried"
    site = ctx.work / "deepspeed_site"
    deps = [str(p) for p in sorted((ctx.wheels / "deepspeed").glob("*.whl"))]
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    cmd += ["--no-cache-dir", "--no-build-isolation", "--target", str(site), *deps, str(sdists[-1])]
    start = time.perf_counter()
    env = {**os.environ, "DS_BUILD_OPS": "0"}  # ops compile on first use (none needed here)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"the carried {sdists[-1].name} did not build offline: {tail}"
    seconds = time.perf_counter() - start
    return str(site), f"built from the carried {sdists[-1].name} in {seconds:.0f} s"


def deepspeed(ctx: Ctx) -> dict[str, Any]:
    """rlcore's Learner (DeepSpeed ZeRO-2, bf16, packing, one GPU): STEPS rl_steps vs CPU fp32."""
    if ctx.smoke:
        return not_checked("DeepSpeed is tried on the GPU only")
    path, how = _deepspeed_path(ctx)
    if path is None:
        return not_checked(how)
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, env.get("PYTHONPATH", "")]))
    result = ctx.work / "zero.json"
    cmd = [sys.executable, __file__, "--zero", str(result), str(ctx.work)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    print(proc.stdout[-6000:], proc.stderr[-6000:], sep="\n")
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return verdict(False, f"{how}; the ZeRO-2 run failed: {tail}", deepspeed=how)
    data = json.loads(result.read_text())
    ok, worst = _compare({"zero2": data["zero"]}, data["cpu"])
    summary = (
        f"{how}; ZeRO-2 bf16 loss vs CPU fp32 max |diff| {worst['zero2']:.4f} (tol {LOSS_TOL})"
    )
    return verdict(ok, summary, deepspeed=how, **data)


def _zero_main(result: Path, work: Path) -> None:
    """In a child whose PYTHONPATH has deepspeed: rlcore's Learner on one GPU, and the CPU run."""
    use_checkout()
    from rlcore.algo import GRPO
    from rlcore.config import LearnerConfig
    from rlcore.learner.rank import Learner, LearnerSpec

    model = build_model(smoke=False)
    path = work / "zero_model"
    model.save_pretrained(path)
    batch = random_batch(False, model.config.vocab_size)
    cpu = train(model, batch, "cpu", torch.float32, "reference", packing=False)
    cfg = LearnerConfig(
        zero_stage=2, micro_batch_size=len(batch), packing=True, lr=LR, grad_clip=1.0,
        logprob_impl="chunked", gpus_per_rank=1,
    )  # fmt: skip
    spec = LearnerSpec(
        str(path), 0, 1, "127.0.0.1", free_port(), cfg, dtype="bfloat16", algo=GRPO(group_size=4)
    )
    learner = Learner(spec)
    batch = batch.with_(old_logprobs=learner.prepare(batch)["old_logprobs"])
    tokens = float(batch.loss_mask.sum())
    zero = []
    for _ in range(STEPS):
        sums = learner.rl_step(batch, tokens)
        zero.append({"loss": sums["loss"] / tokens, "grad_norm": sums["grad_norm"]})
    result.write_text(json.dumps({"cpu": cpu, "zero": zero}))


if __name__ == "__main__" and sys.argv[1:2] == ["--zero"]:
    _zero_main(Path(sys.argv[2]), Path(sys.argv[3]))
