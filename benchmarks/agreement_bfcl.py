"""Agreement of the `tool_call` verifier with BFCL v4's gold answers (and BFCL's own AST checker).

Loads BFCL v4 simple (python), multiple, parallel, parallel_multiple and irrelevance items with their
possible answers from the installed `bfcl-eval` data (offline), builds responses per item:
  gold        the first acceptable value of every argument (should be judged correct)
  swapped     gold with parallel calls reversed (still correct; parallel categories only)
  wrong_value one argument's value replaced by one not among the acceptable ones (incorrect)
  missing_arg a required argument dropped (incorrect)
  wrong_func  the function name changed to another one (incorrect)
  no_call     plain text (correct only for irrelevance); irrelevance also gets a call (incorrect)
and prints agreement (verdict == expectation) per category and perturbation. If BFCL's checker can be
imported (bfcl-eval is installed with --no-deps here; its model-handler registry pulls in every vendor
SDK, so that one module is stubbed), it prints how often our verdict equals BFCL's on the same calls.

Run: python benchmarks/agreement_bfcl.py [--json out.json] [--limit N]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import types
from collections import defaultdict
from pathlib import Path

from rlcore.verifiers.base import Sample
from rlcore.verifiers.tool_call import ToolCallVerifier

CATEGORIES = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "irrelevance": "irrelevance",
}


def data_dir() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bfcl-eval is not installed: pip install --no-deps bfcl-eval")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load(cat: str, limit: int | None) -> list[tuple[dict, list]]:
    d = data_dir()
    items = [json.loads(x) for x in (d / f"BFCL_v4_{CATEGORIES[cat]}.json").open()]
    gold = {}
    pa = d / "possible_answer" / f"BFCL_v4_{CATEGORIES[cat]}.json"
    if pa.exists():
        gold = {g["id"]: g["ground_truth"] for g in map(json.loads, pa.open())}
    out = [(it, gold.get(it["id"], [])) for it in items]
    return out[:limit] if limit else out


def bfcl_checker():
    try:
        stub = types.ModuleType("bfcl_eval.constants.model_config")
        stub.MODEL_CONFIG_MAPPING = defaultdict(
            lambda: types.SimpleNamespace(underscore_to_dot=False)
        )
        sys.modules.setdefault("bfcl_eval.constants.model_config", stub)
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    except Exception as e:  # noqa: BLE001 - optional comparison
        print(f"(BFCL checker not importable: {e})")
        return None
    return lambda funcs, calls, gt, cat: ast_checker(
        funcs, [{c["name"]: c["arguments"]} for c in calls], gt, Language.PYTHON, cat, "m"
    )["valid"]


def gold_calls(gt: list) -> list[dict]:
    calls = []
    for g in gt:
        ((name, args),) = g.items()
        chosen = {}
        for k, opts in args.items():
            first = next((o for o in opts if o != ""), None)
            if first is not None or "" not in opts:
                chosen[k] = _first_value(first)
        calls.append({"name": name, "arguments": chosen})
    return calls


def _first_value(v):
    if isinstance(v, dict):  # nested possible answers: {"key": [ok values]}
        return {
            k: _first_value(next((o for o in opts if o != ""), opts[0]))
            for k, opts in v.items()
            if any(o != "" for o in opts)
        }
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return [_first_value(x) for x in v]
    return v


def _bad_value(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int | float):
        return v + 7919
    if isinstance(v, str):
        return v + " zzqx"
    if isinstance(v, list):
        return v + v[:1] if v else ["zzqx"]
    return "zzqx"


def perturbations(item: dict, gt: list, cat: str) -> list[tuple[str, list[dict] | str, bool]]:
    if cat == "irrelevance":
        f = item["function"][0]
        req = f["parameters"].get("required", [])
        call = {"name": f["name"], "arguments": {k: 1 for k in req}}
        return [
            ("no_call", "I cannot help with that using the available tools.", True),
            ("a_call", [call], False),
        ]
    gold = gold_calls(gt)
    out: list[tuple[str, list[dict] | str, bool]] = [("gold", gold, True)]
    if len(gold) > 1:
        out.append(("swapped", gold[::-1], True))
    funcs = {f["name"]: f for f in item["function"]}
    c0 = gold[0]
    opts0 = next(iter(gt[0].values()))
    for k, v in c0["arguments"].items():
        if k in opts0:
            bad = copy.deepcopy(gold)
            bad[0]["arguments"][k] = _bad_value(v)
            out.append(("wrong_value", bad, False))
            break
    req = funcs[c0["name"]]["parameters"].get("required", [])
    if req:
        bad = copy.deepcopy(gold)
        bad[0]["arguments"].pop(req[0], None)
        out.append(("missing_arg", bad, False))
    other = [n for n in funcs if n != c0["name"]]
    bad = copy.deepcopy(gold)
    bad[0]["name"] = other[0] if other else c0["name"] + "_v2"
    out.append(("wrong_func", bad, False))
    return out


def render(calls: list[dict] | str, style: int) -> str:
    if isinstance(calls, str):
        return calls
    if style % 2 == 0:  # Qwen/Hermes blocks
        return "\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)
    return json.dumps([{"name": c["name"], "arguments": json.dumps(c["arguments"])} for c in calls])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--limit", type=int, default=None, help="items per category")
    args = ap.parse_args(argv)
    verifier, checker = ToolCallVerifier(), bfcl_checker()
    agree = defaultdict(lambda: [0, 0])
    bfcl_agree = defaultdict(lambda: [0, 0])
    disagreements = []
    for cat in CATEGORIES:
        for n, (item, gt) in enumerate(load(cat, args.limit)):
            for kind, calls, expect in perturbations(item, gt, cat):
                ref = {"tools": item["function"], "ground_truth": gt}
                r = verifier.verify(Sample(prompt="", response=render(calls, n), reference=ref))
                ok = bool(r.correct) == expect
                agree[(cat, kind)][0] += ok
                agree[(cat, kind)][1] += 1
                if not ok and len(disagreements) < 30:
                    disagreements.append(
                        {"id": item["id"], "kind": kind, "details": r.details, "error": r.error}
                    )
                if checker is not None and not isinstance(calls, str) and cat != "irrelevance":
                    try:
                        theirs = checker(item["function"], calls, gt, cat)
                    except Exception:  # noqa: BLE001 - their checker crashing counts as "invalid"
                        theirs = False
                    bfcl_agree[(cat, kind)][0] += theirs == bool(r.correct)
                    bfcl_agree[(cat, kind)][1] += 1
    rows = {f"{c}/{k}": {"agree": a / t, "n": t} for (c, k), (a, t) in agree.items()}
    bfcl = {f"{c}/{k}": {"agree": a / t, "n": t} for (c, k), (a, t) in bfcl_agree.items()}
    print(f"{'category/perturbation':34s} {'n':>5s} {'vs expected':>12s} {'vs BFCL':>9s}")
    for key, v in rows.items():
        b = f"{bfcl[key]['agree']:.3f}" if key in bfcl else "-"
        print(f"{key:34s} {v['n']:5d} {v['agree']:12.3f} {b:>9s}")
    total = sum(t for _, t in agree.values())
    overall = sum(a for a, _ in agree.values()) / total
    print(f"{'overall':34s} {total:5d} {overall:12.3f}")
    out = {
        "vs_expected": rows,
        "vs_bfcl_checker": bfcl,
        "overall": overall,
        "disagreements": disagreements,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
