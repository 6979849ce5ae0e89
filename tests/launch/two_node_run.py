"""Run by test_placement.py in its own process: a local Ray cluster of two raylets (a head and a
worker node, as `ray start` makes them, via ray.cluster_utils) and a 2-step tiny run placed across
them with `resources.nodes=2, strategy=spread`, so the learner ranks' DeepSpeed group, the weight-sync
broadcast group and the ports picked on each node cross a node boundary. Prints one JSON object.

    python -m tests.launch.two_node_run RUN_DIR      (from the repository root)
"""

from __future__ import annotations

import json
import sys

import ray
from ray.cluster_utils import Cluster

from rlcore.config import load_config
from rlcore.trainer import train
from tests.test_train_e2e import SMALL


def main(run_dir: str) -> int:
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=3)
    cluster.wait_for_nodes()
    try:
        cfg = load_config(
            "configs/tiny_zero.yaml",
            [
                f"ray_address={cluster.address}",
                f"run_dir={run_dir}",
                "resources.nodes=2",
                "resources.cpus_per_node=3",
                "resources.strategy=spread",
                "learner.world_size=2",
                "rollout.num_workers=2",
                *SMALL,
                "steps=2",
            ],
        )
        summary = train(cfg)
        nodes = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
        print("RESULT " + json.dumps({"nodes": nodes, "steps": summary.get("steps")}), flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
