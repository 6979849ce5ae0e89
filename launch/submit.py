"""`rlcore submit`: run `rlcore train` on a Ray cluster as a Ray job.

    rlcore submit configs/gpu_zero_dapo_qwen1.5b.yaml run_dir=/shared/runs/dapo \\
        --address http://HEAD:8265 --follow

What it does: checks the config here (schema and cross-field rules; the GPU count is the cluster's
business, checked when the run starts), then submits `python -m rlcore.launch.cli train CONFIG
overrides... ray_address=auto` through Ray's job submission API with a runtime environment:

  working_dir   --working-dir (default: the current directory), uploaded; the job runs inside it, so
                CONFIG and relative data paths must lie inside it. `.gitignore` and `.rayignore`
                apply (the repository's .rayignore leaves out the package sources and .git).
  py_modules    this machine's rlcore package (as installed: rlcore/ with launch/, verifiers/ and
                kernels/ inside), unless --installed says the cluster's Python already has rlcore
                (e.g. an image built with `pip install .[gpu]`).
  pip, env_vars --pip REQ and --env K=V, repeatable.

It prints the job id; with --follow it streams the logs and exits with the job's outcome (0 when it
SUCCEEDED, 1 otherwise). Token, connection and config problems exit 2 with a message (launch/jobs.py).
The run directory is created on the node where the job's driver runs: give `run_dir=` on storage the
nodes share to keep checkpoints and metrics.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from rlcore.launch.jobs import JobsError, add_client_args, connect, exit_code, follow

from rlcore.threads import THREAD_VARS

PACKAGE_PARTS = ("launch", "verifiers", "kernels")  # folders mapped into rlcore (pyproject.toml)


def stage_package(dest: Path) -> Path:
    """A copy of the importable rlcore package laid out as installed, for runtime_env py_modules
    (an editable install maps launch/, verifiers/ and kernels/ from elsewhere)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    root = dest / "rlcore"
    shutil.copytree(_package_dir("rlcore"), root, ignore=ignore)
    for part in PACKAGE_PARTS:
        if not (root / part).is_dir():
            shutil.copytree(_package_dir(f"rlcore.{part}"), root / part, ignore=ignore)
    return root


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise JobsError(
            f"cannot find the package {name} to ship; install rlcore or use --installed"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def split_config(config: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """As `rlcore train`: the first argument is a YAML file unless it is a key=value."""
    if config and "=" in config:
        return None, [config, *overrides]
    return config, list(overrides)


def entrypoint(config_rel: str | None, overrides: list[str]) -> str:
    args = [config_rel] if config_rel else []
    args += overrides
    if not any(o.startswith("ray_address=") for o in overrides):
        args.append("ray_address=auto")
    return shlex.join(["python", "-m", "rlcore.launch.cli", "train", *args])


def check_config(config: str | None, overrides: list[str], workdir: Path) -> str | None:
    """The config's path relative to the working dir, after checking it here (schema and rules)."""
    from rlcore import preflight
    from rlcore.config import ConfigError, load_config

    try:
        preflight.check(load_config(config, [*overrides, "ray_address=auto"]), check_machine=False)
    except ConfigError as e:
        raise JobsError(f"config error: {e}") from None
    if config is None:
        return None
    path = Path(config).resolve()
    try:
        return str(path.relative_to(workdir))
    except ValueError:
        raise JobsError(
            f"{config} is outside the working directory {workdir}, which is what the job gets; "
            "move it inside or pass --working-dir"
        ) from None


def runtime_env(
    args: argparse.Namespace, workdir: Path, package: Path | None, grace_s: float = 0.0
) -> dict[str, Any]:
    """grace_s: the run's preempt_grace_s. `rlcore jobs stop` sends SIGTERM, and Ray's job
    supervisor sends SIGKILL RAY_JOB_STOP_WAIT_TIME_S later (3 s by default, too soon for a
    checkpoint): the job gets the grace period plus 30 s, unless --env sets it."""
    env: dict[str, Any] = {"working_dir": str(workdir)}
    if package is not None:
        env["py_modules"] = [str(package)]
    if args.pip:
        env["pip"] = list(args.pip)
    if args.env:
        pairs = [kv.partition("=") for kv in args.env]
        bad = [k for k, eq, _ in pairs if not eq or not k]
        if bad:
            raise JobsError(f"--env wants KEY=VALUE, got {bad[0]!r}")
        owned = [k for k, _, _ in pairs if k in OWNED_ENV]
        if owned:
            raise JobsError(
                f"--env {owned[0]}: rlcore sets it for every actor ({OWNED_ENV[owned[0]]}); "
                "drop it from --env"
            )
        env["env_vars"] = {k: v for k, _, v in pairs}
    if grace_s > 0:
        env.setdefault("env_vars", {}).setdefault(
            "RAY_JOB_STOP_WAIT_TIME_S", str(int(grace_s) + 30)
        )
    return env


# Environment variables rlcore sets for its actors itself, and the config key that decides them:
# a job-level value would be overridden per actor without a word, so --env refuses them.
OWNED_ENV = {
    **{
        k: "from the planned threads: set resources.learner_threads / resources.rollout_threads"
        for k in THREAD_VARS
    },
    "TOKENIZERS_PARALLELISM": "always false: the verifier pools fork",
    "PYTHONWARNINGS": "always ignore in actors",
}


def submit(args: argparse.Namespace) -> int:
    workdir = Path(args.working_dir).resolve()
    if not workdir.is_dir():
        raise JobsError(f"--working-dir {args.working_dir} is not a directory")
    config, overrides = split_config(args.config, args.overrides)
    config_rel = check_config(config, overrides, workdir)
    from rlcore.config import load_config

    grace_s = load_config(config, [*overrides, "ray_address=auto"]).preempt_grace_s
    client = connect(args.address, args.token)
    with tempfile.TemporaryDirectory(prefix="rlcore-submit-") as tmp:
        package = None if args.installed else stage_package(Path(tmp))
        try:
            job_id = client.submit_job(
                entrypoint=entrypoint(config_rel, overrides),
                runtime_env=runtime_env(args, workdir, package, grace_s),
                submission_id=args.submission_id,
            )
        except RuntimeError as e:  # the API's refusals: a taken id, a bad runtime_env, too large
            raise JobsError(f"the cluster refused the job: {e}") from None
    print(job_id, flush=True)
    if not args.follow:
        print(
            f"follow it with: rlcore jobs logs {job_id} --follow --address {args.address}",
            file=sys.stderr,
        )
        return 0
    status = follow(client, job_id)
    print(f"\njob {job_id}: {status}", file=sys.stderr)
    return exit_code(status)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rlcore submit", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", help="a YAML file of overrides (configs/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=100")
    add_client_args(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="stream logs until it ends")
    parser.add_argument("--working-dir", default=".", help="uploaded; the job runs inside it")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="the cluster's Python has rlcore installed: do not ship this machine's package",
    )
    parser.add_argument("--pip", action="append", default=[], help="a pip requirement to install")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the job")
    parser.add_argument("--submission-id", help="the job id to use (default: Ray picks one)")
    args = parser.parse_args(argv)
    try:
        return submit(args)
    except JobsError as e:
        print(f"rlcore submit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nrlcore submit: interrupted (a submitted job keeps running)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
