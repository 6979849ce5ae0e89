"""Where the learner's step goes: rlcore's `Learner.rl_step` (one rank, in this process, DeepSpeed as
the trainer runs it) next to the bare torch floor (forward, log-softmax gather, backward, AdamW) on
the same batch shape, then one rl_step under torch.profiler, its heaviest ops by self time.

    python benchmarks/learner_profile.py --model smollm2-135m-instruct --rows 16 --width 109 \
        --json benchmarks/results/learner_profile.json

The batch: `--rows` sequences `--width` tokens wide, the first `--prompt` tokens prompt, the rest
response with loss, random advantages (no row skipped): benchmarks/vs_trl.py's varied case. Run it
alone: the ratio is what it measures, and a second job on 2 cores changes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from rlcore.ports import free_port


def make_batch(rows: int, width: int, prompt: int, vocab: int, seed: int = 0):
    from rlcore.learner.batch import pad_batch

    g = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, vocab, (rows, prompt), generator=g).tolist()
    responses = torch.randint(0, vocab, (rows, width - prompt), generator=g).tolist()
    adv = (torch.randn(rows, generator=g)).tolist()
    return pad_batch(prompts, responses, adv, pad_id=0)


def floor_step(model, opt, batch) -> float:
    t0 = time.perf_counter()
    ids, mask = batch.input_ids, batch.attention_mask
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    lm = batch.loss_mask.float()
    loss = -(logp * lm).sum() / lm.sum()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--width", type=int, default=109)
    ap.add_argument("--prompt", type=int, default=45)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--learner-args", nargs="*", default=[], help="LearnerConfig key=value")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM

    from rlcore.algo import GRPO
    from rlcore.config import LearnerConfig
    from rlcore.learner.rank import Learner, LearnerSpec
    from rlcore.rundir import resolve_model_path

    path = str(resolve_model_path(args.model))
    overrides = {
        k: type(getattr(LearnerConfig(), k))(v)
        for k, v in (a.split("=", 1) for a in args.learner_args)
    }
    cfg = LearnerConfig(**{"micro_batch_size": 64, "lr": 1e-6, **overrides})
    spec = LearnerSpec(
        path, 0, 1, "127.0.0.1", free_port(), cfg, total_steps=100, algo=GRPO(group_size=4)
    )
    learner = Learner(spec)
    vocab = learner.engine.module.config.vocab_size
    batch = make_batch(args.rows, args.width, args.prompt, vocab)
    tokens = float(batch.loss_mask.sum())

    def rl_step() -> float:
        t0 = time.perf_counter()
        learner.rl_step(batch, tokens, 1.0)
        return time.perf_counter() - t0

    floor_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    floor_model.train()
    opt = torch.optim.AdamW(floor_model.parameters(), lr=1e-6)
    rl_times, floor_times = [], []
    for i in range(args.steps):  # interleaved, so both see the same machine
        rl_times.append(rl_step())
        floor_times.append(floor_step(floor_model, opt, batch))
        print(
            f"step {i + 1}: rl_step {rl_times[-1]:.2f} s, floor {floor_times[-1]:.2f} s", flush=True
        )
    rl_s, floor_s = statistics.median(rl_times[1:]), statistics.median(floor_times[1:])
    print(
        f"median after the first: rl_step {rl_s:.2f} s, floor {floor_s:.2f} s = {rl_s / floor_s:.2f}x"
    )

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        rl_step()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[: args.top]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
    ops = [{"op": e.key, "calls": e.count, "self_s": e.self_cpu_time_total / 1e6} for e in events]
    print(f"\none rl_step under the profiler ({total:.2f} s of op self time), heaviest ops:")
    print("| op | calls | self s | share |\n|---|---|---|---|")
    for o in ops:
        print(f"| `{o['op']}` | {o['calls']} | {o['self_s']:.3f} | {o['self_s'] / total:.1%} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "model": args.model,
                    "rows": args.rows,
                    "width": args.width,
                    "learner": overrides,
                    "rl_step_s": rl_times,
                    "floor_s": floor_times,
                    "ratio": rl_s / floor_s,
                    "ops": ops,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
