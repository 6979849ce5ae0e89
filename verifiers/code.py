"""`code`: run the response's Python against the reference tests in a sandbox (verifiers/sandbox.py).

Reference: `tests` (a list of test snippets, usually `assert f(1) == 2` lines, with an optional `setup`
snippet run before the candidate, in its namespace), or HumanEval style `test` (code defining `check(candidate)`) + `entry_point`.
The code is the last fenced ```python block of the response (else the last unlabeled fence, else the
whole text without <think> blocks).

Why exit status never means pass. A harness (`_HARNESS`, trusted code that starts first in the
sandbox) reads the job (candidate code, tests, a fresh random nonce) from stdin before the candidate
runs, so nothing about the tests is on disk. It then
  1. runs the candidate in its own namespace (SystemExit and other exceptions are caught and noted);
  2. undoes what the candidate may have patched: trace/profile hooks removed, every module's namespace
     that existed before (builtins, sys, os, ...) restored, modules the candidate imported dropped so
     tests re-import them fresh;
  3. runs each test in a test namespace built from a snapshot of builtins taken before step 1, with the
     candidate's names copied in except names that would shadow builtins; the test's own definitions
     (`check`, helpers) are executed after, so a candidate-defined `check` or helper is overwritten;
  4. after each test, writes "<nonce> <i> pass|fail" to a side channel fd (a file outside the sandbox);
     after the last test "<nonce> done".
The verifier counts a test as passed only on an authenticated "pass" line, and the sample as correct
only with the "done" sentinel. So `sys.exit(0)`, `os._exit(0)`, `atexit` handlers, exceptions, killing
the process, printing "All tests passed" to stdout or to the channel (no nonce), and redefining
`check`/assert helpers/builtins earn nothing. With `strict_values` (default) the test code is rewritten
so that values returned by candidate functions, the operands of ==, !=, <, <=, >, >= and every assert's
condition must be plain builtin data (int, float, str, list, dict, ...): an object whose `__eq__` always
returns True (the "AlwaysEqual" hack) or whose `__bool__` lies fails the test. Turn it off for tasks
that legitimately return custom objects or numpy arrays.

Does NOT protect against (threat model): a candidate that deliberately attacks the harness from inside
the process: walking stack frames or `gc` to read the nonce or the test source, installing a trace
function from inside a called function to skip an assert, ctypes memory writes, patching a stdlib
module *during* a call so a later part of the same test sees it. These need code written against this
harness, not the generic hacks RL policies find; closing them needs the tests to run in another process
than the candidate (e.g. comparing serialized return values outside the sandbox). Also not checked:
hard-coding answers to visible tests, style, efficiency beyond the time limits.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
from dataclasses import dataclass
from typing import Any

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.sandbox import SandboxLimits, SandboxRun, isolation, run_python
from rlcore.verifiers.text import strip_think

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class CodeConfig(VerifierConfig):
    timeout_s: float = (
        20.0  # pool limit; keep above wall_s so the sandbox reports the timeout itself
    )
    all_or_nothing: bool = False  # reward 1 only if every test passes; else the fraction passed
    strict_values: bool = True  # candidate return values and compared operands must be builtin data
    wall_s: float = 10.0  # sandbox wall-clock limit for the whole run (all tests)
    cpu_s: int = 10  # RLIMIT_CPU
    memory_mb: int = 1024  # RLIMIT_AS
    max_procs: int = 32  # process cap inside the sandbox
    output_bytes: int = 4096  # stdout/stderr tail kept in details
    isolation: str = "auto"  # "auto" (strongest available), "bwrap", "unshare" or "rlimits"


def extract_code(response: str) -> tuple[str, str]:
    """(code, how): the last ```python block, else the last unlabeled block, else the plain text."""
    text = strip_think(response)
    blocks = _FENCE.findall(text)
    py = [b for lang, b in blocks if lang.lower() in ("python", "py", "python3")]
    if py:
        return py[-1], "fenced_python"
    bare = [b for lang, b in blocks if not lang]
    if bare:
        return bare[-1], "fenced"
    return text.strip(), "plain"


# The trusted harness. Runs as `python -I -c` after the sandbox prologue; reads its job from stdin.
_HARNESS = r"""
def _main():
    import ast, builtins, json, os, sys
    _write, _type, _id, _exec, _compile = os.write, type, id, exec, compile
    _settrace, _setprofile, _exit, _repr = sys.settrace, sys.setprofile, os._exit, repr
    fd = int(os.environ.pop("RLCORE_CHANNEL_FD"))
    job = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    sys.stdin = open(os.devnull)
    nonce = job["nonce"]

    def emit(line):
        _write(fd, (nonce + " " + line.replace("\n", " ")[:300] + "\n").encode("utf-8", "replace"))

    plain_types = {int, float, complex, str, bytes, bool, _type(None), list, tuple, dict, set,
                   frozenset}

    def plain(x):
        stack, seen = [x], set()
        while stack:
            y = stack.pop()
            t = _type(y)
            if t not in plain_types:
                raise AssertionError("non-builtin value of type %s in a checked position" % t.__name__)
            if t in (list, tuple, set, frozenset, dict) and _id(y) not in seen:
                seen.add(_id(y))
                stack.extend(y.items() if t is dict else y)
        return x

    class Strict(ast.NodeTransformer):
        def __init__(self, names):
            self.names = names

        def wrap(self, node):
            return ast.copy_location(ast.Call(ast.Name("__rl_plain__", ast.Load()), [node], []), node)

        def visit_Call(self, node):
            self.generic_visit(node)
            if _type(node.func) is ast.Name and node.func.id in self.names:
                return self.wrap(node)
            return node

        def visit_Compare(self, node):
            self.generic_visit(node)
            if all(_type(op) in (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE) for op in node.ops):
                node.left = self.wrap(node.left)
                node.comparators = [self.wrap(c) for c in node.comparators]
            return node

        def visit_Assert(self, node):
            self.generic_visit(node)
            node.test = self.wrap(node.test)
            return node

    snapshot_builtins = dict(builtins.__dict__)
    modules_before = {k: (m, dict(getattr(m, "__dict__", {}))) for k, m in list(sys.modules.items())}
    cand = {"__name__": "__candidate__", "__builtins__": builtins}
    if job["setup"]:  # trusted setup (imports, classes the task names) where the candidate sees it
        try:
            _exec(_compile(job["setup"], "<setup>", "exec"), cand)
        except BaseException as e:
            emit("setup_error %s: %s" % (_type(e).__name__, str(e)[:200]))
    try:
        _exec(_compile(job["code"], "<candidate>", "exec"), cand)
    except BaseException as e:  # SystemExit too: a candidate that exits early just loses its tests
        emit("candidate_error %s: %s" % (_type(e).__name__, str(e)[:200]))
    _settrace(None)
    _setprofile(None)
    for k in [k for k in list(sys.modules) if k not in modules_before]:
        del sys.modules[k]
    for k, (m, d) in modules_before.items():
        sys.modules[k] = m
        cur = getattr(m, "__dict__", None)
        if cur is None:
            continue
        for name in [n for n in cur if n not in d]:
            del cur[name]
        for name, v in d.items():
            if cur.get(name, d) is not v:
                cur[name] = v

    names = {k for k in cand if not k.startswith("__") and k not in snapshot_builtins}
    ns = {"__name__": "__test__", "__builtins__": dict(snapshot_builtins)}
    ns.update({k: cand[k] for k in names})
    ns["__rl_plain__"] = plain
    if job.get("entry_point"):
        ns["candidate"] = cand.get(job["entry_point"])
    strict = Strict(names | {"candidate"}) if job["strict"] else None
    for i, src in enumerate(job["tests"]):
        try:
            tree = ast.parse(src)
            if strict is not None:
                tree = ast.fix_missing_locations(strict.visit(tree))
            code = _compile(tree, "<test %d>" % i, "exec")
            ns["__rl_plain__"] = plain
            _exec(code, ns)
            ok, why = True, ""
        except BaseException as e:
            ok, why = False, "%s: %s" % (_type(e).__name__, str(e)[:200])
        _settrace(None)
        _setprofile(None)
        emit("%d pass" % i if ok else "%d fail %s" % (i, why))
    emit("done")
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    _exit(0)


_main()
"""


class CodeVerifier(Verifier):
    """Runs the response's Python against reference tests in a sandbox; reward = fraction passed.

    Checks: behaviour on the given tests only, under time/memory/process limits, with exit-status and
    namespace hacks defeated (module docstring). Does NOT check: hidden tests, code quality, complexity;
    see the module docstring for the in-process attacks it does not stop.
    """

    name = "code"
    config_cls = CodeConfig

    def __init__(self, config: CodeConfig | None = None) -> None:
        super().__init__(config)
        self.config: CodeConfig

    def _limits(self) -> SandboxLimits:
        c = self.config
        return SandboxLimits(
            wall_s=c.wall_s,
            cpu_s=c.cpu_s,
            memory_mb=c.memory_mb,
            max_procs=c.max_procs,
            output_bytes=c.output_bytes,
        )

    def _job(self, sample: Sample, code: str) -> dict[str, Any]:
        ref = sample.reference
        if "tests" in ref:
            tests = [str(t) for t in ref["tests"]]
            return {
                "tests": tests,
                "setup": ref.get("setup") or "",
                "entry_point": None,
                "code": code,
            }
        if "test" in ref and "entry_point" in ref:
            test = str(ref["test"]) + "\ncheck(candidate)\n"
            return {"tests": [test], "setup": "", "entry_point": ref["entry_point"], "code": code}
        raise ValueError(
            "code verifier: reference needs 'tests' (list of asserts) or "
            f"'test' + 'entry_point'; got keys {sorted(ref)}"
        )

    def verify(self, sample: Sample) -> Result:
        code, how = extract_code(sample.response)
        job = self._job(sample, code)
        n = len(job["tests"])
        if not code:
            return Result(
                0.0,
                False,
                {"extracted": how, "passed": 0, "total": n},
                error="unparseable: no code in the response",
            )
        nonce = secrets.token_hex(16)
        job.update(nonce=nonce, strict=self.config.strict_values)
        mode = None if self.config.isolation == "auto" else self.config.isolation
        run = run_python(_HARNESS, json.dumps(job).encode(), self._limits(), mode=mode)
        return self._score(run, nonce, n, how)

    def _score(self, run: SandboxRun, nonce: str, n: int, how: str) -> Result:
        status: dict[int, tuple[bool, str]] = {}
        done, cand_error = False, None
        for raw in run.channel.decode("utf-8", "replace").splitlines():
            tag, _, rest = raw.partition(" ")
            if tag != nonce:
                continue  # not from the harness: forged or stray
            if rest == "done":
                done = True
            elif rest.startswith(("candidate_error ", "setup_error ")):
                cand_error = rest
            else:
                idx, _, verdict = rest.partition(" ")
                if idx.isdigit() and int(idx) < n and int(idx) not in status:
                    status[int(idx)] = (verdict == "pass", verdict.removeprefix("fail "))
        passed = sum(ok for ok, _ in status.values())
        tests = [
            {
                "index": i,
                "passed": status.get(i, (False,))[0],
                "reason": status[i][1] if i in status else "not run",
            }
            for i in range(n)
        ]
        correct = done and passed == n
        error = None
        if run.timed_out:
            error = f"timeout: wall limit {self.config.wall_s}s"
        elif not done and run.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            error = f"timeout: CPU limit {self.config.cpu_s}s"  # bwrap reports a signal as 128+sig
        elif not done:
            error = (
                "crash: the process ended before the harness finished "
                f"(exit status {run.returncode})"
            )
        reward = (
            (1.0 if correct else 0.0) if self.config.all_or_nothing else (passed / n if n else 0.0)
        )
        details = {
            "extracted": how,
            "passed": passed,
            "total": n,
            "finished": done,
            "tests": tests,
            "candidate_error": cand_error,
            "isolation": run.isolation,
            "returncode": run.returncode,
            "stderr_tail": run.stderr[-1000:],
            "stdout_tail": run.stdout[-500:],
            "sandbox_s": round(run.wall_s, 3),
            "sandbox_uid": run.extra.get("uid", 0),
        }
        return Result(reward, correct, details, error=error, elapsed_s=run.wall_s)


def available_isolation() -> str:
    """What the sandbox will use on this machine (for `rlcore doctor` and logs)."""
    return isolation()
