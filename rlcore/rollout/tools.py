"""Tools a policy may call during a multi-turn rollout (rlcore/rollout/multiturn.py runs the loop).

A `Tool` has a `name`, a `description` and a JSON schema of its `parameters` (rendered into the prompt
through the chat template's `tools=` argument, see `Tool.schema`), and is called with the parsed
arguments: `tool(arguments) -> str`. A call never raises: a bad argument, a crash or a timeout comes
back as text starting with `ERROR_PREFIX`, which the policy reads as the tool's answer and the episode
counts as a tool error.

    calculator  arithmetic on int/float literals (+ - * / // % **, a few math functions), evaluated
                by walking the `ast`; never `eval`. Integers are capped at `MAX_INT_BITS` and the
                expression at `MAX_EXPRESSION_CHARS` before anything is computed, so `9**9**9` or
                `10**10**10` is refused at once instead of hanging the trainer.
    python      runs the code in the verifiers' sandbox (rlcore.verifiers.sandbox; model-written code is
                hostile input): a fresh interpreter per call (no state between calls), a wall-clock and
                CPU limit, a memory cap, no network where bubblewrap or unshare works; the result is
                what the program printed (stdout, then stderr), truncated to its last characters.

`TOOLS` maps names to classes; `make_tools(names, options)` builds the set a data row allows (its
"tools" field) and fails on an unknown name, naming the known ones.
"""

from __future__ import annotations

import ast
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlcore.verifiers.sandbox import SandboxLimits, run_python

ERROR_PREFIX = "Error: "


def is_error(result: str) -> bool:
    return result.startswith(ERROR_PREFIX)


def _clip(text: str, limit: int) -> str:
    """The last `limit` characters (errors and final results come last), marked when cut."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut]\n" + text[-limit:]


class Tool(ABC):
    """One callable tool. Subclasses set the class attributes and implement `run`, which may raise:
    `__call__` turns any exception into an error result."""

    name: str = "abstract"
    description: str = ""
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    max_result_chars: int = 2000

    def schema(self) -> dict[str, Any]:
        """OpenAI-style function schema, what `apply_chat_template(..., tools=[...])` expects."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    @abstractmethod
    def run(self, arguments: dict[str, Any]) -> str:
        """The tool's answer; raise ValueError (or anything) for an error result."""

    def __call__(self, arguments: dict[str, Any]) -> str:
        try:
            self._check_arguments(arguments)
            text = self.run(arguments)
        # Turning every failure into a recorded result is the contract: the episode must go on.
        except Exception as e:  # noqa: BLE001
            text = f"{ERROR_PREFIX}{e}" if isinstance(e, ValueError) else f"{ERROR_PREFIX}{e!r}"
        return _clip(text, self.max_result_chars)

    def _check_arguments(self, arguments: Any) -> None:
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments must be a JSON object, got {type(arguments).__name__}")
        props = self.parameters.get("properties", {})
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        unknown = [k for k in arguments if k not in props]
        if missing or unknown:
            raise ValueError(
                f"{self.name} takes {sorted(props)}; missing {missing}, unknown {unknown}"
            )
        for k, v in arguments.items():
            if props[k].get("type") == "string" and not isinstance(v, str):
                raise ValueError(f"argument {k!r} must be a string, got {type(v).__name__}")


# ---------------------------------------------------------------- calculator
MAX_INT_BITS = 4096  # ~1,233 decimal digits: below Python's 4,300-digit str() limit
MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 64  # nesting of the expression tree

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _bits(x: int | float) -> int:
    return abs(x).bit_length() if isinstance(x, int) else 0


def _bounded(x: Any) -> int | float:
    if type(x) not in (int, float):
        raise ValueError(f"not a number: {type(x).__name__}")
    if _bits(x) > MAX_INT_BITS:
        raise ValueError(f"number too large (over {MAX_INT_BITS} bits)")
    return x


def _guard(op: type, a: int | float, b: int | float) -> None:
    """Refuses, before computing, the integer operations whose result would pass MAX_INT_BITS."""
    if not (isinstance(a, int) and isinstance(b, int)):
        return
    if op is ast.Mult and _bits(a) + _bits(b) > MAX_INT_BITS + 1:
        raise ValueError(f"number too large (over {MAX_INT_BITS} bits)")
    if op is ast.Pow and b > 0 and abs(a) > 1 and (_bits(a) - 1) * b > MAX_INT_BITS:
        raise ValueError(f"number too large (over {MAX_INT_BITS} bits)")


