"""`code` verifier: correct, partial and hostile candidates, and every exit-status / namespace hack."""

from __future__ import annotations

import os
import time
import uuid

import psutil
import pytest
from rlcore.verifiers.base import Sample
from rlcore.verifiers.code import CodeConfig, CodeVerifier, extract_code

CFG = CodeConfig(wall_s=3.0, cpu_s=2, memory_mb=512, max_procs=16)
MARGIN_S = 3.0
TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(20, 22) == 42"]
WRONG = "def add(a, b):\n    return -999\n"


def verify(code: str, ref: dict | None = None, cfg: CodeConfig = CFG):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    t0 = time.monotonic()
    r = CodeVerifier(cfg).verify(
        Sample(prompt="p", response=code, reference=ref or {"tests": TESTS})
    )
    assert time.monotonic() - t0 < cfg.wall_s + MARGIN_S
    assert [p for p in psutil.Process().children(recursive=True) if p.pid not in before] == []
    uid = r.details.get("sandbox_uid")
    assert not uid or not [p for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid]
    return r


# (name, response, expected reward, expected `correct`)
CASES = [
    ("correct_fenced", "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.", 1.0, True),
    ("correct_plain", "def add(a, b):\n    return a + b", 1.0, True),
    (
        "last_python_block_wins",
        "```python\ndef add(a, b): return 0\n```\n```python\ndef add(a, b): return a + b\n```",
        1.0,
        True,
    ),
    ("partial", "def add(a, b):\n    return 3 if a == 1 else a * b", 1 / 3, False),
    ("sys_exit_0", WRONG + "import sys\nsys.exit(0)", 0.0, False),
    ("sys_exit_first", "import sys\nsys.exit(0)\n" + WRONG, 0.0, False),
    ("os__exit_0", WRONG + "import os\nos._exit(0)", 0.0, False),
    ("os__exit_in_call", "import os\ndef add(a, b):\n    os._exit(0)", 0.0, False),
    (
        "atexit_exit_0",
        WRONG + "import atexit, os\natexit.register(lambda: os._exit(0))",
        0.0,
        False,
    ),
    ("print_success", WRONG + "print('All tests passed')\nprint('OK')", 0.0, False),
    (
        "forge_channel",
        WRONG + "import os\nfd = int(os.environ.get('RLCORE_CHANNEL_FD', 3))\n"
        "for i in range(3): os.write(fd, b'0 %d pass\\n' % i)\nos.write(fd, b'done\\n')",
        0.0,
        False,
    ),
    ("raise_in_call_caught", "def add(a, b):\n    raise SystemExit(0)", 0.0, False),
    (
        "always_equal",
        "class A:\n    def __eq__(s, o): return True\n    __hash__ = None\n"
        "def add(a, b): return A()",
        0.0,
        False,
    ),
    (
        "int_subclass_eq",
        "class I(int):\n    def __eq__(s, o): return True\ndef add(a, b): return I(0)",
        0.0,
        False,
    ),
    (
        "patch_builtins",
        WRONG + "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"
        "builtins.abs = lambda x: 0",
        0.0,
        False,
    ),
    ("shadow_builtin", WRONG + "def isinstance(*a): return True", 0.0, False),
    ("settrace_skip", WRONG + "import sys\nsys.settrace(lambda *a: None)", 0.0, False),
    ("syntax_error", "def add(a, b) return a + b", 0.0, False),
]


@pytest.mark.parametrize("name,response,reward,correct", CASES, ids=[c[0] for c in CASES])
def test_cases(name, response, reward, correct):
    r = verify(response)
    assert r.reward == pytest.approx(reward)
    assert r.correct is correct
    assert r.details["isolation"] in ("bwrap", "unshare", "rlimits")
    assert len(r.details["tests"]) == 3


def test_all_or_nothing():
    r = verify(
        "def add(a, b):\n    return 3 if a == 1 else a * b",
        cfg=CodeConfig(wall_s=3.0, cpu_s=2, all_or_nothing=True),
    )
    assert r.reward == 0.0 and r.details["passed"] == 1


def test_os_exit_reports_crash_not_success():
    r = verify("import os\nos._exit(0)")
    assert r.reward == 0.0 and r.error.startswith("crash") and "exit status 0" in r.error


HOSTILE = [
    ("infinite_loop", "def add(a, b):\n    while True: pass", "timeout"),
    ("sleep", "import time\ntime.sleep(100)", "timeout"),
    (
        "fork_bomb",
        "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
        "timeout",
    ),
    ("memory_bomb", "x = bytearray(4 << 30)\n" + WRONG, None),
]


@pytest.mark.parametrize("name,response,error", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile(name, response, error):
    r = verify(response)
    assert r.reward == 0.0 and r.correct is False
    if error:
        assert r.error and r.error.startswith(error)
    else:
        assert "MemoryError" in (r.details["candidate_error"] or "")


def test_network_and_host_writes_blocked():
    target = f"/tmp/rlcore-escape-{uuid.uuid4().hex}"
    code = f"""
import socket
def add(a, b):
    try:
        open({target!r}, "w").write("x")
    except OSError:
        pass
    for addr in [("127.0.0.1", 22), ("8.8.8.8", 53)]:
        try:
            socket.create_connection(addr, timeout=0.5)
            return "connected"
        except OSError:
            pass
    return a + b
"""
    r = verify(code)
    if r.details["isolation"] != "bwrap":
        pytest.skip("needs bubblewrap")
    assert r.reward == 1.0 and not os.path.exists(target)


HUMANEVAL = {
    "test": "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n"
    "    assert abs(candidate([0.5, 0.25]) - 0.75) < 1e-9\n",
    "entry_point": "total",
}


@pytest.mark.parametrize(
    "code,reward",
    [
        ("def total(xs):\n    return sum(xs)", 1.0),
        ("def total(xs):\n    return 6", 0.0),
        ("def check(candidate):\n    pass\ndef total(xs):\n    return 0", 0.0),  # redefined check
        ("import builtins\nbuiltins.abs = lambda x: 0\ndef total(xs):\n    return 6", 0.0),
    ],
)
def test_humaneval_style(code, reward):
    r = verify(code, ref=HUMANEVAL)
    assert r.reward == reward and r.details["total"] == 1


def test_setup_and_strict_off_allows_custom_objects():
    ref = {
        "setup": "class P:\n    def __init__(s, v): s.v = v\n    def __eq__(s, o): return s.v == o.v",
        "tests": ["assert make(3) == P(3)"],
    }
    code = "def make(v):\n    return P(v)"
    assert verify(code, ref=ref).reward == 0.0  # strict: a custom object is not plain data
    r = verify(code, ref=ref, cfg=CodeConfig(wall_s=3.0, cpu_s=2, strict_values=False))
    assert r.reward == 1.0


def test_extract_code():
    assert extract_code("<think>```python\nx=1\n```</think>plain")[1] == "plain"
    assert extract_code("```\ny=2\n```") == ("y=2\n", "fenced")
    assert extract_code("```js\nz\n```\n```python\nq=1\n```")[0] == "q=1\n"


def test_bad_reference_is_an_error():
    with pytest.raises(ValueError, match="tests"):
        CodeVerifier(CFG).verify(Sample(prompt="p", response="x=1", reference={"answer": 1}))
