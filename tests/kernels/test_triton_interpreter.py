"""Runs the tests marked `triton` (tests/kernels) in a child pytest under TRITON_INTERPRET=1, on a
CPU machine: the interpreter must be on before triton.language is imported (see conftest.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_helpers import DEVICE, INTERPRETER_ON


@pytest.mark.skipif(DEVICE != "cpu" or INTERPRETER_ON, reason="runs them directly here")
def test_triton_kernels_under_the_interpreter():
    pytest.importorskip("triton")
    here = Path(__file__).parent
    cmd = [sys.executable, "-m", "pytest", str(here), "-m", "triton and not gpu", "-q"]
    cmd += ["-p", "no:cacheprovider"]
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        cmd, cwd=here.parents[1], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and " skipped" not in proc.stdout, proc.stdout[-3000:]
