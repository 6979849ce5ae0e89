"""`rlcore plan`: each actor's peak memory and each phase's time, predicted from the config alone.

    from rlcore.plan import local_hardware, make_plan
    p = make_plan(cfg, local_hardware())      # no Ray, no weights; torch is not imported
    p.fits, p.worst, suggest_fixes(cfg, p)     # and rlcore/plan/report.py prints it

The model of each term and its constants: docs/plan.md. `rlcore train` calls `check_fits` before
it writes the run directory and refuses a config that clearly cannot fit on this machine
(`plan.force=true` starts it anyway). Only what the config and the model's config.json say is
used, and lengths: the longest prompt (`plan.prompt_tokens`, or measured on the data by `rlcore
train`), the mean response as a fraction of max_tokens and the rows the learner skips (for time).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from typing import Any

from rlcore.plan.memory import (
    GIB,
    HEAVY_VERIFIERS,
    ActorMemory,
    Shapes,
    engine_memory,
    learner_memory,
    seq_tokens,
    small_actors,
)
from rlcore.plan.shapes import ModelShape, PlanError, model_shape
from rlcore.plan.speed import DEVICES, FALLBACK, Calibration, Device, speeds, step_seconds

__all__ = [
    "DEVICES",
    "Calibration",
    "Hardware",
    "Plan",
    "PlanError",
    "check_fits",
    "device_hardware",
    "local_hardware",
    "make_plan",
    "suggest_fixes",
]
DEFAULT_PROMPT_TOKENS = (
    128  # `rlcore plan` without plan.prompt_tokens: a chat prompt with a system turn
)
REFUSE_MARGIN = 1.1  # `rlcore train` refuses above this x the node's memory (the terms are bounds)


@dataclass(frozen=True)
class Hardware:
    """One node: its RAM and cores, and its GPUs (None: CPU only)."""

    name: str
    ram_gib: float
    cpus: int
    gpu: Device | None = None
    gpus: int = 0


def _meminfo_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    try:
        import psutil

        return float(psutil.virtual_memory().total) / GIB
    except ImportError:
        raise PlanError("this machine's memory is unknown (no /proc/meminfo, no psutil)") from None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _local_gpus() -> tuple[Device | None, int]:
    """This machine's GPUs through nvidia-smi (no torch): the table's entry for their name, with
    the memory the driver reports."""
    if shutil.which("nvidia-smi") is None:
        return None, 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, 0
    lines = [ln.rsplit(",", 1) for ln in out.splitlines() if "," in ln]
    if not lines:
        return None, 0
    name, mib = lines[0][0].strip(), float(lines[0][1])
    base = next((d for k, d in DEVICES.items() if k.split("-")[0] in name), DEVICES["H100"])
    return replace(base, name=name, memory_gib=mib / 1024), len(lines)


def local_hardware() -> Hardware:
    gpu, count = _local_gpus()
    cpus = cpu_count()
    ram = _meminfo_gib()
    return Hardware(f"this machine ({cpus} CPUs, {ram:.1f} GiB)", ram, cpus, gpu, count)


def device_hardware(name: str, node_ram_gib: float | None = None) -> Hardware:
    key = next((k for k in DEVICES if k.lower() == name.lower()), None)
    if key is None:
        raise PlanError(f"--device {name}: not one of {', '.join(DEVICES)}")
    d = DEVICES[key]
    ram = node_ram_gib or d.node_ram_gib
    return Hardware(f"{d.gpus_per_node} x {d.name} node", ram, 0, d, d.gpus_per_node)


@dataclass
class Plan:
    actors: list[ActorMemory]
    time: dict[str, Any]
    hardware: Hardware
    lens: Shapes
    shape: ModelShape
    node_total: float  # bytes of one node's RAM the actors may hold (PSS + reserved)
    margin: float = 1.0  # refused above margin x the memory (rlcore train: REFUSE_MARGIN)
    over: list[str] = field(default_factory=list)  # what does not fit, in words
    worst: str = ""  # the actor to change first

    @property
    def fits(self) -> bool:
        return not self.over


def _judge_bytes(cfg: Any) -> float:
    """Weights of the models the verifier options name (a judge's `model_path`), fp32."""
    total = 0.0
    for opts in dict(cfg.verifier.options).values():
        path = opts.get("model_path") if isinstance(opts, dict) else None
        if path:
            try:
                total += model_shape(str(path)).params * 4.0
            except PlanError:
                pass
    return total


def _verifier_names(cfg: Any, specs: list[Any] | None = None) -> set[str]:
    """The verifier names of the rows (`specs`) and of the config (data.verifier, the entries of
    data.train and data.heldout); ValueError/TypeError on a bad spec."""
    from rlcore.verifiers.build import parse_spec

    d = cfg.data
    found = list(specs or []) + [d.verifier]
    for source in (d.train, d.heldout):
        for entry in source if isinstance(source, list) else [source]:
            if isinstance(entry, dict) and entry.get("verifier"):
                found.append(entry["verifier"])
    return {n for spec in found for n, _ in parse_spec(spec)}


def config_model_verifiers(cfg: Any, specs: list[Any] | None = None) -> int:
    """Model-based verifier actors the run starts: verifier.model_actors when a verifier of the
    rows (or, without rows, of the config) holds a model; a periodic evaluation counts too, since
    suites may name a judge (an upper bound)."""
    from rlcore.verifiers.build import is_model_based

    if cfg.verifier.model_actors == 0:
        return 0
    if cfg.eval.every:
        return cfg.verifier.model_actors
    options = dict(cfg.verifier.options)
    try:
        model_based = any(is_model_based(n, options) for n in _verifier_names(cfg, specs))
    except (KeyError, ValueError, TypeError, ImportError, AttributeError):
        model_based = True  # a bad name or spec fails at launch, with its own message
    return cfg.verifier.model_actors if model_based else 0


def heavy_verifiers(cfg: Any) -> bool:
    """A verifier of the config imports language identification in every pool process
    (memory.HEAVY_VERIFIERS: `language`, `ifeval`), or a periodic evaluation may (its suites)."""
    from rlcore.verifiers.registry import BUILTINS

    if cfg.eval.every:
        return True
    options = dict(cfg.verifier.options)
    try:
        names = _verifier_names(cfg)
    except (ValueError, TypeError):
        return True  # fails at launch, with its own message
    for name in names:
        opts = options.get(name)
        path = opts.get("path") if isinstance(opts, dict) else None
        target = str(path or BUILTINS.get(name, name))
        if target.startswith(HEAVY_VERIFIERS):
            return True
    return False


def make_plan(
    cfg: Any,
    hw: Hardware,
    cal: Calibration = FALLBACK,
    model_verifiers: int | None = None,
    prompt_tokens: int | None = None,
    margin: float = 1.0,
) -> Plan:
    """Every actor's memory and every phase's time for `cfg` on `hw` (one node of it); it does
    not fit when a node's or a GPU's predicted total exceeds `margin` x its memory."""
    from rlcore.algo import build_algorithm

    shape = model_shape(cfg.model.path)
    prompt = prompt_tokens or cfg.plan.prompt_tokens or DEFAULT_PROMPT_TOKENS
    prompt = min(prompt, cfg.rollout.max_model_len - 1)
    lens = Shapes(prompt, seq_tokens(cfg, prompt))
    algo = build_algorithm(cfg)
    lc, rc = cfg.learner, cfg.rollout
    actors = [
        learner_memory(cfg, shape, lens, r, False, algo.needs_reference)
        for r in range(lc.world_size)
    ]
    if algo.needs_critic:
        actors += [learner_memory(cfg, shape, lens, r, True, False) for r in range(lc.world_size)]
    gpu_gib = None  # engines on CPU; 0.0: on GPUs of a size not known here (not checked)
    if cfg.gpus > 0:
        gpu_gib = hw.gpu.memory_gib if hw.gpu is not None else 0.0
    actors += [engine_memory(cfg, shape, lens, i, gpu_gib) for i in range(rc.num_workers)]
    if model_verifiers is None:
        model_verifiers = config_model_verifiers(cfg)
    actors += small_actors(cfg, lens, model_verifiers, _judge_bytes(cfg), heavy_verifiers(cfg))
    device = hw.gpu if (hw.gpu is not None and (cfg.gpus > 0 or lc.gpus_per_rank > 0)) else None
    frac, skip = cfg.plan.response_frac, cfg.plan.skip_frac
    time = step_seconds(cfg, shape, speeds(cfg, device, cal), prompt, frac, skip, algo.needs_critic)
    nodes = max(cfg.resources.nodes, 1)
    node_total = sum(a.host_bound for a in actors) / nodes  # pack: an even share per node
    plan = Plan(actors, time, hw, lens, shape, node_total, margin)
    _judge(plan)
    return plan


def _judge(plan: Plan) -> None:
    hw, m = plan.hardware, plan.margin
    limit = f" (refused above {m:g} x)" if m != 1.0 else ""
    for a in plan.actors:
        if a.on_gpu and hw.gpu is not None and a.total > m * hw.gpu.memory_gib * GIB:
            plan.over.append(
                f"{a.name} needs {a.total / GIB:.1f} GiB on its GPU; a {hw.gpu.name} has "
                f"{hw.gpu.memory_gib:.1f} GiB{limit}"
            )
            plan.worst = plan.worst or a.name
    if plan.node_total > m * hw.ram_gib * GIB:
        big = max(plan.actors, key=lambda a: a.host_bound)
        plan.over.append(
            f"the actors need {plan.node_total / GIB:.1f} GiB of a node's memory; {hw.name} has "
            f"{hw.ram_gib:.1f} GiB{limit} (largest: {big.name}, {big.host_bound / GIB:.1f} GiB)"
        )
        plan.worst = plan.worst or big.name


def with_overrides(cfg: Any, items: dict[str, Any]) -> Any:
    """`cfg` with dotted keys replaced (frozen dataclasses; no validation)."""
    for key, value in items.items():
        head, _, rest = key.partition(".")
        if rest:
            cfg = replace(cfg, **{head: with_overrides(getattr(cfg, head), {rest: value})})
        else:
            cfg = replace(cfg, **{head: value})
    return cfg


def _candidates(cfg: Any, plan: Plan) -> list[dict[str, Any]]:
    """Single changes that free memory, largest first within a kind (the least slowdown)."""
    lc, rc = cfg.learner, cfg.rollout
    out: list[dict[str, Any]] = []
    if lc.max_tokens_per_micro_batch == 0:
        out += [{"learner.micro_batch_size": mb} for mb in _halvings(lc.micro_batch_size, 1)]
    else:
        budgets = _halvings(lc.max_tokens_per_micro_batch, plan.lens.seq_tokens)
        out += [{"learner.max_tokens_per_micro_batch": b} for b in budgets]
    if not lc.gradient_checkpointing:
        out.append({"learner.gradient_checkpointing": True})
        out += [
            {"learner.gradient_checkpointing": True, "learner.micro_batch_size": mb}
            for mb in _halvings(lc.micro_batch_size, 1)
            if lc.max_tokens_per_micro_batch == 0
        ]
    if lc.world_size > 1 and lc.zero_stage < 3:
        out.append({"learner.zero_stage": 3})
    if lc.gpus_per_rank > 0 and lc.zero_stage > 0 and not lc.offload_optimizer:
        out.append({"learner.offload_optimizer": True})
    room = plan.lens.prompt_tokens + max(
        16, rc.max_tokens // 8
    )  # a window that leaves answers room
    out += [{"rollout.max_model_len": n} for n in _halvings(rc.max_model_len, room)]
    return out


def _halvings(value: int, least: int) -> list[int]:
    out, v = [], value // 2
    while v >= max(least, 1):
        out.append(v)
        v //= 2
    return out


def suggest_fixes(cfg: Any, plan: Plan, cal: Calibration = FALLBACK, limit: int = 4) -> list[str]:
    """Overrides (`key=value ...`) that each make `cfg` fit, re-checked by the planner; one per
    key set (the largest value that fits), ordered by predicted step time, a shorter
    rollout.max_model_len last (it changes what the run samples)."""
    found: dict[tuple[str, ...], tuple[float, str]] = {}
    for change in _candidates(cfg, plan):
        keys = tuple(sorted(change))
        if keys in found:
            continue
        fixed = with_overrides(cfg, change)
        lens = plan.lens
        p = make_plan(
            fixed, plan.hardware, cal, _model_verifiers(plan), lens.prompt_tokens, plan.margin
        )
        if p.fits:
            cost = p.time["step"] + (1e9 if "rollout.max_model_len" in change else 0.0)
            text = " ".join(f"{k}={_fmt(v)}" for k, v in change.items())
            found[keys] = (cost, text)
    return [text for _, text in sorted(found.values())][:limit]


def _model_verifiers(plan: Plan) -> int:
    return sum(a.role == "model_verifier" for a in plan.actors)


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def runs_locally(cfg: Any) -> bool:
    """The actors run on this machine (no cluster address, no placement shape)."""
    return not cfg.ray_address and cfg.resources.nodes == 0


def check_fits(cfg: Any, prompt_tokens: int, model_verifiers: int) -> Plan | None:
    """`rlcore train`'s check: None on a cluster (its nodes are not this machine); else the plan,
    with `over` filled when the predicted peak exceeds REFUSE_MARGIN x this machine's memory."""
    if not runs_locally(cfg):
        return None
    return make_plan(cfg, local_hardware(), FALLBACK, model_verifiers, prompt_tokens, REFUSE_MARGIN)
