"""Decontamination: training rows that overlap evaluation items, by n-gram overlap on normalised text.

    hits = find_contaminated(rows, suite_items(load_suite("full")), n=13)   # [] when clean

Normalisation: Unicode NFKC, lowercase, punctuation and symbols become spaces (arithmetic operators
stay, as tokens: "57+87-70" is not "57-87+70"), whitespace collapses;
words are whitespace-separated tokens, and in scripts written without spaces (CJK, kana, Thai, Lao,
Khmer, Myanmar) every character is a token. A row is contaminated by an item when:
  - the item has >= n tokens and the row shares one of its n-grams (GPT-3's 13-gram rule);
  - the item is shorter (< n tokens, >= SHORT words) and the row contains its whole token sequence;
  - the item has < SHORT words (e.g. "57+87-70=?") and a text of the row IS the item.
What it does NOT catch: paraphrases, translations (an English row vs a French item), numbers
changed (GSM-Symbolic style variants), or an item split across two fields of a row.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

SHORT = 5  # items with fewer words than this must match a whole text exactly

_NO_SPACES = re.compile(
    "([\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])"
)


_OPERATORS = set("+=<>^*/%")
_MINUS = re.compile(r"-(?=\s*\d)|(?<=\d)\s*-")  # a hyphen next to a digit is a minus sign


def normalize(text: str) -> str:
    """Lowercase, punctuation and symbols to spaces, whitespace collapsed; arithmetic operators
    (and a minus next to a digit) stay as tokens, so "57+87-70" and "57-87+70" stay different."""
    text = _MINUS.sub(" \u2212 ", unicodedata.normalize("NFKC", text).lower())
    out = []
    for c in text:
        cat = unicodedata.category(c)
        if c in _OPERATORS or cat == "Sm":
            out.append(f" {c} ")
        else:
            out.append(" " if cat[0] in "PS" else c)
    return " ".join("".join(out).split())


def tokens(text: str) -> list[str]:
    return _NO_SPACES.sub(r" \1 ", normalize(text)).split()


def ngrams(toks: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def row_texts(row: dict[str, Any]) -> list[str]:
    """The texts of a training row worth checking: prompt (or its messages), completion, ..."""
    out = []
    for key in ("prompt", "messages", "completion", "response", "text", "question", "answer"):
        v = row.get(key)
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            out += [str(m.get("content", "")) for m in v if isinstance(m, dict)]
    return [t for t in out if t.strip()]


class Index:
    """Evaluation items indexed by their n-grams, whole short sequences and exact texts."""

    def __init__(self, items: Iterable[dict[str, Any]], n: int) -> None:
        self.n = n
        self.grams: dict[tuple[str, ...], list[int]] = {}
        self.lengths: set[int] = set()  # token counts of the SHORT..n-1 items
        self.exact: dict[str, list[int]] = {}
        self.items = [it for it in items if it.get("text", "").strip()]
        self.sizes: list[int] = []
        for i, it in enumerate(self.items):
            toks = tokens(it["text"])
            words = sum(any(ch.isalnum() for ch in t) for t in toks)  # operators are not words
            if len(toks) >= n and words >= SHORT:
                grams = ngrams(toks, n)
            elif words >= SHORT:
                grams = {tuple(toks)}
                self.lengths.add(len(toks))
            else:
                self.exact.setdefault(" ".join(toks), []).append(i)
                grams = set()
            for g in grams:
                self.grams.setdefault(g, []).append(i)
            self.sizes.append(len(grams))

    def matches(self, texts: list[str]) -> dict[int, float]:
        """Item index -> fraction of the item's n-grams found in the texts (1.0 for short ones)."""
        shared: dict[int, set[tuple[str, ...]]] = {}
        exact: set[int] = set()
        for text in texts:
            toks = tokens(text)
            exact.update(self.exact.get(" ".join(toks), []))
            for size in {self.n, *self.lengths}:
                for g in ngrams(toks, size):
                    for i in self.grams.get(g, ()):
                        shared.setdefault(i, set()).add(g)
        out = {i: len(g) / self.sizes[i] for i, g in shared.items()}
        out.update(dict.fromkeys(exact, 1.0))
        return out


def find_contaminated(
    rows: list[dict[str, Any]], suite_items: Iterable[dict[str, Any]], n: int = 13
) -> list[dict[str, Any]]:
    """One entry per contaminated row: {"row", "row_id", "matches": [{"benchmark", "id",
    "overlap"}]} (overlap: the fraction of the item's n-grams the row contains)."""
    index = Index(suite_items, n)
    out = []
    for r, row in enumerate(rows):
        found = index.matches(row_texts(row))
        if found:
            hits = [
                {
                    "benchmark": index.items[i].get("benchmark"),
                    "id": str(index.items[i].get("id")),
                    "overlap": round(f, 4),
                }
                for i, f in sorted(found.items(), key=lambda kv: -kv[1])
            ]
            out.append({"row": r, "row_id": row.get("id"), "matches": hits})
    return out


def suite_items(cfg: Any) -> list[dict[str, Any]]:
    """Every item of a suite's benchmarks as {"benchmark", "id", "text"}, ignoring limits (a
    training row must not overlap ANY item of a benchmark, not only the slice evaluated)."""
    from dataclasses import replace

    from rlcore.eval.loaders import LoadContext
    from rlcore.eval.suite import load_items, selected

    full = replace(cfg, limit=0)
    out = []
    for bench in selected(full):
        for it in load_items(full, replace(bench, limit=0), LoadContext()):
            out.append({"benchmark": bench.name, "id": str(it["id"]), "text": it.get("text", "")})
    return out
