"""`tool_call`: parse the function calls in a response and match them to the expected calls.

Reference: `tools` (function schemas: {"name", "parameters": JSON schema}, optionally wrapped as
{"type": "function", "function": {...}}; BFCL's type names "dict", "float", "tuple", "any" are
accepted), and `ground_truth`: the expected calls, each either BFCL style `{"fn": {"arg": [ok values]}}`
or `{"name": "fn", "arguments": {"arg": [ok values]}}`. Every argument lists its acceptable values;
"" among them means the argument may be omitted. An empty `ground_truth` means no call is correct.

Parsed formats: `<tool_call>{json}</tool_call>` blocks (Qwen/Hermes), a JSON list of calls, one JSON
object (optionally in a ```json fence or after some text), each as {"name", "arguments"|"parameters"}
with arguments as an object or a JSON string, or OpenAI style {"type": "function", "function": {...}};
and Python call syntax `[f(a=1), g(b="x")]` parsed with `ast` (never executed). Unterminated markup is
unparseable, not a call: a `<tool_call>` never closed, calls followed by a ``` fence never closed (the
response was cut off mid-block). `<think>...</think>` is dropped, and an unclosed `<think>` drops the
rest of the response.

Matching: each call's function must exist in `tools`, its arguments must validate against the schema
(jsonschema: types, required, enums) and name no unknown parameter; then the calls are matched to the
expected calls as a bipartite matching (parallel calls in any order), each pair requiring the same
function, no missing required-by-ground-truth argument, no extra argument, and every value among the
acceptable ones. Strings compare as BFCL does (case-insensitive, ignoring spaces and ",./-_*^").
Numbers as BFCL's checker types them: a float is not an integer (5.0 is rejected where the schema or
the acceptable value says integer), an int is accepted where a float is (and under a float schema
5.0 matches an acceptable 5), a bool is neither. Reward 1 for a perfect matching with no extra calls;
with `partial_credit`, matched / max(expected, produced).

Does NOT check: whether a call would succeed when executed, multi-turn state, the text around the
calls, or semantic equivalence of free-text arguments beyond the normalisation above.
"""

from __future__ import annotations

import ast
import json
import re
import reprlib
from dataclasses import dataclass
from typing import Any

import jsonschema
from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.text import strip_think

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
# Model text is hostile: a 5,000-digit integer raises ValueError in json/ast (Python's int limit),
# deep nesting raises RecursionError. Either means "does not decode".
_UNDECODABLE = (ValueError, RecursionError)
_CALL_START = re.compile(r"\{(?=\s*\")|\[(?=\s*\{)")  # where an embedded call can begin
_MAX_TRIES = 256  # fences and JSON openers tried, from the end: bounds the work on hostile text
_MAX_DEPTH = 32  # argument nesting; JSON decodes ~1000 levels, which the checks would recurse into
_BFCL_TYPES = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "any": None,
    "int": "integer",
    "str": "string",
    "bool": "boolean",
    "list": "array",
}
_STRIP = re.compile(r"[ ,./\-_*^]")
# JSON Schema counts 5.0 as an integer; BFCL's checker (type(value) == int) and Python do not.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
    ),
)


class Unparseable(ValueError):
    """The response attempts a tool call that cannot be decoded."""


@dataclass(frozen=True)
class ToolCallConfig(VerifierConfig):
    partial_credit: bool = False  # reward matched / max(expected, produced) instead of 0/1
    normalize_strings: bool = True  # compare strings as BFCL does (case, spaces, ",./-_*^")
    validate_schema: bool = True  # jsonschema-validate arguments (types, required, enum)


