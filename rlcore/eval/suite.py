"""The eval schema: a suite of benchmarks and how to sample them, in one frozen-dataclass schema.

    suite = load_suite("tiny", ["n=8", "k=[1,2,4,8]", "sampling.max_tokens=64"])

A suite is a YAML file in configs/ (`configs/eval_<name>.yaml`, or any path) merged onto `SuiteConfig`;
`key=value` overrides go on top, so a misspelled key fails at once with its name. Adding a suite or a
benchmark is YAML only:

    benchmarks:
      - {name: aime24, loader: mmath, args: {source: AIME2024}, bucket: math, verifier: math}
      - {name: mine, loader: jsonl, args: {path: data/my_eval.jsonl}, bucket: custom, limit: 50}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlcore.eval.loaders import Item, LoadContext, get_loader

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class SuiteError(ValueError):
    """A suite that cannot run: names the file or key at fault."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = -1
    max_tokens: int = 512
    seed: int = 0  # the engine's seed, and part of the cache key: change it for fresh samples


@dataclass(frozen=True)
class SamplingOverride:
    """Per-benchmark changes to the suite's sampling; None keeps the suite's value."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class BenchmarkConfig:
    name: str = ""  # unique in the suite: cache files and results are keyed by it
    loader: str = ""  # rlcore/eval/loaders.py name, or pkg.mod:function
    args: dict[str, Any] = field(default_factory=dict)  # the loader's own arguments
    limit: int = 0  # first N items (per group, e.g. per language); 0 = all
    bucket: str = "other"  # capability bucket: math | code | if | tool | multilingual | long | ...
    verifier: Any = "math"  # decides "correct" for pass@k: a name or a weighted list
    extra_verifiers: list[str] = field(default_factory=list)  # also scored: <name>@n metrics
    vote: bool | None = None  # maj@k over extracted answers; None: on for the math verifier
    # "start": inside a training run every answer is judged against the run's first answer to
    # the same prompt, handed to the verifier as reference["response"] (a pairwise `judge`:
    # conversational quality kept, in the retention table); "" = against the item's reference
    against: str = ""
    sampling: SamplingOverride = field(default_factory=SamplingOverride)
    # inside a training run: evaluated at step 0, at the last step and at multiples of this many
    # RL steps only (0: at every evaluation), so a costly bucket can be kept to the two ends while
    # the trained task draws its curve
    every: int = 0


@dataclass(frozen=True)
class SuiteConfig:
    name: str = "custom"
    benchmarks: list[BenchmarkConfig] = field(default_factory=list)
    k: list[int] = field(default_factory=lambda: [1])  # pass@k / maj@k reported for these k
    n: int = 0  # samples per problem; 0 = max(k)
    sampling: Sampling = field(default_factory=Sampling)
    limit: int = 0  # caps every benchmark's limit (0 = no cap): quick slices of a whole suite
    only: list[str] = field(default_factory=list)  # run just these benchmarks (names or buckets)
    engine: str = "auto"  # auto | vllm | hf (rlcore.rollout.make_engine)
    dtype: str = "float32"
    max_model_len: int = 0  # 0 = the model's window (max_position_embeddings)
    overflow: str = "skip"  # a prompt too long for the window: skip (reported) | truncate (left)
    prompt_format: str = ""  # chat | raw; "" = the run's data.prompt_format, else chat
    raw_template: str = ""  # "" = the run's data.raw_template, else "Q: {prompt}\nA:"
    batch_prompts: int = 64  # prompts per engine call; samples are flushed to disk after each
    verifier_workers: int = 2  # processes scoring rule-based verifiers
    verifier_options: dict[str, Any] = field(default_factory=dict)  # {code: {wall_s: 5}, ...}
    bootstrap: int = 1000  # bootstrap resamples for the CIs (0 = none)
    out_dir: str = ""  # default: RUN/eval, or runs/eval-<model> for a plain model
    every: int = 0  # run sweeps: checkpoints whose step is a multiple (0 = all); the last always
    base: bool = True  # run sweeps: also evaluate the run's starting model ("start", step 0)
    margin: float = 0.05  # retention alarm: a bucket dropping more than this below the start
    alarm_metric: str = "mean@n"  # the bucket metric the retention alarm watches

    @property
    def num_samples(self) -> int:
        return self.n or max(self.k)


def suite_path(name: str) -> Path:
    """A suite name (`tiny` -> configs/eval_tiny.yaml) or a YAML path."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise SuiteError(f"suite file not found: {p}")
        return p
    p = CONFIG_DIR / f"eval_{name}.yaml"
    if not p.is_file():
        known = sorted(f.stem.removeprefix("eval_") for f in CONFIG_DIR.glob("eval_*.yaml"))
        raise SuiteError(f"unknown suite {name!r}; known: {', '.join(known)} (or a .yaml path)")
    return p


