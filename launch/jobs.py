"""`rlcore jobs list|status|logs|stop|stacks`: the life cycle of runs submitted with `rlcore submit`.

    rlcore jobs list --address http://HEAD:8265
    rlcore jobs logs raysubmit_XXXX --address http://HEAD:8265 [--follow]
    rlcore jobs stop raysubmit_XXXX --address http://HEAD:8265
    rlcore jobs stacks RUN_DIR --address http://HEAD:8265   # `rlcore stacks RUN_DIR` on the head

Everything goes through Ray's job submission API (the dashboard's HTTP port, 8265 by default).
Ray 2.60 clusters require a token (RAY_AUTH_MODE=token). The token is taken, in this order, from
--token, $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token (where Ray itself
looks), and sent as an `Authorization: Bearer` header. A cluster without token auth ignores it. A
missing or rejected token, an unreachable head and an unknown job id are one-paragraph messages with
what to do (exit 2), never tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

TOKEN_HELP = (
    "cluster token (Ray token auth); default: $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH, "
    "then ~/.ray/auth_token"
)


class JobsError(Exception):
    """A failure with a message the user can act on (printed as is, exit 2)."""


def find_token(explicit: str | None) -> tuple[str | None, str]:
    """(token, where it came from), in Ray's own order after an explicit --token."""
    if explicit:
        return explicit.strip(), "--token"
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip(), "$RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        path = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).expanduser()
        if not path.is_file():
            raise JobsError(
                f"RAY_AUTH_TOKEN_PATH={path} does not exist: copy the cluster's token there "
                "(on the head node: `ray get-auth-token`), or unset it"
            )
        return path.read_text().strip(), f"$RAY_AUTH_TOKEN_PATH ({path})"
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file():
        return default.read_text().strip(), str(default)
    return None, "nowhere"


def connect(address: str | None, token: str | None) -> Any:
    """A JobSubmissionClient for the dashboard at `address`, or a JobsError saying what to do."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    if not address:
        raise JobsError(
            "no cluster address: pass --address http://HEAD:8265 (the Ray dashboard) or set "
            "RAY_ADDRESS"
        )
    value, source = find_token(token)
    headers = {"Authorization": f"Bearer {value}"} if value else None
    try:
        return JobSubmissionClient(address, headers=headers)
    except AuthenticationError:
        if value is None:
            raise JobsError(
                f"the cluster at {address} requires a token (Ray token authentication) and none "
                "was found. Print it on the head node with `ray get-auth-token`, then pass "
                "--token TOKEN, set RAY_AUTH_TOKEN, or save it to ~/.ray/auth_token "
                "(RAY_AUTH_TOKEN_PATH=FILE for another file)"
            ) from None
        raise JobsError(
            f"the cluster at {address} rejected the token from {source}: it is not this "
            "cluster's token. Print the right one on the head node with `ray get-auth-token` and "
            "pass it with --token, RAY_AUTH_TOKEN or ~/.ray/auth_token"
        ) from None
    except ConnectionError as e:
        raise JobsError(
            f"cannot reach the Ray dashboard at {address} ({e}). Is the head up and its "
            "dashboard port open? From outside the cluster: `ssh -L 8265:localhost:8265 HEAD` "
            "and --address http://127.0.0.1:8265"
        ) from None


def follow(client: Any, job_id: str) -> str:
    """Streams the job's logs to stdout until it ends; returns its final status name."""

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    import aiohttp

    try:
        asyncio.run(tail())
    except (RuntimeError, OSError, aiohttp.ClientError) as e:  # the stream broke: poll instead
        print(f"rlcore: log stream ended early ({e}); waiting for the job", file=sys.stderr)
    while True:
        status = client.get_job_status(job_id)
        if status.is_terminal():
            return str(status.value)
        time.sleep(2.0)


def exit_code(status: str) -> int:
    return 0 if status == "SUCCEEDED" else 1


def _call(fn: Any, *args: Any) -> Any:
    """Turns the API's `RuntimeError("Request failed with status code 404 ...")` into a JobsError."""
    try:
        return fn(*args)
    except RuntimeError as e:
        if "404" in str(e) or "does not exist" in str(e):
            raise JobsError(f"no such job: {args[0] if args else ''} ({e})") from None
        raise


def cmd_list(client: Any) -> int:
    jobs = sorted(client.list_jobs(), key=lambda j: j.start_time or 0)
    print(f"{'job id':<28} {'status':<10} {'started':<19} entrypoint")
    for j in jobs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((j.start_time or 0) / 1000))
        entry = j.entrypoint if len(j.entrypoint) <= 90 else j.entrypoint[:87] + "..."
        print(f"{j.submission_id or j.job_id:<28} {j.status.value:<10} {started:<19} {entry}")
    return 0


def cmd_status(client: Any, job_id: str) -> int:
    info = _call(client.get_job_info, job_id)
    print(f"{job_id}: {info.status.value}" + (f" ({info.message})" if info.message else ""))
    return 0


def cmd_logs(client: Any, job_id: str, tail: bool) -> int:
    if tail:
        _call(client.get_job_status, job_id)
        status = follow(client, job_id)
        print(f"\njob {job_id}: {status}", file=sys.stderr)
        return exit_code(status)
    sys.stdout.write(_call(client.get_job_logs, job_id))
    return 0


def cmd_stop(client: Any, job_id: str, wait: bool) -> int:
    stopped = _call(client.stop_job, job_id)
    status = client.get_job_status(job_id)
    while wait and not status.is_terminal():
        time.sleep(1.0)
        status = client.get_job_status(job_id)
    print(f"{job_id}: {'stop requested' if stopped else 'already ended'}; now {status.value}")
    return 0


def cmd_stacks(client: Any, run_dir: str) -> int:
    """`rlcore stacks RUN_DIR` as a job of its own: job drivers run on the head node, where the
    run's driver and the actors that share its node are signalled; the dump is printed here."""
    import shlex

    entry = shlex.join(["python", "-m", "rlcore.launch.cli", "stacks", run_dir])
    job_id = client.submit_job(entrypoint=entry)
    status = follow(client, job_id)
    return exit_code(status)


def add_client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        help="the Ray dashboard, http://HEAD:8265 (default: $RAY_ADDRESS)",
    )
    p.add_argument("--token", help=TOKEN_HELP)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rlcore jobs", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    add_client_args(sub.add_parser("list", help="every job on the cluster"))
    for name, text in (
        ("status", "a job's status"),
        ("logs", "a job's logs"),
        ("stop", "stop a job"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id")
        add_client_args(p)
        if name == "logs":
            p.add_argument("-f", "--follow", action="store_true", help="stream until it ends")
        if name == "stop":
            p.add_argument("--wait", action="store_true", help="until the job has ended")
    p = sub.add_parser("stacks", help="every process's stack of a live run (on the head node)")
    p.add_argument("run_dir", help="the run's directory as the head node sees it")
    add_client_args(p)
    args = parser.parse_args(argv)
    try:
        client = connect(args.address, args.token)
        if args.action == "list":
            return cmd_list(client)
        if args.action == "status":
            return cmd_status(client, args.job_id)
        if args.action == "logs":
            return cmd_logs(client, args.job_id, args.follow)
        if args.action == "stacks":
            return cmd_stacks(client, args.run_dir)
        return cmd_stop(client, args.job_id, args.wait)
    except JobsError as e:
        print(f"rlcore jobs: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nrlcore jobs: interrupted (the job keeps running)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
