"""The cluster recipes in launch/recipes/ are well-formed: the YAML parses and has what its tool
requires (Ray cluster launcher, KubeRay RayJob), the shell scripts pass `bash -n` (and shellcheck
where it is installed), and every command they run names a config that exists."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "launch" / "recipes"
SCRIPTS = [RECIPES / "slurm_ray.sbatch", REPO / "benchmarks" / "gpu_check.sh"]


def load(name: str) -> dict:
    return yaml.safe_load((RECIPES / name).read_text())


def test_ray_cluster_launcher_yaml():
    c = load("aws_gpu_cluster.yaml")
    for key in ("cluster_name", "provider", "auth", "available_node_types", "head_node_type"):
        assert key in c, key
    assert c["provider"]["type"] in ("aws", "gcp")
    types = c["available_node_types"]
    assert c["head_node_type"] in types
    gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) > 0]
    assert gpu_types and all("node_config" in t for t in types.values())
    setup = " ".join(c["setup_commands"])
    assert 'pip install -q -e ".[gpu]"' in setup and "bubblewrap" in setup
    starts = " ".join(c["head_start_ray_commands"] + c["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token") == 2  # token auth on every node
    assert "~/.ray/auth_token" in c["file_mounts"]


def _env_names(container: dict) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def test_kuberay_rayjob_manifest():
    job = load("kuberay_rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])
    spec = job["spec"]
    assert spec["entrypoint"].startswith("python -m rlcore.launch.cli train configs/")
    assert "ray_address=auto" in spec["entrypoint"]
    config = spec["entrypoint"].split()[4]
    assert (REPO / config).is_file(), config
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert "rayStartParams" in head and head["template"]["spec"]["containers"][0]["image"]
    containers = [
        head["template"]["spec"]["containers"][0],
        *spec["submitterPodTemplate"]["spec"]["containers"],
    ]
    workers = cluster["workerGroupSpecs"]
    assert workers
    for group in workers:
        for key in ("groupName", "replicas", "rayStartParams", "template"):
            assert key in group, key
        c = group["template"]["spec"]["containers"][0]
        assert int(c["resources"]["limits"]["nvidia.com/gpu"]) > 0
        containers.append(c)
    for c in containers:  # every Ray process and the submitter authenticate
        assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= _env_names(c), c["name"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_commands_in_recipes_name_existing_configs():
    text = "\n".join(p.read_text() for p in RECIPES.iterdir() if p.is_file())
    named = set(re.findall(r"configs/[\w.\-]+\.yaml", text))
    assert named
    for config in named:
        assert (REPO / config).is_file(), config
