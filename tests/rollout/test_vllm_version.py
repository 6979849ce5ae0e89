"""The vLLM adapter's supported version range: checked at engine start, before any model loads."""

import logging

import pytest

vllm = pytest.importorskip("vllm")

from rlcore.rollout import EngineSpec, vllm_engine  # noqa: E402
from rlcore.rollout.vllm_engine import SUPPORTED_VLLM, VLLMEngine, check_vllm_version  # noqa: E402


@pytest.mark.parametrize("version", ["0.32", "0.32.0", "0.32.7", "0.32.0+cpu", "0.32.1.dev3+gabc"])
def test_supported_versions_pass(version):
    check_vllm_version(version)


@pytest.mark.parametrize("version", ["0.31.9", "0.33.0", "0.33.0rc1", "0.33.0.dev1", "1.0.0"])
def test_unsupported_versions_name_the_version_and_range(version):
    with pytest.raises(RuntimeError) as err:
        check_vllm_version(version)
    lo, hi = SUPPORTED_VLLM
    assert f"found {version}" in str(err.value) and f">={lo},<{hi}" in str(err.value)


def test_unparsable_version_only_warns(caplog):
    with caplog.at_level(logging.WARNING, logger=vllm_engine.__name__):
        check_vllm_version("dev")  # what a vLLM source build reports
    assert "'dev'" in caplog.text


def test_installed_version_is_supported():
    check_vllm_version()  # the default reads the installed vLLM's version


def test_engine_refuses_an_unsupported_vllm_before_loading(monkeypatch, tmp_path):
    monkeypatch.setattr(vllm, "__version__", "0.40.1")
    with pytest.raises(RuntimeError, match="found 0.40.1"):
        VLLMEngine(EngineSpec(str(tmp_path / "no-model-here")))


def test_the_gpu_extra_admits_only_versions_the_engine_accepts():
    """pyproject's `gpu` extra and SUPPORTED_VLLM must agree, or `pip install .[gpu]` resolves a
    vLLM that the engine refuses at start (the registry has 0.33 while the engine takes 0.32.x)."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["gpu"]]
    (spec,) = [r.specifier for r in reqs if r.name == "vllm"]
    lo, hi = SUPPORTED_VLLM
    candidates = ["0.31.9", "0.32.0", "0.32.1", "0.32.9", "0.33.0", "0.33.1", "0.34.0", "1.0.0"]
    for v in candidates:
        accepted = lo <= Version(v) < hi
        assert spec.contains(v) == accepted, f"vllm {v}: extra {spec} vs engine >={lo},<{hi}"
