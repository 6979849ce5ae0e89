"""From a data row's `verifier` field and per-verifier YAML config to scored results.

A row's `verifier` is a name (`"math"`), a list of names (weight 1 each), or a weighted list
(`[{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.2}]`). A name is a built-in, an
entry point of group `rlcore.verifiers`, an import path `pkg.mod:Class`, or an alias defined in the
config mapping with a `path:` key:

    configs = {"math": {"timeout_s": 5},
               "strict_math": {"path": "rlcore.verifiers.math:MathVerifier", "strict": True}}

The trainer builds one `Scorer` at start-up (unknown names and bad config keys fail there) and scores
every step's batch with it; the worker processes live as long as the Scorer:

    scorer = Scorer.from_specs((row["verifier"] for row in dataset), configs, workers=4)
    results = scorer.score([(row["verifier"], sample) for row, sample in batch])
    scorer.stats()  # {"scored": ..., "restarts": ..., "errors/timeout": ...}
    scorer.close()

Rule-based verifiers run in a `WorkerPool` (per-sample timeout, main thread of a worker process).
A model-based verifier (`model_based = True`, or any class that overrides `verify_batch`: reward
model, judge, embeddings) is called in the calling process with all of a step's samples for it at
once. A weighted list is scored component by component and combined in the parent
(composite.combine). The trainer splits the two kinds over actor groups of their own and combines a
row's components itself:

    specs, pairs = flatten(items)          # [(name, sample), ...], one per component
    results = assemble(specs, scored)      # scored: one Result per pair, in order
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.composite import CompositeVerifier, combine
from rlcore.verifiers.function import FunctionConfig
from rlcore.verifiers.pool import WorkerPool, error_kind
from rlcore.verifiers.registry import get_verifier_class

Spec = str | Sequence[str | Mapping[str, Any]]
Component = tuple[str, float]


def parse_spec(spec: Any) -> tuple[Component, ...]:
    """Normalise a row's `verifier` field to ((name, weight), ...); ValueError says what is wrong."""
    if isinstance(spec, str):
        if not spec.strip():
            raise ValueError("verifier name is empty")
        return ((spec.strip(), 1.0),)
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError(
            f"verifier must be a name or a non-empty list of names or {{name, weight}}, got {spec!r}"
        )
    out: list[Component] = []
    for item in spec:
        if isinstance(item, str):
            name, weight = item, 1.0
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            extra = set(item) - {"name", "weight"}
            if extra:
                raise ValueError(f"verifier entry {dict(item)!r}: unknown key(s) {sorted(extra)}")
            name, weight = item["name"], item.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"verifier {name!r}: weight must be a number, got {weight!r}")
        else:
            raise ValueError(
                f"verifier list entry must be a name or {{name, weight}}, got {item!r}"
            )
        out.append((name.strip(), float(weight)))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"verifier list names a verifier twice: {names}")
    return tuple(out)


