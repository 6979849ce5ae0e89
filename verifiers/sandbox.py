"""Run untrusted Python (model-generated code is hostile input) in a throwaway sandbox.

`run_python(source, stdin=..., limits=...)` runs `python -I -c source` and returns a `SandboxRun`:
exit status, the tails of stdout/stderr, whether it was killed for time, which isolation was used, and
the bytes the program wrote to a private side channel (`RLCORE_CHANNEL_FD`, an fd to a file outside
the sandbox's reach by path). `isolation()` says what this machine supports; the first that works wins:

  "bwrap"   bubblewrap (Debian `bubblewrap`): new pid, net, ipc, uts (and cgroup) namespaces; the
            system (/usr) and the Python install bound read-only; a size-capped tmpfs /tmp; one
            writable work dir; nothing else of the host filesystem visible.
  "unshare" util-linux `unshare`: new pid, net, ipc, uts namespaces; the host filesystem stays visible.
  "rlimits" resource limits only; logged as a warning on first use. Use only for trusted tests.

Every mode adds: a new session/process group, killed as a whole at the wall-time limit; RLIMIT_CPU,
RLIMIT_AS (memory), RLIMIT_FSIZE (largest file, which also caps captured output on disk), RLIMIT_CORE=0;
captured stdout/stderr truncated to their last `output_bytes`; a fresh work dir as cwd and HOME, deleted
afterwards; a cleared environment. When we run as root, the program drops to a fresh uid per run
(after Python starts), so RLIMIT_NPROC really caps its processes (root is exempt from it), it cannot
signal or ptrace anything else, and after the run every process of that uid is killed.

Protects against: infinite loops and CPU burn; memory bombs; fork bombs; output floods; network access
(bwrap, unshare); writes outside the work dir (bwrap: everything else is read-only or a throwaway tmpfs);
processes that escape the process group with setsid (pid namespace, and the per-run uid sweep).

Does NOT protect against: kernel exploits or bwrap bugs (this is not a VM; use gVisor/firecracker for
adversaries with kernel exploits); disk filling inside the work dir by many files (each file is capped,
their number is not); reading world-readable host files under /usr and the Python install (bwrap), or
anywhere (unshare, rlimits); network and host writes to world-writable dirs such as /tmp in "rlimits"
mode; writes to /tmp and /dev/shm on the host in "unshare" mode; a fork bomb when not root and without
pid namespaces (RLIMIT_NPROC then counts every process of our uid); timing side channels.
"""

from __future__ import annotations

import logging
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

ISOLATIONS = ("bwrap", "unshare", "rlimits")
_UID_RANGE = (200_000, 1_200_000)  # per-run uids are drawn from here; nothing on the host uses them

# Runs first inside the sandbox, still as root when we started as root: cap the process count, then
# drop to the per-run uid. RLIMIT_NPROC is set here, not in preexec, because root ignores it.
_PROLOGUE = """\
import os as _o, resource as _r
_u = int(_o.environ.pop("RLCORE_SANDBOX_UID", "0"))
if _u and _o.geteuid() == 0:
    _n = int(_o.environ.pop("RLCORE_SANDBOX_NPROC"))
    _r.setrlimit(_r.RLIMIT_NPROC, (_n, _n))
    _o.setgroups([]); _o.setgid(_u); _o.setuid(_u)
del _o, _r, _u
"""


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0  # wall clock; past it the whole process group / pid namespace is killed
    cpu_s: int = 10  # RLIMIT_CPU seconds (SIGXCPU, then SIGKILL one second later)
    memory_mb: int = 1024  # RLIMIT_AS per process
    max_procs: int = 32  # RLIMIT_NPROC (effective with a per-run uid, i.e. when we run as root)
    file_mb: int = 16  # RLIMIT_FSIZE: the largest file it may write, captured output included
    output_bytes: int = 8192  # keep this many trailing bytes of stdout and of stderr
    tmpfs_mb: int = 64  # size of the sandbox's /tmp (bwrap only)


@dataclass
class SandboxRun:
    returncode: int | None  # negative: killed by that signal
    stdout: str  # last `output_bytes`, decoded with errors replaced
    stderr: str
    timed_out: bool  # killed at the wall-time limit
    wall_s: float
    isolation: str
    channel: bytes = b""  # what the program wrote to RLCORE_CHANNEL_FD
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def _python() -> str:
    """The base interpreter (a venv's python is a symlink into the base install, which we bind)."""
    return os.path.realpath(sys.executable)


def _world_traversable(path: str) -> bool:
    p = Path(path)
    return all(os.stat(q).st_mode & 0o005 == 0o005 for q in [p, *p.parents])


def _bwrap_argv(work: str, limits: SandboxLimits) -> list[str]:
    base = os.path.realpath(sys.base_prefix)
    argv = [
        "bwrap",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ]
    if os.geteuid() == 0:  # the prologue needs these to drop to the per-run uid; then they are gone
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    if not base.startswith("/usr/"):
        # bwrap copies the host mode of missing parents (e.g. /root is 0700): make them traversable.
        for parent in reversed(Path(base).parents[:-1]):
            argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", base, base]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        str(limits.tmpfs_mb << 20),
        "--tmpfs",
        "/tmp",
        "--bind",
        work,
        "/work",
        "--chdir",
        "/work",
    ]
    return argv


