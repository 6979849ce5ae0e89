"""Fixtures for kernels/: the Triton kernels, compiled on CUDA and interpreted on CPU.

Triton decides compiled vs interpreted when a @triton.jit function is *defined*, and triton.language
defines its own (tl.sum, tl.max, ...) when it is first imported, from TRITON_INTERPRET. A pytest
session has usually imported triton long before these tests (transformers does), so on CPU the tests
marked `triton` run in a child pytest started with TRITON_INTERPRET=1
(test_triton_interpreter.py); in the parent they skip. The rest of a session (vLLM, DeepSpeed) never
sees the interpreter.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
from kernel_helpers import DEVICE, INTERPRETER_ON


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "triton: uses the Triton kernels (on CPU: run under the interpreter in a child)"
    )


@pytest.fixture(scope="session")
def triton_kernels() -> ModuleType:
    """rlcore.kernels.triton_logprob: compiled on CUDA, under the Triton interpreter on CPU."""
    pytest.importorskip("triton")
    if DEVICE == "cpu" and not INTERPRETER_ON:
        pytest.skip("on CPU: run with TRITON_INTERPRET=1 by test_triton_interpreter.py")
    module = importlib.import_module("rlcore.kernels.triton_logprob")
    assert module.INTERPRETED == (DEVICE == "cpu")
    return module
