"""Run by test_placement.py in its own process (never touching the test process's Ray): a simulated
3-node cluster (ray.cluster_utils, 2 fake GPUs and 2 CPUs per node), the config's placement group,
and one probe actor per bundle reporting where it landed. Prints one JSON object.

    python tests/launch/placement_cluster.py
"""

from __future__ import annotations

import json
import sys

import ray
from ray.cluster_utils import Cluster

from rlcore.config import ConfigError, load_config
from rlcore.placement import Placement

COMMON = [
    "resources.nodes=3",
    "resources.gpus_per_node=2",
    "resources.cpus_per_node=2",
    "resources.timeout_s=60",
    "learner.world_size=2",
    "learner.gpus_per_rank=1",
    "verifier.workers=1",
]
SCENARIOS = {
    # 2 learner ranks x 1 GPU, 2 engines x 2 GPUs: the cluster's 6 GPUs exactly
    "pack": [*COMMON, "gpus=6", "rollout.num_workers=2", "rollout.tensor_parallel_size=2"],
    "spread": [*COMMON, "resources.strategy=spread", "rollout.num_workers=1"],
}
TOO_LARGE = [*COMMON, "resources.nodes=4"]


@ray.remote(num_cpus=0)
class Probe:
    def where(self) -> dict:
        ctx = ray.get_runtime_context()
        return {"node": ctx.get_node_id(), "gpus": ctx.get_accelerator_ids().get("GPU", [])}


def run(overrides: list[str]) -> dict:
    cfg = load_config(None, overrides)
    placement = Placement.create(cfg, needs_critic=False)
    try:
        table = ray.util.placement_group_table(placement.pg)
        actors = [
            Probe.options(**placement.options(b.role, b.index)).remote() for b in placement.bundles
        ]
        where = ray.get([a.where.remote() for a in actors])
        out = {
            "bundles": [
                {
                    "role": b.role,
                    "index": b.index,
                    **w,
                    "bundle_node": table["bundles_to_node_id"][i],
                }
                for i, (b, w) in enumerate(zip(placement.bundles, where, strict=True))
            ],
            "learner0_ip": placement.node_ip("learner", 0),
            "learner0_port": placement.free_port("learner", 0),
        }
        for a in actors:
            ray.kill(a)
        return out
    finally:
        placement.remove()


def main() -> None:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "num_gpus": 2, "include_dashboard": False},
    )
    for _ in range(2):
        cluster.add_node(num_cpus=2, num_gpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        result = {name: run(o) for name, o in SCENARIOS.items()}
        result["node_ips"] = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
        try:
            run(TOO_LARGE)
            result["too_large"] = None
        except ConfigError as e:
            result["too_large"] = str(e)
        print("RESULT " + json.dumps(result), flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
