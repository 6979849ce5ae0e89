"""Finding verifiers by name: built-ins, entry points (group `rlcore.verifiers`), `pkg.mod:Class`,
or a TRL-style reward function `pkg.mod:fn` (verifiers/function.py).

An unknown name is an error at start-up, never a silent reward of 0.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from rlcore.verifiers.base import Verifier

# Built-ins by import path, so that importing the registry does not import every verifier's
# dependencies (math-verify, jsonschema, language id, embedding models).
BUILTINS: dict[str, str] = {
    "math": "rlcore.verifiers.math:MathVerifier",
    "format": "rlcore.verifiers.format:FormatVerifier",
    "code": "rlcore.verifiers.code:CodeVerifier",
    "ifeval": "rlcore.verifiers.ifeval:IFEvalVerifier",
    "tool_call": "rlcore.verifiers.tool_call:ToolCallVerifier",
    "language": "rlcore.verifiers.language:LanguageVerifier",
    "similarity": "rlcore.verifiers.similarity:SimilarityVerifier",
    "reward_model": "rlcore.verifiers.reward_model:RewardModelVerifier",
    "judge": "rlcore.verifiers.judge:JudgeVerifier",
    "reasoning_gym": "rlcore.verifiers.reasoning_gym:GymVerifier",
}


class UnknownVerifierError(KeyError):
    """A verifier name that is neither built in, registered, nor an importable `module:Class`."""


def _load_path(path: str) -> type[Verifier]:
    module_name, _, attr = path.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UnknownVerifierError(f"cannot import verifier {path!r}: {e}") from e
    if callable(obj) and not isinstance(obj, type):  # a TRL-style reward function
        from rlcore.verifiers.function import FunctionVerifier

        return FunctionVerifier
    if not (isinstance(obj, type) and issubclass(obj, Verifier)):
        raise UnknownVerifierError(
            f"{path!r} is neither a subclass of rlcore.verifiers.Verifier nor a reward function"
        )
    return obj


def available() -> list[str]:
    """Names of built-in and entry-point verifiers."""
    names = set(BUILTINS)
    names.update(ep.name for ep in entry_points(group="rlcore.verifiers"))
    return sorted(names)


def get_verifier_class(name: str) -> type[Verifier]:
    """The class for a built-in name, an entry-point name, or an import path `pkg.mod:Class`."""
    if name in BUILTINS:
        return _load_path(BUILTINS[name])
    for ep in entry_points(group="rlcore.verifiers"):
        if ep.name == name:
            return _load_path(ep.value)
    if ":" in name:
        return _load_path(name)
    raise UnknownVerifierError(
        f"unknown verifier {name!r}; built in or registered: {', '.join(available())}; "
        "or name your own class as 'my_pkg.my_mod:MyVerifier'"
    )
