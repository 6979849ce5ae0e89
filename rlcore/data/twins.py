"""Split keys that put every twin of a problem on the same side of the held-out split.

Held-out problems are chosen by a hash of a key (`rlcore.data.tasks.is_heldout`). Hashing the
question text lets twins straddle the split: "57 + 87 - 70" in training and "87 + 57 - 70" held
out, or one expression under two of reasoning-gym's natural templates ("Compute 5 - 9." / "What is
5 - 9?"). The key here drops the template and orders commutative operands:

    split_key("What is 87 + 57 - 70?", {"expression": "87 + 57 - 70"})   # 'expr:-70+57+87'
    split_key("Compute 57+87-70.", {"expression": "57+87-70"})            # the same key

A row whose metadata states no arithmetic expression is keyed by the multiset of numbers in its
question (leg counting, GSM-style word problems): twins with the numbers reordered or reworded share
it. That key is coarser than "the same problem" (two different problems with the same numbers share
it too), which only moves both to one side: never a twin across the split.
"""

from __future__ import annotations

import ast
import re
from typing import Any

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def canonical_expression(expr: str) -> str | None:
    """One string per arithmetic expression up to commutativity and associativity of + and *
    ("a - b + c" == "c + a - b", "a * b" == "b * a"); None if `expr` is not plain arithmetic."""
    text = expr.replace("\u2212", "-").replace("\u00d7", "*").replace("\u00f7", "/").strip()
    text = text.rstrip("=?. ").strip()
    try:
        tree = ast.parse(text, mode="eval").body
        return _key(tree)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _key(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        value = node.value
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    sum_node = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub)
    if sum_node or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd)):
        terms: list[str] = []
        _terms(node, 1, terms)
        return "(" + "".join(sorted(terms)) + ")"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        factors: list[str] = []
        _factors(node, factors)
        return "(" + "*".join(sorted(factors)) + ")"
    if isinstance(node, ast.BinOp) and isinstance(
        node.op, ast.Div | ast.FloorDiv | ast.Mod | ast.Pow
    ):
        op = {ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}[type(node.op)]
        return f"({_key(node.left)}{op}{_key(node.right)})"
    raise ValueError(f"not plain arithmetic: {ast.dump(node)[:60]}")


def _terms(node: ast.AST, sign: int, out: list[str]) -> None:
    """Signed terms of a sum: a - (b - c) -> +a, -b, +c."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
        _terms(node.left, sign, out)
        _terms(node.right, sign if isinstance(node.op, ast.Add) else -sign, out)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _terms(node.operand, -sign if isinstance(node.op, ast.USub) else sign, out)
    else:
        out.append(("+" if sign > 0 else "-") + _key(node))


def _factors(node: ast.AST, out: list[str]) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        _factors(node.left, out)
        _factors(node.right, out)
    else:
        out.append(_key(node))


def split_key(question: str, metadata: dict[str, Any] | None = None) -> str:
    """The held-out split's key for a problem: its canonical expression where the metadata states
    one (reasoning-gym's `expression`), else the sorted numbers of the question."""
    expr = (metadata or {}).get("expression")
    if isinstance(expr, str):
        canon = canonical_expression(expr)
        if canon is not None:
            return "expr:" + canon
    numbers = sorted(_NUMBER.findall(question), key=lambda s: (float(s), s))
    return "nums:" + ",".join(numbers)
