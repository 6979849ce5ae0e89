"""Finding verifiers by name, building them from config, and parsing a row's `verifier` field."""

from importlib.metadata import EntryPoint

import pytest
from rlcore.verifiers import (
    CompositeVerifier,
    UnknownVerifierError,
    available,
    build,
    build_verifier,
    get_verifier_class,
    parse_spec,
)
from rlcore.verifiers import registry as registry_mod
from rlcore.verifiers.format import FormatVerifier
from rlcore.verifiers.math import MathConfig, MathVerifier


@pytest.mark.parametrize(
    ("spec", "parts"),
    [
        ("math", (("math", 1.0),)),
        (" math ", (("math", 1.0),)),
        (["math", "format"], (("math", 1.0), ("format", 1.0))),
        ([{"name": "math", "weight": 2}, {"name": "format"}], (("math", 2.0), ("format", 1.0))),
        ([{"name": "pkg.mod:Cls", "weight": 0.5}], (("pkg.mod:Cls", 0.5),)),
    ],
)
def test_parse_spec(spec, parts) -> None:
    assert parse_spec(spec) == parts


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ([], "non-empty"),
        (None, "name or"),
        (3, "name or"),
        ([{"weight": 1}], "name or"),
        ([{"name": "math", "weight": "heavy"}], "number"),
        ([{"name": "math", "weight": True}], "number"),
        ([{"name": "math", "wieght": 1}], "unknown key"),
        (["math", "math"], "twice"),
    ],
)
def test_parse_spec_rejects(spec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)


def test_builtins_resolve() -> None:
    assert get_verifier_class("math") is MathVerifier
    assert get_verifier_class("format") is FormatVerifier
    assert {"math", "format", "code"} <= set(available())
    assert get_verifier_class("rlcore.verifiers.math:MathVerifier") is MathVerifier


@pytest.mark.parametrize(
    "name",
    [
        "nope",
        "no_such_pkg.mod:Cls",
        "rlcore.verifiers.math:Nope",
        "rlcore.verifiers.math:MathConfig",
    ],
)
def test_unknown_names_fail_loudly(name: str) -> None:
    with pytest.raises(UnknownVerifierError):
        build_verifier(name)


def test_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(
        name="mine", value="rlcore.verifiers.format:FormatVerifier", group="rlcore.verifiers"
    )
    monkeypatch.setattr(
        registry_mod, "entry_points", lambda group: [ep] if group == "rlcore.verifiers" else []
    )
    assert get_verifier_class("mine") is FormatVerifier
    assert "mine" in available()


def test_build_with_config_alias_and_composite() -> None:
    v = build_verifier("math", {"math": {"timeout_s": 3, "strict": False}})
    assert isinstance(v, MathVerifier) and v.config == MathConfig(timeout_s=3, strict=False)
    given = MathConfig(reward_correct=5.0)
    assert build_verifier("math", {"math": given}).config is given
    alias = build(
        "loose", {"loose": {"path": "rlcore.verifiers.math:MathVerifier", "strict": False}}
    )
    assert isinstance(alias, MathVerifier) and alias.name == "loose"
    comp = build([{"name": "math", "weight": 1}, {"name": "format", "weight": 0.1}])
    assert isinstance(comp, CompositeVerifier)
    assert comp.describe() == [{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.1}]


def test_bad_config_key_names_the_verifier() -> None:
    with pytest.raises(ValueError, match=r"'math'.*tiemout_s"):
        build_verifier("math", {"math": {"tiemout_s": 3}})