def _make_config(name: str, cls: type[Verifier], config: Any) -> VerifierConfig:
    if config is None:
        return cls.config_cls()
    if isinstance(config, VerifierConfig):
        return config
    fields = dict(config)
    fields.pop("path", None)
    known = {f.name for f in dataclasses.fields(cls.config_cls)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(
            f"verifier {name!r}: unknown config key(s) {sorted(unknown)}; {cls.__name__} takes "
            f"{sorted(known)}"
        )
    return cls.config_cls(**fields)


def build_verifier(name: str, configs: Mapping[str, Any] | None = None) -> Verifier:
    """One verifier by name, with its config from `configs[name]` (fields, or a config object).

    The instance's `name` is the name asked for (an alias or import path), so results and pool
    items are keyed by what the config and data rows say. Raises UnknownVerifierError for an
    unknown name, ValueError for a bad config key."""
    config = (configs or {}).get(name)
    path = config.get("path") if isinstance(config, Mapping) else None
    cls = get_verifier_class(path or name)
    made = _make_config(name, cls, config)
    if isinstance(made, FunctionConfig) and not made.function:  # a reward function: its path
        made = dataclasses.replace(made, function=path or name)
    return _named(cls(made), name)


def build(spec: Any, configs: Mapping[str, Any] | None = None) -> Verifier:
    """A row's `verifier` field as one Verifier: the named one, or a CompositeVerifier."""
    parts = parse_spec(spec)
    if len(parts) == 1 and parts[0][1] == 1.0:
        return build_verifier(parts[0][0], configs)
    return CompositeVerifier([(build_verifier(n, configs), w) for n, w in parts])


def _named(v: Verifier, name: str) -> Verifier:
    """Give an instance the name it was asked for (an alias or an import path)."""
    if v.name != name:
        v.name = name  # type: ignore[misc]  # instance attribute shadows the class-level name
    return v


def _batched_in_process(cls: type[Verifier]) -> bool:
    """Model-based verifiers batch on their model in the calling process (no worker pool)."""
    return cls.model_based or cls.verify_batch is not Verifier.verify_batch


def is_model_based(name: str, configs: Mapping[str, Any] | None = None) -> bool:
    """Whether the verifier `name` (an alias resolved through `configs`) holds a model; finds the
    class without building it (nothing is loaded)."""
    config = (configs or {}).get(name)
    path = config.get("path") if isinstance(config, Mapping) else None
    return _batched_in_process(get_verifier_class(path or name))


def flatten(items: Sequence[tuple[Any, Sample]]) -> tuple[list[tuple[Component, ...]], list[Any]]:
    """(row spec, sample) items -> (parsed specs, [(verifier name, sample)] one per component)."""
    specs = [parse_spec(spec) for spec, _ in items]
    pairs = [(n, s) for (_, s), parts in zip(items, specs, strict=True) for n, _ in parts]
    return specs, pairs


def assemble(specs: Sequence[tuple[Component, ...]], scored: Sequence[Result]) -> list[Result]:
    """One Result per item from its components' results (in `flatten` order): a lone weight-1
    verifier's own result, else their weighted combination."""
    out: list[Result] = []
    k = 0
    for parts in specs:
        mine = [(n, w, scored[k + j]) for j, (n, w) in enumerate(parts)]
        k += len(parts)
        out.append(mine[0][2] if len(mine) == 1 and mine[0][1] == 1.0 else combine(mine))
    if k != len(scored):
        raise ValueError(f"{len(scored)} component results for {k} components")
    return out


class Scorer:
    """Scores (row verifier spec, Sample) items: one persistent pool for rule-based verifiers,
    in-process batches for model-based ones, weighted lists combined here. Build once, reuse."""

    def __init__(
        self,
        names: Iterable[str],
        configs: Mapping[str, Any] | None = None,
        workers: int = 1,
        mp_context: str = "spawn",
    ) -> None:
        self.configs = dict(configs or {})
        self.verifiers = {n: build_verifier(n, self.configs) for n in sorted(set(names))}
        pooled = {n: v for n, v in self.verifiers.items() if not _batched_in_process(type(v))}
        self._pooled = set(pooled)
        self.pool = WorkerPool(pooled, workers=workers, mp_context=mp_context) if pooled else None
        self._local_errors: Counter[str] = Counter()

    def load_models(self) -> None:
        """Loads every in-process (model-based) verifier's model now (`setup()`), so that the
        first batch is not charged with it and a bad model path fails at start-up."""
        for name, v in self.verifiers.items():
            if name not in self._pooled:
                v.setup()

    @classmethod
    def from_specs(
        cls,
        specs: Iterable[Any],
        configs: Mapping[str, Any] | None = None,
        workers: int = 1,
        mp_context: str = "spawn",
    ) -> Scorer:
        """A Scorer for every verifier named by these row specs (ValueError on a malformed one)."""
        names = {n for spec in specs for n, _ in parse_spec(spec)}
        return cls(names, configs, workers=workers, mp_context=mp_context)

    def score(
        self,
        items: Sequence[tuple[Any, Sample]],
        progress: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """One Result per item, in input order. `progress(n)`: n more component scores done."""
        specs, pairs = flatten(items)
        return assemble(specs, self.score_components(pairs, progress))

    def score_components(
        self,
        pairs: Sequence[tuple[str, Sample]],
        progress: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """One Result per (verifier name, sample), in input order."""
        missing = {n for n, _ in pairs} - set(self.verifiers)
        if missing:
            raise KeyError(
                f"verifier(s) {sorted(missing)} were not declared when this Scorer was built "
                f"(it has {sorted(self.verifiers)})"
            )
        scores: list[Result | None] = [None] * len(pairs)
        pooled = [k for k, (n, _) in enumerate(pairs) if n in self._pooled]
        if pooled and self.pool is not None:
            got = self.pool.score([pairs[k] for k in pooled], progress)
            for k, r in zip(pooled, got, strict=True):
                scores[k] = r
        by_name: dict[str, list[int]] = defaultdict(list)
        for k, (n, _) in enumerate(pairs):
            if scores[k] is None:
                by_name[n].append(k)
        for n, ks in by_name.items():
            for k, r in zip(ks, self._local_batch(n, [pairs[k][1] for k in ks]), strict=True):
                scores[k] = r
            if progress is not None:
                progress(len(ks))
        return [self._finite(n, r) for (n, _), r in zip(pairs, scores, strict=True)]  # type: ignore[arg-type]

    def _finite(self, name: str, r: Result) -> Result:
        """A NaN or infinite score (a reward model can return one) would make a whole group's
        advantages NaN: it is recorded as a "nonfinite" error with reward 0, and counted."""
        if math.isfinite(r.reward):
            return r
        self._local_errors["nonfinite"] += 1
        err = f"nonfinite: verifier {name!r} returned reward {r.reward}; scored 0"
        return Result(reward=0.0, details=r.details, error=err, elapsed_s=r.elapsed_s)

    def _local_batch(self, name: str, samples: list[Sample]) -> list[Result]:
        t0 = time.perf_counter()
        try:
            res = self.verifiers[name].verify_batch(samples)
            if len(res) != len(samples):
                raise RuntimeError(f"returned {len(res)} results for {len(samples)} samples")
        except Exception as e:  # recorded per sample, never dropped
            per = (time.perf_counter() - t0) / max(1, len(samples))
            err = f"crash: {type(e).__name__}: {e}"
            res = [Result(reward=0.0, error=err, elapsed_s=per) for _ in samples]
        for r in res:
            if r.error is not None:
                self._local_errors[error_kind(r.error)] += 1
        return res

    @property
    def error_counts(self) -> Counter[str]:
        """Errors by kind over every component scored so far."""
        return (self.pool.error_counts if self.pool else Counter()) + self._local_errors

    def stats(self) -> dict[str, Any]:
        base = self.pool.stats() if self.pool else {"scored": 0, "restarts": 0}
        for k, v in self._local_errors.items():
            base[f"errors/{k}"] = base.get(f"errors/{k}", 0) + v
        return base

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def json_row(line: str) -> dict[str, Any]:
    """One JSONL line as an object; ValueError says what is wrong."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    return row


def row_item(row: dict[str, Any]) -> tuple[Any, Sample]:
    """(verifier spec, Sample) from a row of `rlcore verify`'s format (`verifier`, `response`,
    optional `prompt`, `reference`, `meta`, `id`); ValueError says what is wrong."""
    for key in ("verifier", "response"):
        if key not in row:
            raise ValueError(f"missing field {key!r}")
    parse_spec(row["verifier"])
    if not isinstance(row["response"], str):
        raise ValueError("'response' must be a string")
    prompt = row.get("prompt", "")
    if not isinstance(prompt, (str, list)):
        raise ValueError("'prompt' must be a string or a list of messages")
    reference = row.get("reference", {})
    if not isinstance(reference, dict):
        raise ValueError("'reference' must be an object")
    meta = row.get("meta", {})
    meta = dict(meta) if isinstance(meta, dict) else {"meta": meta}
    if "id" in row:
        meta["id"] = row["id"]
    return row["verifier"], Sample(
        prompt=prompt, response=row["response"], reference=reference, metadata=meta
    )
