"""How many lines a reader reads to follow one RL step, from `train()` to the optimizer step and
back to the engines: the functions and methods one synchronous GRPO step of the default config
runs (single turn, vLLM engine, shared-memory sync with its check), counted whole (docstrings and
comments included), per file. The reward functions themselves (verifiers/) and the logprob
kernels (kernels/) are libraries the step calls, as torch is: not counted.

    python benchmarks/step_lines.py                      # the tree as it is
    python benchmarks/step_lines.py --rev ba9a164 --path before   # the path as it was then

A path is a list of (file, qualified names); a name missing from its file is an error, so a
rename cannot quietly shrink the count.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# what both paths run unchanged: the learner's batch, the algorithm, the sync checks
SAME: dict[str, list[str]] = {
    "rlcore/learner/batch.py": [
        "TokenBatch.select", "TokenBatch.with_", "pad_batch", "shard", "micro_batches",
    ],
    "rlcore/learner/reduce.py": ["kind", "over_ranks", "over_steps"],
    "rlcore/learner/logits.py": ["policy_logprobs"],
    "rlcore/algo/advantages.py": ["_grouped", "grpo_advantages"],
    "rlcore/algo/policy_loss.py": ["clipped_surrogate", "masked_sum", "token_mean", "aggregate"],
    "rlcore/algo/offpolicy.py": ["mismatch_sums"],
    "rlcore/algo/strategies.py": [
        "Algorithm.zero_advantage_rows_are_inert", "Algorithm.shape_rewards",
        "Algorithm.keep_groups", "Algorithm.loss_mask", "Algorithm.estimate",
        "Algorithm.policy_loss", "Algorithm.token_loss", "Algorithm.aggregate", "GRPO.advantages",
    ],
    "rlcore/sync/digest.py": ["tensor_digest", "DigestedStream", "differing", "digest_failure"],
    "rlcore/sync/verify.py": [
        "ProbeCheck.statistic", "ProbeCheck.failure", "_abs_diffs", "mismatch_alarm",
    ],
}  # fmt: skip

# the step at ba9a164 (before issue 31's moves)
BEFORE: dict[str, list[str]] = {
    "rlcore/trainer.py": [
        "train", "_rl_stage", "_memory", "_watch_mismatch", "Run.encode", "_prompt_ids",
        "_rollout_params",
    ],
    "rlcore/rl.py": [
        "collect", "sample_seed", "finite_rewards", "_unjudged", "judged_groups", "check_unjudged",
        "outcomes", "_generate_and_score", "VerifierItems", "make_sample", "_policy_tokens",
        "_sample_metrics", "verifier_error_rates", "_nonfinite", "update", "_optimize", "loss_rows",
        "_group_metrics", "_inert_rows", "_update_minibatch",
    ],
    "rlcore/cluster.py": [
        "Cluster.generate_and_score", "Cluster._parts", "Cluster._rollout_result", "Cluster._get",
        "Cluster.sync_weights", "Cluster._rollout_infos", "Cluster._send_weights",
        "Cluster._learner_probe", "Cluster._probe_logprobs", "Cluster.check_probe",
        "Cluster.memory", "Cluster._each_actor",
    ],
    "rlcore/scoring.py": [
        "Scoring.submit", "Scoring.collect", "Scoring._result", "Scoring._seen", "split",
    ],
    "rlcore/actors.py": [
        "wait_all", "_Measured.memory", "RolloutWorker.generate", "RolloutWorker.info",
        "RolloutWorker.receive_weights", "VerifierWorker.score_components", "LearnerWorker.rl_step",
        "LearnerWorker.logprobs", "LearnerWorker.send_weights", "ActorGroup.labels",
        "ActorGroup.call", "ActorGroup.submit", "ActorGroup.call_each", "ActorGroup.submit_each",
        "process_pss_mib",
    ],
    "rlcore/learner/rank.py": [
        "_sum_into", "Learner._inputs", "Learner._forward", "Learner._micro_batches",
        "Learner._backward", "Learner._step", "Learner.rl_step", "Learner.logprobs",
        "Learner.named_weights", "_token_logprobs",
    ],
    "rlcore/rollout/vllm_engine.py": [
        "RlcoreWorkerExtension.rlcore_receive_weights", "_load", "_redispatch_cpu_gemms",
        "VLLMEngine.generate", "VLLMEngine.score", "VLLMEngine.receive_weights", "_prompts",
        "_completion",
    ],
    "rlcore/sync/ipc.py": ["IPCSender._send_bucket", "IPCSender._release", "receive_buckets_ipc"],
    **SAME,
}  # fmt: skip

# the step now
NOW: dict[str, list[str]] = {
    "rlcore/trainer.py": [
        "train", "_rl_stage", "_learn_and_sync", "_log_step", "_memory", "_watch_mismatch",
    ],
    "rlcore/run.py": ["Run.pad_id", "Run.rollout_params"],
    "rlcore/sampling.py": [
        "Scored", "make_sample", "encode", "Sampler.encode", "Sampler.spec_of", "Sampler.sample",
        "Sampler._parts",
    ],
    "rlcore/step.py": [
        "RowStream", "collect", "sample_seed", "finite_rewards", "_unjudged", "judged_groups",
        "check_unjudged", "outcomes", "_policy_tokens", "_sample_metrics", "verifier_error_rates",
        "_nonfinite", "update", "_optimize", "loss_rows", "_group_metrics", "_inert_rows",
        "_update_minibatch",
    ],
    "rlcore/cluster.py": [
        "Cluster.generate_parts", "Cluster._parts", "Cluster._rollout_result", "Cluster._get",
        "Cluster.submit", "Cluster.collect", "Cluster.memory", "Cluster._each_actor",
    ],
    "rlcore/sync/weights.py": [
        "WeightSync.push", "WeightSync._send", "WeightSync.check_probe",
        "WeightSync._learner_probe", "WeightSync._probe_logprobs", "WeightSync._engine_infos",
    ],
    "rlcore/verifier_actors.py": [
        "ScorerHost.score_dicts", "VerifierActors.submit", "VerifierActors.collect",
        "VerifierActors._result", "VerifierActors._seen", "split",
    ],
    "rlcore/actors.py": [
        "wait_all", "_Measured.memory", "ActorGroup.labels", "ActorGroup.call", "ActorGroup.submit",
        "ActorGroup.call_each", "ActorGroup.submit_each", "process_pss_mib",
    ],
    "rlcore/rollout/versioned.py": [
        "VersionedEngine.info", "VersionedEngine.generate", "VersionedEngine.score",
        "VersionedEngine.receive_weights",
    ],
    "rlcore/rollout/engine.py": ["RolloutEngine.receive_weights"],
    "rlcore/sync/receiver.py": ["WeightReceiver.rlcore_receive_weights"],
    "rlcore/learner/rank.py": [
        "_sum_into", "Learner._inputs", "Learner._forward", "Learner._micro_batches",
        "Learner._backward", "Learner._step", "Learner.rl_step", "Learner.logprobs",
        "Learner.named_weights", "Learner.send_weights", "_token_logprobs",
    ],
    "rlcore/rollout/vllm_engine.py": [
        "RlcoreWorkerExtension._rlcore_load", "_load", "_redispatch_cpu_gemms",
        "VLLMEngine.generate", "VLLMEngine.score", "VLLMEngine._on_workers",
        "VLLMEngine._weights_loaded", "_prompts", "_completion",
    ],
    # the CPU receiver reads the sender's buffer in place (`_receive_in_place`)
    "rlcore/sync/ipc.py": [
        "IPCSender._send_bucket", "IPCSender._release", "receive_buckets_ipc", "_receive_in_place",
    ],
    **SAME,
}  # fmt: skip


def _source(path: str, rev: str | None) -> str:
    if rev is None:
        return (ROOT / path).read_text()
    return subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def _spans(tree: ast.Module) -> dict[str, tuple[int, int]]:
    """Qualified name -> (first line, last line) of every function and class, decorators in."""
    out: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + child.name
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                out[name] = (first, child.end_lineno or child.lineno)
                if isinstance(child, ast.ClassDef):
                    visit(child, name + ".")

    visit(tree, "")
    return out


def count(path: dict[str, list[str]], rev: str | None) -> dict[str, int]:
    """Lines per file of the named functions (a method inside a counted class once)."""
    out = {}
    for file, names in path.items():
        spans = _spans(ast.parse(_source(file, rev)))
        missing = [n for n in names if n not in spans]
        if missing:
            raise SystemExit(f"{file}: no {', '.join(missing)} (at {rev or 'the working tree'})")
        lines: set[int] = set()
        for n in names:
            first, last = spans[n]
            lines.update(range(first, last + 1))
        out[file] = len(lines)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default=None, help="a git revision (default: the working tree)")
    ap.add_argument("--path", choices=sorted(PATHS), default="now")
    ap.add_argument("--json", default=None, help="also write the counts here")
    args = ap.parse_args()
    counts = count(PATHS[args.path], args.rev)
    width = max(map(len, counts))
    for file, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{file:<{width}}  {n:5d}")
    total = sum(counts.values())
    print(f"{'total':<{width}}  {total:5d} lines in {len(counts)} files")
    if args.json:
        Path(args.json).write_text(json.dumps({"rev": args.rev, "files": counts, "total": total}))


PATHS = {"before": BEFORE, "now": NOW}

if __name__ == "__main__":
    main()
