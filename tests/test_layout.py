"""The layout docs/design.md states, checked on the source: no import cycle among rlcore's modules,
the import direction launch -> rlcore -> {verifiers, kernels}, and a config module that imports no
subsystem and no torch, when it loads or when it loads a config. Also: README's Python example runs
as printed."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder -> package (pyproject.toml's package-dir)
PACKAGES = {
    "rlcore": "rlcore",
    "verifiers": "rlcore.verifiers",
    "kernels": "rlcore.kernels",
    "launch": "rlcore.launch",
}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path) -> set[str]:
    """The rlcore modules `module` imports anywhere, inside functions too (type-only imports
    aside), resolved to known modules."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != module}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d) :] + [d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_module_imports_one_that_imports_it_back():
    """Every import counts, those inside functions too (type-only ones aside)."""
    graph = {m: _imports(m, p) for m, p in MODULES.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
        "a",
        "b",
        "c",
        "a",
    ]  # the check sees one


def test_imports_point_launch_to_rlcore_to_verifiers_and_kernels():
    for module, path in MODULES.items():
        deps = _imports(module, path)
        if module.startswith(("rlcore.verifiers", "rlcore.kernels")):
            own = ".".join(module.split(".")[:2])
            outside = {d for d in deps if not d.startswith(own)}
            assert not outside, f"{path.relative_to(ROOT)} imports rlcore internals: {outside}"
        elif not module.startswith("rlcore.launch"):
            assert not {d for d in deps if d.startswith("rlcore.launch")}, path


def test_the_config_module_imports_no_subsystem():
    """Every import of rlcore/config.py, those inside functions too: the rules that need a
    subsystem are rlcore/preflight.py's."""
    deps = _imports("rlcore.config", MODULES["rlcore.config"])
    assert deps <= {"rlcore.errors", "rlcore"}, deps


def test_loading_a_config_imports_no_subsystem_and_no_torch():
    allowed = {"rlcore", "rlcore.config", "rlcore.errors"}
    code = (
        "import sys, rlcore.config as c\n"
        "c.load_config('configs/tiny_zero.yaml', ['rollout.n=4', 'algo.type=ppo'])\n"
        f"extra = sorted(m for m in sys.modules if m.startswith('rlcore.') and m not in {allowed})\n"
        "assert 'torch' not in sys.modules and not extra, extra or 'torch'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_verifier_actor_imports_no_torch():
    """A rule-based verifier actor's process imports rlcore/verifier_actors.py and, through it,
    rlcore/actors.py: neither may pull torch in (the learner and engine classes load lazily)."""
    code = (
        "import sys, rlcore.verifier_actors, rlcore.actors\n"
        "assert 'torch' not in sys.modules, 'torch'\n"
        "rlcore.actors.LearnerWorker  # the policy's actor still resolves, bringing torch\n"
        "assert 'torch' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_readme_verifier_example_runs_as_printed():
    readme = (ROOT / "README.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "Verifier" in b]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the project's own README
    from rlcore.verifiers import Sample

    verifier = namespace["ShortAnswer"](namespace["LengthConfig"](max_words=3))
    ok = verifier.verify(Sample(prompt="p", response="two words"))
    long = verifier.verify(Sample(prompt="p", response="one two three four"))
    assert (ok.reward, ok.error, long.reward, long.error) == (1.0, None, 0.0, None)
    assert ok.details == {"words": 2}
