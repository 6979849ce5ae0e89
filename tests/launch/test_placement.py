"""Placement (rlcore/placement.py): bundles per role from the config's `resources` section, checked
against the cluster; on a simulated 3-node cluster each role lands where the config says."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlcore.config import ConfigError, load_config
from rlcore.placement import Bundle, Placement, check_cluster, plan
from rlcore.preflight import check

HERE = Path(__file__).parent
SHAPE = ["resources.nodes=3", "resources.gpus_per_node=2", "learner.gpus_per_rank=1"]


def node(gpus: float, cpus: float, alive: bool = True) -> dict:
    return {"Alive": alive, "Resources": {"GPU": gpus, "CPU": cpus}}


def test_default_keeps_the_one_machine_options():
    from rlcore.threads import malloc_preload, runtime_env

    cpu = Placement.create(load_config(None, ["resources.cpus_per_node=4"]), needs_critic=False)
    assert cpu.pg is None
    four = runtime_env(4)  # each role's threads travel in its environment (rlcore/threads.py)
    tcmalloc = runtime_env(4, malloc_preload("tcmalloc"))  # and, on CPU, the allocator
    roles = ("learner", "critic", "rollout", "verifier")
    assert [cpu.options(r, 0) for r in roles] == [tcmalloc, tcmalloc, tcmalloc, {}]
    assert cpu.node_ip("learner", 0) == "127.0.0.1"
    gpu_cfg = load_config(
        None,
        [
            "gpus=3",
            "learner.gpus_per_rank=1",
            "rollout.tensor_parallel_size=2",
            "resources.cpus_per_node=4",
        ],
    )
    gpu = Placement.create(gpu_cfg, needs_critic=False)
    assert gpu.options("learner", 0) == {"num_gpus": 1, **four}
    assert gpu.options("rollout", 0) == {"num_gpus": 2, **four}
    assert gpu.options("verifier", 0) == {}
    with pytest.raises(ValueError, match="unknown role"):
        gpu.options("reward", 0)


def test_plan_orders_roles_and_sizes_bundles():
    cfg = load_config(
        None,
        [*SHAPE, "resources.nodes=4", "gpus=8", "learner.world_size=2", "rollout.num_workers=2"]
        + ["rollout.tensor_parallel_size=2", "verifier.workers=3", "algo.type=ppo"],
    )
    bundles = plan(cfg, needs_critic=True)
    assert [(b.role, b.index, b.gpus, b.cpus) for b in bundles] == [
        ("learner", 0, 1, 1),
        ("learner", 1, 1, 1),
        ("critic", 0, 1, 1),
        ("critic", 1, 1, 1),
        ("rollout", 0, 2, 1),
        ("rollout", 1, 2, 1),
        ("verifier", 0, 0, 3),
    ]
    assert Bundle("verifier", 0, 0, 3).resources() == {"CPU": 3.0}
    # a model-based verifier named by the data: its actors get bundles (and GPUs) of their own
    with_rm = load_config(None, [*SHAPE, "resources.nodes=4", "gpus=8", "verifier.model_gpus=1"])
    tail = [(b.role, b.index, b.gpus, b.cpus) for b in plan(with_rm, False, model_verifiers=2)]
    assert tail[-2:] == [("model_verifier", 0, 1, 1), ("model_verifier", 1, 1, 1)]
    one_machine = Placement.create(load_config(None, ["gpus=1", "verifier.model_gpus=1"]), False)
    assert one_machine.options("model_verifier", 0)["num_gpus"] == 1


ONE_NODE = ["resources.nodes=1", "resources.gpus_per_node=2", "learner.gpus_per_rank=1"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([*ONE_NODE, "gpus=4", "rollout.tensor_parallel_size=4"], "a rollout actor needs 4 GPU"),
        (
            [*SHAPE, "gpus=8", "learner.world_size=4", "rollout.num_workers=2"]
            + ["rollout.tensor_parallel_size=2"],
            "the roles need 8 GPUs",
        ),
        ([*SHAPE, "resources.cpus_per_node=1", "verifier.workers=8"], "the roles need 10 CPUs"),
        (
            ["resources.strategy=scatter"],
            r"Invalid value 'scatter'.*\n.*full_key: resources.strategy",
        ),
        # no resources section: the total alone (learner 1 + engine 1 > gpus=1) would hang in Ray
        (["gpus=1", "learner.gpus_per_rank=1", "ray_address=auto"], "gpus=1 but the roles need 2"),
    ],
)
def test_config_shape_errors_at_launch(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(load_config(None, overrides))


def test_cluster_check_names_what_was_asked_and_what_exists():
    cfg = load_config(None, [*SHAPE, "gpus=6", "rollout.num_workers=2", "learner.world_size=2"])
    bundles = plan(cfg, needs_critic=False)
    check_cluster(cfg, bundles, [node(2, 4)] * 3)  # fits: no error
    with pytest.raises(ConfigError) as e:
        check_cluster(cfg, bundles, [node(2, 4), node(2, 4), node(2, 4, alive=False)])
    msg = str(e.value)
    assert "nodes=3 x gpus_per_node=2" in msg and "2 alive node(s)" in msg
    assert "4 GPUs, 8 CPUs in total" in msg and "(4 GPUs, 6 CPUs in total)" in msg
    # totals suffice (4 GPUs >= 3, 4 CPUs = 4) and both nodes have the declared 2 GPUs, but the
    # verifier's 2 CPUs are split 1 + 1 over the nodes once the learner and the engine are placed
    cfg2 = load_config(
        None,
        ["resources.nodes=2", "resources.gpus_per_node=2", "learner.gpus_per_rank=1", "gpus=3"]
        + ["rollout.tensor_parallel_size=2", "verifier.workers=2"],
    )
    with pytest.raises(ConfigError, match=r"2 alive node\(s\) \(2 of them that large\)"):
        check_cluster(cfg2, plan(cfg2, False), [node(2, 2), node(2, 2)])
    check_cluster(cfg2, plan(cfg2, False), [node(2, 2), node(2, 3)])


@pytest.mark.slow
def test_roles_land_where_the_config_says_on_a_simulated_cluster():
    r = subprocess.run(
        [sys.executable, str(HERE / "placement_cluster.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and line, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(line[0][len("RESULT ") :])
    for name in ("pack", "spread"):
        for b in result[name]["bundles"]:
            assert b["node"] == b["bundle_node"], (name, b)  # each actor is in its own bundle

    pack = {(b["role"], b["index"]): b for b in result["pack"]["bundles"]}
    learners = [pack["learner", 0], pack["learner", 1]]
    engines = [pack["rollout", 0], pack["rollout", 1]]
    assert learners[0]["node"] == learners[1]["node"]  # ranks side by side (NCCL)
    assert {len(b["gpus"]) for b in learners} == {1} and learners[0]["gpus"] != learners[1]["gpus"]
    assert len({learners[0]["node"], engines[0]["node"], engines[1]["node"]}) == 3
    assert all(len(b["gpus"]) == 2 for b in engines)  # a tensor-parallel engine: one node's 2 GPUs
    assert pack["verifier", 0]["gpus"] == []
    assert result["pack"]["learner0_ip"] == result["node_ips"][learners[0]["node"]]
    assert 1024 < result["pack"]["learner0_port"] < 65536  # picked by a task on that node

    spread = {(b["role"], b["index"]): b for b in result["spread"]["bundles"]}
    # Ray's SPREAD is best effort: it spreads the bundles over more than one node (pack keeps the
    # learner ranks together), but 4 bundles on 3 nodes may land on 2 or 3 of them, in any grouping
    assert len({b["node"] for b in spread.values()}) >= 2

    too_large = result["too_large"]
    assert too_large and "nodes=4 x gpus_per_node=2" in too_large
    assert "3 alive node(s)" in too_large and "6 GPUs, 6 CPUs in total" in too_large


@pytest.mark.slow
def test_a_run_across_two_raylets_trains_and_syncs(tmp_path):
    """Two nodes (a head and a worker raylet on this machine), the learner ranks spread over them:
    DeepSpeed's group, the weight-sync broadcast (with its digest and probe checks) and the ports
    picked by a task on each node all cross the node boundary, and 2 steps train."""
    run_dir = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "tests.launch.two_node_run", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=HERE.parents[1],
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and line, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(line[0][len("RESULT ") :])
    assert len(result["nodes"]) == 2
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rl = [x for x in rows if x["stage"] == "rl" and "loss" in x]
    assert [x["step"] for x in rl] == [1, 2] and all("sync_probe_max" in x for x in rl)
