"""Bad input, drawn at random from the schema: every `key=value` override either gives a valid config
or is refused (ConfigError; `rlcore train` exits 2) with a message naming the key, before any run
directory is written. Values drawn per field type: wrong types, out-of-range numbers, unknown enum
values, in-range values; pairs of overrides for contradictory combinations."""

from __future__ import annotations

import dataclasses
import random
import typing
from typing import Any, Literal

import pytest

from rlcore.config import RANGES, ConfigError, TrainConfig, load_config
from rlcore.preflight import check

# plain strings name paths and addresses (checked when the run starts, not by the schema)
SKIP = {"run_dir", "resume", "ray_address", "model.path", "eval.suite", "eval.metric"}


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        key = prefix + f.name
        if dataclasses.is_dataclass(t):
            out += _leaves(t, key + ".")
        elif key not in SKIP:
            out.append((key, t))
    return out


def _kind(t: Any) -> tuple[str, tuple[Any, ...], bool]:
    """(int | float | bool | literal | other, literal values, optional)."""
    optional = False
    if typing.get_origin(t) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        optional, t = True, args[0]
    if typing.get_origin(t) is Literal:
        return "literal", typing.get_args(t), optional
    for name, py in (("bool", bool), ("int", int), ("float", float)):
        if t is py:
            return name, (), optional
    return "other", (), optional


def _draw(rng: random.Random, key: str, t: Any) -> tuple[str, bool] | None:
    """A value for `key` as an override string, and whether it must be refused."""
    kind, values, optional = _kind(t)
    if kind == "other":
        return None
    if rng.random() < 0.2:  # the wrong type
        return rng.choice(["abc", "[1, 2]", "{a: 1}"]), True
    if kind == "literal":
        if rng.random() < 0.5:
            return "not_a_" + key.split(".")[-1], True
        return str(rng.choice(values)), False
    if kind == "bool":
        return rng.choice(["true", "false"]), False
    if optional and rng.random() < 0.1:
        return "null", False
    number = rng.choice([-(10**6), -3, -1, -0.5, 0, 0.5, 1, 2, 3, 7, 64, 10**6])
    if kind == "int":
        number = int(number)
    spec = RANGES.get(key)
    return str(number), spec is not None and not _inside(number, spec)


def _inside(x: float, spec: str) -> bool:
    lo, hi = (float(v) for v in spec[1:-1].split(","))
    return (x >= lo if spec[0] == "[" else x > lo) and (x <= hi if spec[-1] == "]" else x < hi)


LEAVES = _leaves(TrainConfig)


def _named(message: str, keys: list[str]) -> bool:
    # a full key, or (the algorithm's own checks, "algo: kl_estimator ...") its last part
    return any(k in message or k.split(".")[-1] in message for k in keys)


@pytest.mark.parametrize("seed", range(6))
def test_random_overrides_are_valid_or_refused_naming_the_key(seed):
    rng = random.Random(seed)
    refused = accepted = 0
    for _ in range(80):
        picks = rng.sample(LEAVES, rng.choice([1, 1, 2]))  # distinct keys
        drawn = [(k, _draw(rng, k, t)) for k, t in picks]
        drawn = [(k, d) for k, d in drawn if d is not None]
        if not drawn:
            continue
        overrides = [f"{k}={v}" for k, (v, _) in drawn]
        must_refuse = any(bad for _, (_, bad) in drawn)
        try:
            cfg = load_config(None, overrides)
            check(cfg)  # what `rlcore train` checks next
        except ConfigError as e:
            refused += 1
            assert _named(str(e), [k for k, _ in drawn]), (overrides, str(e))
            continue
        accepted += 1
        assert not must_refuse, f"{overrides} was accepted: {cfg}"
    assert refused and accepted  # the draw exercised both outcomes


@pytest.mark.parametrize(
    "override",
    ["steps=-3", "learner.lr=-1", "verifier.timeout_s=0", "rollout.engine=tpu", "rollout.n=abc"],
)
def test_rlcore_train_exits_2_and_writes_no_run_directory(override, tmp_path, monkeypatch, capsys):
    from rlcore.launch.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", override]) == 2
    assert override.split("=")[0] in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
