"""The vLLM adapter's supported version range: checked at engine start, before any model loads."""

import logging

import pytest

vllm = pytest.importorskip("vllm")

from rlcore.rollout import vllm_engine  # noqa: E402
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
        VLLMEngine(str(tmp_path / "no-model-here"))
