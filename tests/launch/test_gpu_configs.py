"""Every configs/gpu_*.yaml loads through the schema and its rules on this CPU machine (the GPU
count is checked by the cluster at start, rlcore/placement.py), so a typo fails CI."""

from pathlib import Path

import pytest
from rlcore.verifiers.build import parse_spec
from rlcore.verifiers.registry import get_verifier_class

from rlcore import preflight
from rlcore.algo import build_algorithm
from rlcore.config import load_config
from rlcore.placement import plan

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("gpu_*.yaml"))


def test_the_recipes_are_there():
    names = {p.stem for p in CONFIGS}
    assert {"gpu_zero_dapo_qwen1.5b", "gpu_coldstart_qwen1.5b", "gpu_ppo_qwen7b"} <= names
    assert any("multiobjective" in n for n in names)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_gpu_config_loads_and_is_consistent(path):
    cfg = load_config(path)
    preflight.check(cfg, check_machine=False)
    bundles = plan(cfg, build_algorithm(cfg).needs_critic)
    gpus = sum(b.gpus for b in bundles)
    r = cfg.resources
    assert cfg.gpus == gpus == r.nodes * r.gpus_per_node, "gpus, roles and resources agree"
    assert cfg.learner.gpus_per_rank >= 1 and cfg.model.dtype == "bfloat16"
    assert cfg.rollout.max_tokens < cfg.rollout.max_model_len
    if cfg.data.prompt_format == "raw":
        assert "PROBLEM" in cfg.data.raw_template.format(prompt="PROBLEM")
    for spec in [cfg.data.verifier]:  # the default verifier(s) and their options build
        for name, _weight in parse_spec(spec):
            get_verifier_class(name)
    for name, options in cfg.verifier.options.items():
        cls = get_verifier_class(name)
        cls.config_cls(**options)
    header = path.read_text().split("\nstages:")[0]
    assert "GPUs:" in header and "Data" in header and '"prompt"' in header, "the header says both"
