"""The checks of a config that need the subsystems it names, run once before a run starts.

    cfg = load_config("configs/tiny_zero.yaml", ["rollout.n=4"])
    preflight.check(cfg)  # ConfigError naming the key; `rlcore train` exits 2

`rlcore.config` checks what the schema alone can (types, ranges, rules among its fields) and
imports nothing else, so any tool loads a config cheaply. What needs more lives here: the
algorithm and its options, eval suites, tool-call formats, tracker packages, the placement of the
roles, and this machine's GPUs. `rlcore train`, `rlcore plan`, `rlcore submit` and `train()` call
`check`.
"""

from __future__ import annotations

import torch

from rlcore.algo import Algorithm, build_algorithm
from rlcore.config import ConfigError, TrainConfig
from rlcore.eval.periodic import suite_config
from rlcore.eval.suite import SuiteError, load_suite
from rlcore.placement import check_shape, describe, plan
from rlcore.rollout.multiturn import PARSERS
from rlcore.trackers import missing_backend


def check(cfg: TrainConfig, check_machine: bool = True) -> None:
    """ConfigError for the first rule `cfg` breaks. check_machine=False skips what depends on this
    machine (its GPU count): `rlcore submit`, `rlcore plan` and CI check a GPU config on a machine
    that will not run it."""
    algo = _algorithm(cfg)
    if cfg.algo.critic_warmup_steps and not algo.needs_critic:
        raise ConfigError(
            f"algo.critic_warmup_steps: algo.type={cfg.algo.type} trains no critic; remove it"
        )
    try:
        if cfg.eval.every:
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
    if check_machine:
        _check_gpus(cfg)
    why = missing_backend(list(cfg.log.backends))
    if why:
        raise ConfigError(why)
    _check_placement(cfg, algo)


def _algorithm(cfg: TrainConfig) -> Algorithm:
    try:
        return build_algorithm(cfg)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"algo: {e}") from None


def _check_gpus(cfg: TrainConfig) -> None:
    # On a cluster (ray_address, or a resources section) the driver's machine may have no GPU at
    # all: rlcore/placement.py checks the cluster's resources when the run starts instead.
    needs_gpu = cfg.gpus > 0 or cfg.learner.gpus_per_rank > 0
    if not needs_gpu or cfg.ray_address or cfg.resources.nodes:
        return
    have = torch.cuda.device_count()
    want = max(cfg.gpus, cfg.learner.gpus_per_rank * cfg.learner.world_size)
    if have < want:
        raise ConfigError(
            f"gpus: this config asks for {want} GPU(s) (gpus={cfg.gpus}, learner.gpus_per_rank="
            f"{cfg.learner.gpus_per_rank}) but this machine has {have}; run a CPU config "
            "(configs/tiny_coldstart.yaml) or set gpus=0 learner.gpus_per_rank=0"
        )


def _check_placement(cfg: TrainConfig, algo: Algorithm) -> None:
    bundles = plan(cfg, algo.needs_critic)
    check_shape(cfg, bundles)
    need = sum(b.gpus for b in bundles)
    # NCCL broadcast needs every rank on its own GPU: a shortfall would leave an actor waiting
    # for a GPU forever instead of failing
    if cfg.gpus and cfg.sync.type != "ipc" and need > cfg.gpus:
        raise ConfigError(
            f"gpus={cfg.gpus} but the roles need {need} GPUs (sync.type={cfg.sync.type} gives every "
            f"learner rank and engine GPUs of its own): {describe(bundles)}"
        )
