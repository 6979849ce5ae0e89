"""Threads per actor: the plan (sync phases each get the node, async splits it, overrides win) and a
real Ray actor started with the planned options, which Ray would otherwise pin to one thread."""

import pytest

from rlcore import threads
from rlcore.config import load_config


def _plan(*overrides: str, critic: bool = False) -> dict[str, int]:
    return threads.plan(load_config(None, ["resources.cpus_per_node=8", *overrides]), critic)


def test_sync_phases_each_use_the_whole_node():
    assert _plan() == {"learner": 8, "rollout": 8, "critic": 8, "model_verifier": 8}
    p = _plan("learner.world_size=2", "rollout.num_workers=4")
    assert (p["learner"], p["rollout"], p["critic"]) == (4, 2, 4)
    # PPO: the policy and the critic ranks train at the same time
    assert _plan("algo.type=ppo", critic=True)["learner"] == 4


def test_async_splits_the_node_between_engines_and_learners():
    p = _plan("rollout.async_steps=1", "algo.tis_cap=2")
    assert p["rollout"] + p["learner"] == 8 and p["rollout"] == 4


def test_model_verifiers_share_the_node_only_while_engines_still_generate():
    # overlap with several engine parts: scoring runs beside generation, half the node
    assert _plan("rollout.parts_per_engine=4")["model_verifier"] == 4
    assert _plan("rollout.parts_per_engine=4", "verifier.model_actors=2")["model_verifier"] == 2
    # one part, or no overlap: scoring starts after generation, every core
    assert _plan("verifier.overlap=false", "rollout.num_workers=2")["model_verifier"] == 8


def test_overrides_and_a_floor_of_one():
    p = _plan("resources.learner_threads=3", "resources.rollout_threads=5")
    assert (p["learner"], p["rollout"]) == (3, 5)
    assert _plan("learner.world_size=16")["learner"] == 1


def test_runtime_env_sets_every_thread_variable():
    env = threads.runtime_env(3)["runtime_env"]["env_vars"]
    assert env == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3"}


def test_cpu_learners_and_engines_preload_tcmalloc_where_the_node_has_it(monkeypatch):
    import ctypes.util

    from rlcore.placement import Placement

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so.4")
    cfg = load_config(None, [])
    placement = Placement(cfg, [], None, threads.plan(cfg, False))
    env = placement.options("learner", 0)["runtime_env"]["env_vars"]
    assert env["LD_PRELOAD"] == threads.TCMALLOC
    assert (
        placement.options("rollout", 0)["runtime_env"]["env_vars"]["LD_PRELOAD"]
        == env["LD_PRELOAD"]
    )
    assert placement.options("verifier", 0) == {}
    glibc = Placement(
        load_config(None, ["resources.malloc=glibc"]), [], None, threads.plan(cfg, False)
    )
    assert "LD_PRELOAD" not in glibc.options("learner", 0)["runtime_env"]["env_vars"]
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)  # a node without it
    assert "LD_PRELOAD" not in placement.options("learner", 0)["runtime_env"]["env_vars"]


@pytest.mark.slow
def test_an_actor_started_with_the_plan_uses_its_threads(ray_local):
    """Without the runtime env Ray starts a num_cpus=0 actor with OMP_NUM_THREADS=1 (checked
    here too), which is what made the learner and engine use one core of two."""
    import ray

    from rlcore.placement import Placement

    @ray.remote(num_cpus=0)
    class Probe:
        def threads(self) -> tuple[int, str]:
            import os

            return threads.apply(), os.environ.get("OMP_NUM_THREADS", "")

    cfg = load_config(None, ["resources.learner_threads=2"])
    placement = Placement.create(cfg, needs_critic=False)
    planned = Probe.options(**placement.options("learner", 0)).remote()
    assert ray.get(planned.threads.remote()) == (2, "2")
    bare = Probe.remote()
    assert ray.get(bare.threads.remote()) == (1, "1")