# ---------------------------------------------------------------- parsing
def _as_call(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise Unparseable(f"a call must be a JSON object, got {type(obj).__name__}")
    if obj.get("type") == "function" and isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except _UNDECODABLE as e:
            raise Unparseable(f"arguments string of {name!r} is not JSON: {e}") from e
    if not isinstance(name, str) or not isinstance(args, dict):
        raise Unparseable(
            f"a call needs a string 'name' and object 'arguments': {reprlib.repr(obj)}"
        )
    return {"name": name, "arguments": args}


def _calls_from_json(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, dict) and isinstance(obj.get("tool_calls"), list):
        obj = obj["tool_calls"]
    return [_as_call(o) for o in obj] if isinstance(obj, list) else [_as_call(obj)]


def _looks_like_call(obj: Any) -> bool:
    items = obj if isinstance(obj, list) and obj else [obj]
    return all(isinstance(o, dict) and ("name" in o or "function" in o) for o in items) or (
        isinstance(obj, dict) and "tool_calls" in obj
    )


def _python_calls(text: str) -> list[dict[str, Any]] | None:
    """`[f(a=1), g(b=2)]` or `f(a=1)` as calls, values by ast.literal_eval; None if not that form."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, MemoryError, *_UNDECODABLE):
        return None
    elts = node.elts if isinstance(node, ast.List | ast.Tuple) else [node]
    calls = []
    for e in elts:
        if not isinstance(e, ast.Call) or e.args:
            return None
        try:
            name = ast.unparse(e.func)
            args = {k.arg: ast.literal_eval(k.value) for k in e.keywords if k.arg}
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
        if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
            return None
        calls.append({"name": name, "arguments": args})
    return calls or None


def tagged_calls(response: str) -> list[dict[str, Any] | Unparseable]:
    """The `<tool_call>` blocks outside the reasoning, in order: each block's calls, or an
    Unparseable for a block that does not decode; a block never closed ends the list with one.
    The one rule for blocks, shared by this verifier and the multi-turn rollout."""
    text = strip_think(response)
    out: list[dict[str, Any] | Unparseable] = []
    i = text.find("<tool_call>")
    while i >= 0:  # str.find: linear on hostile text
        j = text.find("</tool_call>", i)
        if j < 0:
            out.append(Unparseable("a <tool_call> block is never closed (no </tool_call>)"))
            break
        b = _FENCE.sub(lambda m: m.group(1), text[i + len("<tool_call>") : j]).strip()
        try:
            out += _calls_from_json(json.loads(b))
        except _UNDECODABLE as e:  # an Unparseable call too, as before: the block is named
            out.append(Unparseable(f"<tool_call> block is not JSON: {e}: {b[:120]!r}"))
        i = text.find("<tool_call>", j)
    return out


def parse_calls(response: str) -> list[dict[str, Any]]:
    """The calls in `response` as [{"name", "arguments"}]; [] for no call; raises Unparseable."""
    text = strip_think(response).strip()
    tagged = tagged_calls(text)
    for c in tagged:
        if isinstance(c, Unparseable):
            raise c
    calls: list[dict[str, Any]] = [c for c in tagged if isinstance(c, dict)]
    if "<tool_call>" not in text:
        calls = _untagged_calls(text)
        if calls and text.count("```") % 2:
            raise Unparseable("a ``` fence is never closed (the response is cut off mid-block)")
    if not all(_within_depth(c["arguments"], _MAX_DEPTH) for c in calls):
        raise Unparseable(f"arguments nested deeper than {_MAX_DEPTH} levels")
    return calls


def _within_depth(v: Any, levels: int) -> bool:
    if isinstance(v, dict | list):
        items = v.values() if isinstance(v, dict) else v
        return levels > 0 and all(_within_depth(x, levels - 1) for x in items)
    return True


def _untagged_calls(text: str) -> list[dict[str, Any]]:
    fenced = [m.group(1) for m in _FENCE.finditer(text)][-_MAX_TRIES:]
    for candidate in fenced[::-1] + [text]:
        candidate = candidate.strip()
        try:
            obj = json.loads(candidate)
        except _UNDECODABLE:
            py = _python_calls(candidate)
            if py is not None:
                return py
            continue
        if _looks_like_call(obj):
            return _calls_from_json(obj)
    # JSON embedded in prose: of the calls that decode from the last openers, the one ending last
    # and, of those, the outermost (a list of calls, not its last member).
    decoder, found = json.JSONDecoder(), []
    for m in list(_CALL_START.finditer(text))[-_MAX_TRIES:]:
        try:
            obj, end = decoder.raw_decode(text, m.start())
        except _UNDECODABLE:
            continue
        if _looks_like_call(obj):
            found.append((end, -m.start(), obj))
    if found:
        return _calls_from_json(max(found, key=lambda f: f[:2])[2])
    if re.search(r'"name"\s*:', text) and ('"arguments"' in text or '"parameters"' in text):
        raise Unparseable("the response looks like a JSON tool call but does not decode")
    return []


# ---------------------------------------------------------------- schemas and ground truth
def _to_json_schema(s: Any) -> Any:
    """BFCL's Python-flavoured schemas ("dict", "float", "tuple", "any") as JSON Schema."""
    if isinstance(s, list):
        return [_to_json_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out: dict[str, Any] = {}
    for k, v in s.items():
        if k == "type" and isinstance(v, str):
            t = _BFCL_TYPES.get(v, v)
            if t is not None:
                out[k] = t
        elif k == "properties" and isinstance(v, dict):
            out[k] = {p: _to_json_schema(ps) for p, ps in v.items()}
        elif k in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            out[k] = _to_json_schema(v)
        elif k not in ("default", "optional", "format"):
            out[k] = v
    return out


def _tool_table(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table = {}
    for t in tools:
        f = t["function"] if t.get("type") == "function" and "function" in t else t
        table[f["name"]] = _to_json_schema(
            f.get("parameters") or {"type": "object", "properties": {}}
        )
    return table


def _expected(ground_truth: list[dict[str, Any]]) -> list[tuple[str, dict[str, list[Any]]]]:
    out = []
    for g in ground_truth:
        if set(g) == {"name", "arguments"}:
            out.append((g["name"], g["arguments"]))
        elif len(g) == 1:
            ((name, args),) = g.items()
            out.append((name, args))
        else:
            raise ValueError(
                f"tool_call: ground_truth entry must be {{fn: {{arg: [values]}}}} or "
                f"{{'name', 'arguments'}}; got {str(g)[:120]}"
            )
    return out


# ---------------------------------------------------------------- comparison
def _float_schema_ints(value: Any, schema: Any) -> Any:
    """`value` with each integral float under a "number" (BFCL "float") schema made an int: BFCL
    casts ints to float there, so 5.0 is the 5 its data lists. Elsewhere a float stays a float."""
    if not isinstance(schema, dict):
        return value
    t = schema.get("type")
    if (
        isinstance(value, float)
        and value.is_integer()
        and "number" in (t if isinstance(t, list) else [t])
    ):
        return int(value)
    if isinstance(value, list):
        return [_float_schema_ints(v, schema.get("items")) for v in value]
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: _float_schema_ints(v, props.get(k)) for k, v in value.items()}
    return value


def _same(value: Any, ok: Any) -> bool:
    """`value == ok` without Python's numeric coercion, at any depth: a bool is not a number, and a
    float is not an acceptable integer (an int is an acceptable float, as in BFCL)."""
    if isinstance(value, bool) or isinstance(ok, bool):
        return type(value) is type(ok) and value == ok
    if isinstance(value, float) and isinstance(ok, int):
        return False
    if isinstance(value, list) and isinstance(ok, list):
        return len(value) == len(ok) and all(map(_same, value, ok))
    if isinstance(value, dict) and isinstance(ok, dict):
        return value.keys() == ok.keys() and all(_same(value[k], ok[k]) for k in value)
    return bool(value == ok)


def _norm(v: Any, strings: bool) -> Any:
    if isinstance(v, str):
        return _STRIP.sub("", v).lower().replace("'", '"') if strings else v
    if isinstance(v, list | tuple):
        return [_norm(x, strings) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x, strings) for k, x in v.items()}
    return v


def _value_ok(value: Any, options: list[Any], strings: bool) -> bool:
    for opt in options:
        if opt == "":
            continue
        if (
            isinstance(opt, dict)
            and isinstance(value, dict)
            and all(isinstance(x, list) for x in opt.values())
        ):
            # BFCL nests possible answers inside dict values: {"key": [ok values]}
            if _args_errors(value, opt, strings) == []:
                return True
            continue
        if (
            isinstance(opt, list)
            and isinstance(value, list)
            and len(opt) == len(value)
            and all(isinstance(o, dict) for o in opt)
            and all(isinstance(x, dict) for x in value)
        ):
            if all(_value_ok(x, [o], strings) for x, o in zip(value, opt, strict=True)):
                return True
            continue
        if _same(_norm(value, strings), _norm(opt, strings)):
            return True
    return False


def _args_errors(args: dict[str, Any], expected: dict[str, list[Any]], strings: bool) -> list[str]:
    errs = []
    for k, options in expected.items():
        options = options if isinstance(options, list) else [options]
        if k not in args:
            if "" not in options:
                errs.append(f"missing argument {k!r}")
        elif not _value_ok(args[k], options, strings):
            errs.append(f"wrong value for {k!r}: {args[k]!r} (acceptable: {options!r})")
    errs += [f"extra argument {k!r}" for k in args if k not in expected]
    return errs


def _max_matching(ok: list[list[bool]]) -> list[int]:
    """Maximum bipartite matching (Kuhn): match[j] = call index for expected j, or -1."""
    n_calls = len(ok)
    n_exp = len(ok[0]) if ok else 0
    match = [-1] * n_exp

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(n_exp):
            if ok[i][j] and j not in seen:
                seen.add(j)
                if match[j] == -1 or augment(match[j], seen):
                    match[j] = i
                    return True
        return False

    for i in range(n_calls):
        augment(i, set())
    return match


class ToolCallVerifier(Verifier):
    """Judges function calls against schemas and expected calls (module docstring for the rules).

    Checks: parseable calls, known functions, schema-valid arguments, names/values against the ground
    truth with several acceptable values, parallel calls in any order, no call when none is expected.
    Does NOT check: execution results, multi-turn state, free-text quality.
    """

    name = "tool_call"
    config_cls = ToolCallConfig

    def __init__(self, config: ToolCallConfig | None = None) -> None:
        super().__init__(config)
        self.config: ToolCallConfig

    def verify(self, sample: Sample) -> Result:
        ref = sample.reference
        tools = _tool_table(ref.get("tools") or [])
        expected = _expected(ref.get("ground_truth") or [])
        try:
            calls = parse_calls(sample.response)
        except Unparseable as e:
            return Result(
                0.0, False, {"calls": None, "expected": len(expected)}, error=f"unparseable: {e}"
            )
        details: dict[str, Any] = {"calls": calls, "expected": len(expected)}
        if not expected:
            ok = not calls
            details["reason"] = (
                "no call expected and none made" if ok else "a call when none expected"
            )
            return Result(float(ok), ok, details)
        call_errors = [self._call_errors(c, tools) for c in calls]
        calls = [
            {
                "name": c["name"],
                "arguments": _float_schema_ints(c["arguments"], tools.get(c["name"])),
            }
            for c in calls
        ]
        strings = self.config.normalize_strings
        pair = [
            [
                not call_errors[i]
                and c["name"] == name
                and not _args_errors(c["arguments"], args, strings)
                for name, args in expected
            ]
            for i, c in enumerate(calls)
        ]
        match = _max_matching(pair) if calls else [-1] * len(expected)
        matched = sum(m >= 0 for m in match)
        correct = matched == len(expected) == len(calls)
        problems = []
        for i, c in enumerate(calls):
            if i in match:
                continue
            if call_errors[i]:
                problems.append({"call": i, "errors": call_errors[i]})
                continue
            same = [
                args
                for j, (name, args) in enumerate(expected)
                if name == c["name"] and match[j] == -1
            ]
            errs = min(
                (_args_errors(c["arguments"], a, strings) for a in same),
                key=len,
                default=[f"call to {c['name']!r} not expected here (or a duplicate)"],
            )
            problems.append({"call": i, "errors": errs})
        if len(calls) != len(expected):
            problems.append({"errors": [f"{len(calls)} calls, expected {len(expected)}"]})
        details.update(matched=matched, problems=problems)
        if self.config.partial_credit:
            reward = matched / max(len(expected), len(calls))
        else:
            reward = float(correct)
        return Result(reward, correct, details)

    def _call_errors(self, call: dict[str, Any], tools: dict[str, dict[str, Any]]) -> list[str]:
        schema = tools.get(call["name"])
        if schema is None:
            return [f"unknown function {call['name']!r}"]
        props = schema.get("properties") or {}
        errs = [
            f"extra argument {k!r} (not in the schema)"
            for k in call["arguments"]
            if props and k not in props
        ]
        if self.config.validate_schema:
            validator = _Validator(schema)
            for e in validator.iter_errors(call["arguments"]):
                where = "/".join(str(p) for p in e.absolute_path) or "arguments"
                kind = (
                    "missing argument"
                    if e.validator == "required"
                    else "wrong type"
                    if e.validator == "type"
                    else f"schema ({e.validator})"
                )
                errs.append(f"{kind} at {where}: {e.message[:160]}")
        return errs
