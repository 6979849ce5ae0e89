"""The `rlcore` command: the CLI owns the terminal (logging, progress bars, tables, exit codes).

rlcore train [CONFIG.yaml] [key=value ...]     run the loop ([sft] -> rl) on Ray
rlcore verify IN.jsonl [-o OUT.jsonl]          score responses with any verifier
rlcore doctor MODEL [--json]                   check a chat template for silent problems
rlcore eval CHECKPOINT... [--suite NAME]       pass@k sweeps over capability buckets
rlcore data decontam TRAIN... --against SUITE  training rows that overlap an eval suite
rlcore submit CONFIG [key=value ...] --address URL   run `rlcore train` as a Ray job on a cluster
rlcore jobs list|status|logs|stop [JOB] --address URL   submitted jobs (and `jobs stacks RUN_DIR`)
rlcore stacks RUN_DIR                          every process's Python stack of a live run
rlcore replay RUN_DIR --step N                 rebuild RL step N and compare it with the log
rlcore plan [CONFIG] [key=value ...] [--device NAME] [--json PATH] [--compare RUN_DIR]
                                               predicted memory per actor and time per phase
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("rlcore").setLevel(logging.INFO)


class _Bar:
    """A tqdm bar per stage (sft_distill counts the prompts answered); RL steps show reward,
    accuracy and the time split in the postfix."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, step: int, total: int, m: dict[str, Any]) -> None:
        from tqdm import tqdm

        if stage == "eval":
            tqdm.write(f"held-out accuracy after {m['stage']}: {m['accuracy']:.3f}")
            return
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="step", dynamic_ncols=True)
        if stage == "rl":
            bar.set_postfix(
                reward=f"{m['reward_mean']:.2f}",
                acc=f"{m['accuracy']:.2f}",
                len=f"{m['response_len']:.0f}",
                t=f"{m['time_rollout']:.1f}/{m['time_verify']:.1f}/{m['time_learn']:.1f}/{m['time_sync']:.1f}",
            )
        elif "loss" in m:
            bar.set_postfix(loss=f"{m['loss']:.3f}")
        elif "rows_kept" in m:  # sft_distill: the start model's answers, filtered
            bar.set_postfix(kept=f"{m['rows_kept']:.0f}/{m['rows']:.0f}")
        bar.update(step - bar.n)
        if step >= total:
            bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from rlcore import preflight
    from rlcore.config import ConfigError, load_config

    config_path = None
    overrides = list(args.overrides)
    if args.config and "=" in args.config:
        overrides.insert(0, args.config)
    elif args.config:
        config_path = args.config
    try:
        cfg = load_config(config_path, overrides)
        preflight.check(cfg)
    except ConfigError as e:
        print(f"rlcore train: config error: {e}", file=sys.stderr)
        return 2
    from rlcore.data.dataset import DataError
    from rlcore.preempt import Preempted
    from rlcore.trainer import RunFailed, train

    try:
        summary = train(cfg, progress=_Bar())
    except (DataError, FileNotFoundError, FileExistsError, ConfigError) as e:
        print(f"rlcore train: error: {e}", file=sys.stderr)
        return 2
    except Preempted as p:
        resume = [f"resume={p.run_dir}"] if p.run_dir else []  # none: stopped while starting
        again = " ".join([args.config or "", *args.overrides, *resume])
        where = (
            f"checkpoint {p.checkpoint}" if p.checkpoint else "no checkpoint yet: it starts over"
        )
        print(
            f"rlcore train: stopped by {p.signame} after step {p.step} ({where}); every actor "
            f"is stopped. Continue with:\n  rlcore train {again.strip()}",
            file=sys.stderr,
        )
        return 128 + p.signum
    except RunFailed as e:
        print(
            f"rlcore train: error: {e}\nThe run stopped; every actor is stopped. Continue from "
            f"its last checkpoint with resume={e.run_dir}",
            file=sys.stderr,
        )
        return 1
    from rlcore.metrics_log import summary_table

    print(summary_table(summary))
    print(f"\nrun directory: {summary['run_dir']}")
    return 0


def cmd_stacks(run_dir: str) -> int:
    """Dumps the stacks of a live run's processes on this machine into RUN_DIR/hangs/<time>/."""
    from pathlib import Path

    from rlcore.hangs import dump_stacks

    if not (Path(run_dir) / "hangs" / "pids.json").is_file():
        print(f"error: {run_dir}/hangs/pids.json not found: not a run directory", file=sys.stderr)
        return 2
    out = dump_stacks(run_dir, "rlcore stacks")
    print((out / "summary.txt").read_text(), end="")
    print(f"stacks in {out}")
    return 0


def cmd_replay(run_dir: str, step: int) -> int:
    """0 when every metric of the step replays equal, 1 when one differs, 2 on bad input."""
    from rlcore.replay import replay, report_table

    try:
        report = replay(run_dir, step)
    except (OSError, ValueError) as e:
        print(f"rlcore replay: error: {e}", file=sys.stderr)
        return 2
    print(report_table(report))
    return 1 if report.differences else 0