def _bench_override(cfg: Any, item: str) -> Any:
    """`benchmarks.<name or index>.<key>=value`: one benchmark's field (lists do not merge)."""
    key, _, value = item.partition("=")
    _, sel, rest = (key.split(".", 2) + ["", ""])[:3]
    data: Any = OmegaConf.to_container(cfg)
    names = [b["name"] for b in data["benchmarks"]]
    i = int(sel) if sel.isdigit() else names.index(sel) if sel in names else -1
    if not 0 <= i < len(names) or not rest:
        raise SuiteError(f"override {item!r}: no benchmark {sel!r} (has {names})")
    b = OmegaConf.merge(
        OmegaConf.structured(BenchmarkConfig),
        data["benchmarks"][i],
        OmegaConf.from_dotlist([f"{rest}={value}"]),
    )
    data["benchmarks"][i] = OmegaConf.to_container(b)
    return OmegaConf.merge(OmegaConf.structured(SuiteConfig), data)


def load_suite(name: str | None, overrides: list[str] | None = None) -> SuiteConfig:
    """Schema defaults <- the suite's YAML <- `key=value` overrides, validated.
    `benchmarks.aime24.limit=10` (or `benchmarks.0.limit=10`) changes one benchmark."""
    cfg = OmegaConf.structured(SuiteConfig)
    sources: list[tuple[str, Any]] = []
    if name:
        p = suite_path(name)
        sources.append((str(p), lambda c: OmegaConf.merge(c, OmegaConf.load(p))))
    for item in overrides or []:
        if "=" not in item:
            raise SuiteError(f"override {item!r} is not key=value")
        if item.startswith("benchmarks."):
            sources.append((f"override {item!r}", lambda c, item=item: _bench_override(c, item)))
        else:
            merge = lambda c, item=item: OmegaConf.merge(c, OmegaConf.from_dotlist([item]))  # noqa: E731
            sources.append((f"override {item!r}", merge))
    for where, apply in sources:
        try:
            cfg = apply(cfg)
        except OmegaConfBaseException as e:
            raise SuiteError(f"{where}: {str(e).splitlines()[0]}") from None
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, SuiteConfig)
    validate(obj)
    return obj


def validate(cfg: SuiteConfig) -> None:
    if not cfg.benchmarks:
        raise SuiteError(f"suite {cfg.name!r} lists no benchmarks")
    names = [b.name for b in cfg.benchmarks]
    dup = {n for n in names if names.count(n) > 1}
    if dup or not all(names):
        raise SuiteError(f"benchmark names must be unique and non-empty: {names}")
    if not cfg.k or min(cfg.k) < 1:
        raise SuiteError(f"k: {cfg.k} must list positive integers")
    if cfg.num_samples < max(cfg.k):
        raise SuiteError(f"n={cfg.n} is smaller than the largest k={max(cfg.k)}")
    if cfg.overflow not in ("skip", "truncate"):
        raise SuiteError(f"overflow: {cfg.overflow!r} is not skip or truncate")
    if cfg.engine not in ("auto", "vllm", "hf"):
        raise SuiteError(f"engine: {cfg.engine!r} is not one of auto, vllm, hf")
    for b in cfg.benchmarks:
        if b.against not in ("", "start"):
            raise SuiteError(f"benchmark {b.name!r}: against: {b.against!r} is not '' or 'start'")
    known = set(names) | {b.bucket for b in cfg.benchmarks}
    if set(cfg.only) - known:
        raise SuiteError(f"only: {sorted(set(cfg.only) - known)} name no benchmark or bucket")


def selected(cfg: SuiteConfig) -> list[BenchmarkConfig]:
    return [b for b in cfg.benchmarks if not cfg.only or {b.name, b.bucket} & set(cfg.only)]


def sampling_for(cfg: SuiteConfig, bench: BenchmarkConfig) -> Sampling:
    changes = {k: v for k, v in dataclasses.asdict(bench.sampling).items() if v is not None}
    return dataclasses.replace(cfg.sampling, **changes)


def votes_on(bench: BenchmarkConfig) -> bool:
    return bench.vote if bench.vote is not None else bench.verifier == "math"


def load_items(cfg: SuiteConfig, bench: BenchmarkConfig, ctx: LoadContext) -> list[Item]:
    """The benchmark's items, limited (per group) by its limit and the suite's cap."""
    try:
        items = get_loader(bench.loader)(dict(bench.args), ctx)
    except (ValueError, KeyError, TypeError) as e:
        raise SuiteError(f"benchmark {bench.name!r} (loader {bench.loader!r}): {e}") from e
    limits = [x for x in (bench.limit, cfg.limit) if x > 0]
    if limits:
        cap, kept = min(limits), []
        seen: dict[Any, int] = {}
        for it in items:
            g = it.get("group")
            if seen.get(g, 0) < cap:
                seen[g] = seen.get(g, 0) + 1
                kept.append(it)
        items = kept
    ids = [str(it["id"]) for it in items]
    if len(set(ids)) != len(ids):
        raise SuiteError(f"benchmark {bench.name!r}: item ids are not unique")
    return items