def _eval(node: ast.AST, depth: int = 0) -> int | float:
    if depth > MAX_DEPTH:
        raise ValueError("expression nested too deeply")
    if isinstance(node, ast.Expression):
        return _eval(node.body, depth + 1)
    if isinstance(node, ast.Constant):
        return _bounded(node.value)  # type() check: bool, complex, str, None are refused
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _eval(node.left, depth + 1), _eval(node.right, depth + 1)
        _guard(type(node.op), a, b)
        return _bounded(_BINARY[type(node.op)](a, b))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth + 1))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_eval(a, depth + 1) for a in node.args]
        # round(x, -10**9) would compute 10**(10**9) inside int.__round__
        if node.func.id == "round" and len(args) == 2 and abs(args[1]) > 100:
            raise ValueError("round: ndigits must be within [-100, 100]")
        return _bounded(_FUNCTIONS[node.func.id](*args))
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        raise ValueError(f"unsupported operator: {type(node.op).__name__}")
    if isinstance(node, ast.Call):
        what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)[:40]
        how = "with keyword arguments" if what in _FUNCTIONS else "(unknown function)"
        raise ValueError(f"cannot call {what!r} {how}; known functions: {sorted(_FUNCTIONS)}")
    if isinstance(node, ast.Name):
        raise ValueError(
            f"unknown name {node.id!r}; known: {sorted(_FUNCTIONS) + sorted(_CONSTANTS)}"
        )
    raise ValueError(f"unsupported syntax: {type(node).__name__}")


def calculate(expression: str) -> str:
    """The value of an arithmetic expression as text; raises ValueError (or ArithmeticError)."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as e:
        raise ValueError(f"not an arithmetic expression: {e}") from None
    value = _eval(tree)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("the result is not a finite number")
        return format(value, ".12g")
    return str(value)


class Calculator(Tool):
    name = "calculator"
    description = (
        "Evaluates an arithmetic expression: numbers, + - * / // % ** and parentheses, "
        "the functions " + ", ".join(_FUNCTIONS) + ", and the constants pi and e."
    )
    parameters = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. (3 + 4) * 2 ** 5"}},
        "required": ["expression"],
    }

    def run(self, arguments: dict[str, Any]) -> str:
        try:
            return calculate(arguments["expression"])
        except ArithmeticError as e:  # ZeroDivisionError, OverflowError
            raise ValueError(f"{type(e).__name__}: {e}") from None


# ---------------------------------------------------------------- python
class PythonTool(Tool):
    """Runs code in the verifiers' sandbox; see rlcore/verifiers/sandbox.py for what that does and
    does NOT protect against. Stateless: each call is a new interpreter."""

    name = "python"
    description = (
        "Runs a Python 3 program and returns what it prints (use print). Each call starts a fresh "
        "interpreter with no network; the standard library is available."
    )
    parameters = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "the program to run"}},
        "required": ["code"],
    }

    def __init__(
        self,
        timeout_s: float = 5.0,  # wall clock per call (CPU time is capped at the same)
        memory_mb: int = 512,
        max_result_chars: int = 2000,
        max_code_chars: int = 20_000,
        isolation: str | None = None,  # None: the strongest the machine supports
    ) -> None:
        self.limits = SandboxLimits(
            wall_s=timeout_s,
            cpu_s=max(1, math.ceil(timeout_s)),
            memory_mb=memory_mb,
            max_procs=16,
            file_mb=8,
            output_bytes=4 * max_result_chars,
        )
        self.max_result_chars = max_result_chars
        self.max_code_chars = max_code_chars
        self.isolation = isolation

    def run(self, arguments: dict[str, Any]) -> str:
        code = arguments["code"]
        if len(code) > self.max_code_chars:
            raise ValueError(f"code longer than {self.max_code_chars} characters")
        r = run_python(code, limits=self.limits, mode=self.isolation)
        out = r.stdout + r.stderr
        if r.timed_out:
            return f"{ERROR_PREFIX}timed out after {self.limits.wall_s:g} s\n{out}".rstrip()
        if r.returncode != 0:
            how = f"exit status {r.returncode}"
            if r.returncode is not None and r.returncode < 0:
                how = f"killed by signal {-r.returncode} (a CPU, memory or process limit)"
            return f"{ERROR_PREFIX}{how}\n{out}".rstrip()
        return out if out.strip() else "(no output)"


# ---------------------------------------------------------------- registry
TOOLS: dict[str, type[Tool]] = {"calculator": Calculator, "python": PythonTool}


def make_tools(
    names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Tool]:
    """The tools `names` (a data row's "tools"), built with `options[name]` as keyword arguments."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"tools must be a list of tool names, got {names!r}")
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise ValueError(f"unknown tool(s) {unknown}; known tools: {sorted(TOOLS)}")
    options = options or {}
    return {n: TOOLS[n](**options.get(n, {})) for n in names}