def _env(fd: int, uid: int, limits: SandboxLimits, home: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "RLCORE_CHANNEL_FD": str(fd),
    }
    if uid:
        env["RLCORE_SANDBOX_UID"] = str(uid)
        env["RLCORE_SANDBOX_NPROC"] = str(limits.max_procs)
    return env


def _own_process_count() -> int:
    uid = os.getuid()
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _proc_uid(p) == uid)


def _proc_uid(p: Path) -> int | None:
    try:
        return p.stat().st_uid
    except OSError:
        return None


def _kill_uid(uid: int) -> int:
    """SIGKILL every process whose real uid is `uid` (the per-run uid): the 'nothing left' sweep."""
    killed = 0
    for _ in range(5):  # a fork bomb may spawn while we sweep; the uid's NPROC cap bounds this
        found = 0
        for p in Path("/proc").iterdir():
            if p.name.isdigit() and _proc_uid(p) == uid:
                found += 1
                try:
                    os.kill(int(p.name), signal.SIGKILL)
                except OSError:
                    pass
        killed += found
        if not found:
            break
        time.sleep(0.01)
    return killed


def _preexec(limits: SandboxLimits, nproc: int | None) -> None:
    mb = 1 << 20
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


@cache
def isolation() -> str:
    """The strongest isolation that works here ("bwrap", "unshare" or "rlimits"); probed once."""
    for mode in ISOLATIONS[:-1]:
        try:
            r = run_python("print('ok')", limits=SandboxLimits(wall_s=20), mode=mode)
        except OSError:
            continue
        if r.returncode == 0 and r.stdout.strip() == "ok":
            return mode
        log.info("sandbox mode %s does not work here: %s", mode, r.stderr[-300:])
    log.warning(
        "SANDBOX: neither bubblewrap nor unshare works on this machine; untrusted code runs "
        "with resource limits ONLY (network and host filesystem reachable). "
        "Install bubblewrap (apt-get install bubblewrap)."
    )
    return "rlimits"


def _tail(path: str, n: int) -> tuple[str, bool]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read().decode("utf-8", "replace"), size > n


def run_python(
    source: str, stdin: bytes = b"", limits: SandboxLimits | None = None, mode: str | None = None
) -> SandboxRun:
    """Run `python -I -c source` sandboxed; `stdin` is fed on standard input. Never raises for
    anything the program does; raises OSError only if the sandbox itself cannot start."""
    limits = limits or SandboxLimits()
    mode = mode or isolation()
    root = os.geteuid() == 0
    private = tempfile.mkdtemp(prefix="rlcore-sbx-")  # 0700: the sandboxed uid cannot enter it
    work = os.path.join(private, "work")
    os.mkdir(work, 0o700)
    uid = 0
    if root and (mode == "bwrap" or _world_traversable(_python())):
        uid = secrets.randbelow(_UID_RANGE[1] - _UID_RANGE[0]) + _UID_RANGE[0]
        os.chown(work, uid, uid)
    nproc = None if root else _own_process_count() + limits.max_procs
    py = [_python(), "-I", "-c", _PROLOGUE + source]
    home = "/work" if mode == "bwrap" else work
    out_path, err_path, chan_path = (os.path.join(private, n) for n in ("out", "err", "chan"))
    with open(out_path, "wb") as out, open(err_path, "wb") as err, open(chan_path, "w+b") as chan:
        env = _env(chan.fileno(), uid, limits, home)
        if mode == "bwrap":  # bwrap starts from a cleared environment and sets ours
            argv = _bwrap_argv(work, limits)
            argv += [a for k, v in env.items() for a in ("--setenv", k, v)] + py
        elif mode == "unshare":
            argv = [
                "unshare",
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--ipc",
                "--uts",
                *py,
            ]
        else:
            argv = py
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            cwd=work,
            env=env,
            pass_fds=(chan.fileno(),),
            start_new_session=True,
            preexec_fn=lambda: _preexec(limits, nproc),
        )
        timed_out = False
        try:
            proc.communicate(stdin, timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        except BrokenPipeError:  # it exited without reading its input
            pass
        finally:
            try:
                os.killpg(
                    proc.pid, signal.SIGKILL
                )  # the group: bwrap/unshare take their pid ns along
            except ProcessLookupError:
                pass
            proc.wait()
            swept = _kill_uid(uid) if uid else 0
        wall = time.monotonic() - t0
        chan.seek(0)
        channel = chan.read(1 << 20)
    stdout, out_trunc = _tail(out_path, limits.output_bytes)
    stderr, err_trunc = _tail(err_path, limits.output_bytes)
    shutil.rmtree(private, ignore_errors=True)
    return SandboxRun(
        proc.returncode,
        stdout,
        stderr,
        timed_out,
        wall,
        mode,
        channel,
        out_trunc,
        err_trunc,
        {"uid_sweep_killed": swept, "uid": uid},
    )