def cmd_plan(argv: list[str]) -> int:
    """0: the config fits the node (this machine, or --device's); 2: it does not (the actor and the
    fixes are printed); 1: the config or the model cannot be planned. No Ray, no weights."""
    import json
    from pathlib import Path

    from rlcore import preflight
    from rlcore.config import ConfigError, load_config
    from rlcore.plan import (
        PlanError,
        device_hardware,
        local_hardware,
        make_plan,
        report,
        suggest_fixes,
        with_overrides,
    )
    from rlcore.plan.speed import Calibration, load_calibration

    p = argparse.ArgumentParser(prog="rlcore plan", description=cmd_plan.__doc__)
    p.add_argument("config", nargs="?", help="a YAML file (default with --compare: the run's)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. learner.zero_stage=3")
    p.add_argument("--device", help="plan for a node of these GPUs: " + ", ".join(_devices()))
    p.add_argument("--node-ram", type=float, help="GiB of RAM per node (with --device)")
    p.add_argument("--json", help="write the plan as JSON here")
    p.add_argument("--compare", metavar="RUN_DIR", help="predicted vs measured for a finished run")
    p.add_argument(
        "--calibration",
        help="a JSON of gemm_flops, bf16_flops, mem_bw for this CPU (default: measured once, cached)",
    )
    args = p.parse_intermixed_args(argv)  # options may come between the overrides
    overrides = list(args.overrides)
    config = args.config
    if config and "=" in config:
        overrides.insert(0, config)
        config = None
    if config is None and args.compare:
        config = str(Path(args.compare) / "config.yaml")
    try:
        got = report.measured(args.compare) if args.compare else None
        cfg = load_config(config, overrides)
        preflight.check(cfg, check_machine=False)
        if got is not None:  # the run's own response lengths and skipped rows, not the guesses
            cfg = with_overrides(cfg, report.observed(cfg, got))
        hw = device_hardware(args.device, args.node_ram) if args.device else local_hardware()
        if args.calibration:
            c = json.loads(Path(args.calibration).read_text())
            cal = Calibration(c["gemm_flops"], c["bf16_flops"], c["mem_bw"], args.calibration)
        else:
            cal = load_calibration(measure=not args.device)
        plan = make_plan(cfg, hw, cal)
    except (ConfigError, PlanError, OSError, KeyError, ValueError) as e:
        print(f"rlcore plan: error: {e}", file=sys.stderr)
        return 1
    fixes = [] if plan.fits else suggest_fixes(cfg, plan, cal)
    print(report.memory_table(plan))
    print(report.time_table(plan, "the table's " + args.device if args.device else cal.source))
    print(report.verdict(plan, fixes))
    if got is not None:
        print(f"\npredicted vs measured ({args.compare}, median of RL steps 2..{got['steps']}):")
        print(report.compare_table(plan, got))
    if args.json:
        out = report.to_json(plan, fixes)
        if got is not None:
            out["measured"] = got
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0 if plan.fits else 2


def _devices() -> list[str]:
    from rlcore.plan.speed import DEVICES

    return list(DEVICES)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="rlcore", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train (the config's stages: [sft] -> rl)")
    p_train.add_argument("config", nargs="?", help="a YAML file of overrides (configs/*.yaml)")
    p_train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. rollout.n=4")
    p_train.add_argument("-q", "--quiet", action="store_true", help="only warnings and the bar")
    sub.add_parser("verify", help="score a JSONL of responses (rlcore verify -h)", add_help=False)
    sub.add_parser("plan", help="predicted memory and step time (rlcore plan -h)", add_help=False)
    sub.add_parser("doctor", help="check a chat template (rlcore doctor -h)", add_help=False)
    sub.add_parser("eval", help="pass@k sweeps of checkpoints (rlcore eval -h)", add_help=False)
    sub.add_parser("data", help="data tools: decontam (rlcore data -h)", add_help=False)
    sub.add_parser("submit", help="train on a Ray cluster (rlcore submit -h)", add_help=False)
    sub.add_parser("jobs", help="submitted jobs: list, logs, stop (rlcore jobs -h)", add_help=False)
    p_stacks = sub.add_parser("stacks", help="dump every process's stack of a live run")
    p_stacks.add_argument("run_dir", help="the run's directory (it lists its processes)")
    p_replay = sub.add_parser("replay", help="rebuild an RL step and compare it with the log")
    p_replay.add_argument("run_dir", help="the run's directory")
    p_replay.add_argument("--step", type=int, required=True, help="the RL step to rebuild")
    if argv and argv[0] in ("submit", "jobs"):
        if argv[0] == "submit":
            from rlcore.launch.submit import main as cluster_main
        else:
            from rlcore.launch.jobs import main as cluster_main
        return cluster_main(argv[1:])
    if argv and argv[0] == "plan":
        return cmd_plan(argv[1:])
    if argv and argv[0] == "verify":
        from rlcore.launch.verify import main as verify_main

        return verify_main(argv[1:])
    if argv and argv[0] == "doctor":
        from rlcore.launch.doctor import main as doctor_main

        return doctor_main(argv[1:])
    if argv and argv[0] in ("eval", "data"):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if argv[0] == "eval":
            from rlcore.launch.eval import main as sub_main
        else:
            from rlcore.launch.data import main as sub_main
        return sub_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "stacks":
        return cmd_stacks(args.run_dir)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.command == "replay":
        _setup_logging(verbose=False)
        return cmd_replay(args.run_dir, args.step)
    _setup_logging(verbose=not args.quiet)
    return cmd_train(args)


if __name__ == "__main__":
    sys.exit(main())
