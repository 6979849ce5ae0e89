"""Generated training tasks that keep an instruct model's other skills in use during RL:

    builtin:if_constraints   a short writing request with 1-2 verifiable constraints (the `ifeval`
                             verifier's instruction types, this project's own wording and topics)
    builtin:tool_calls       a request that one of 2-3 offered functions answers, BFCL-style
                             schemas and ground truth (the `tool_call` verifier)

Prompts are built from templates and a seeded RNG, so they share no wording with IFEval or BFCL
(a config's `data.decontam_against` checks that). Held-out rows are chosen by a hash of the prompt
(`is_heldout`), as for every builtin task.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from rlcore.data.tasks import is_heldout
from rlcore.data.twins import split_key

TOOL_SYSTEM = (
    "You can call these functions (JSON schemas):\n{tools}\n\nTo call functions, reply with one "
    '<tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call> block per call. If none of the '
    "functions fits the request, do not call any: answer in plain text."
)

TOPICS = (
    "growing tomatoes on a balcony, learning to play chess, the history of bicycles, why bees "
    "matter, keeping a houseplant alive, saving money as a student, a rainy day in a big city, "
    "how volcanoes form, training for a first 5k run, the life of a lighthouse keeper, making "
    "bread at home, choosing a first pet, why people collect stamps, a walk in an autumn forest, "
    "how trains changed travel, starting a morning routine, the moon's phases, recycling plastic, "
    "learning a new language, a visit to a fish market, how clocks keep time, camping safely, "
    "writing a good thank-you note, the colors of a sunset, how a library works"
).split(", ")
ASKS = (
    "Write a short paragraph about {t}.",
    "Describe {t} in a few sentences.",
    "Give some friendly advice about {t}.",
    "Explain {t} to a ten-year-old.",
)
KEYWORDS = "river lantern copper meadow ribbon compass harbor velvet maple pebble".split()
ENDINGS = ("Is there anything else I can help with?", "Hope this helps!", "That is all for now.")

Constraint = tuple[str, dict[str, Any], str]  # (instruction id, kwargs, the sentence asking for it)


def _constraints(rng: random.Random) -> list[Constraint]:
    n_words = rng.choice((40, 60, 80))
    bullets = rng.choice((2, 3, 4))
    k1, k2 = rng.sample(KEYWORDS, 2)
    end = rng.choice(ENDINGS)
    return [
        ("punctuation:no_comma", {}, "Do not use any commas in your response."),
        ("change_case:english_lowercase", {}, "Write everything in lowercase letters only."),
        ("change_case:english_capital", {}, "Write your whole answer in capital letters."),
        (
            "length_constraints:number_words",
            {"relation": "less than", "num_words": n_words},
            f"Keep it under {n_words} words.",
        ),
        (
            "detectable_format:number_bullet_lists",
            {"num_bullets": bullets},
            f"Format the answer as exactly {bullets} markdown bullet points (lines starting "
            "with '* ').",
        ),
        (
            "startend:end_checker",
            {"end_phrase": end},
            f'Finish with the exact sentence "{end}" and nothing after it.',
        ),
        (
            "detectable_content:postscript",
            {"postscript_marker": "P.S."},
            "Add a short note at the very end that starts with P.S.",
        ),
        ("startend:quotation", {}, "Put the entire answer inside double quotes."),
        (
            "keywords:existence",
            {"keywords": [k1, k2]},
            f"Use the words '{k1}' and '{k2}' somewhere in the answer.",
        ),
        (
            "detectable_format:title",
            {},
            "Start with a title in double angle brackets, like <<A Title>>.",
        ),
    ]


_CONFLICTS = {
    frozenset({"change_case:english_lowercase", "change_case:english_capital"}),
    frozenset({"startend:quotation", "startend:end_checker"}),
    frozenset({"startend:quotation", "detectable_content:postscript"}),
    frozenset({"startend:end_checker", "detectable_content:postscript"}),
    frozenset({"detectable_format:title", "startend:quotation"}),
    frozenset({"change_case:english_lowercase", "detectable_content:postscript"}),
}


def if_constraint_row(rng: random.Random) -> dict[str, Any]:
    ask = rng.choice(ASKS).format(t=rng.choice(TOPICS))
    menu = _constraints(rng)
    chosen = rng.sample(menu, 1 if rng.random() < 0.5 else 2)
    if len(chosen) == 2 and frozenset(c[0] for c in chosen) in _CONFLICTS:
        chosen = chosen[:1]
    return {
        "prompt": " ".join([ask] + [c[2] for c in chosen]),
        "bucket": "if",
        "verifier": "ifeval",
        "reference": {
            "instruction_id_list": [c[0] for c in chosen],
            "kwargs": [c[1] for c in chosen],
        },
    }


# ---- tool calls ------------------------------------------------------------------------------------

CITIES = "Lisbon Nairobi Osaka Lima Oslo Denver Hanoi Porto Tunis Quito Perth Bergen".split()
NAMES = "Ana Omar Mei Luca Priya Tom Sara Ivan Zoe Kofi".split()


def _fn(name: str, desc: str, **props: Any) -> dict[str, Any]:
    """A BFCL-style function schema; every parameter is required."""
    return {
        "name": name,
        "description": desc,
        "parameters": {"type": "dict", "properties": props, "required": list(props)},
    }


def _tool_cases(rng: random.Random) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(schema, request, arguments) for every function, with freshly drawn values."""
    city, name = rng.choice(CITIES), rng.choice(NAMES)
    unit = rng.choice(("celsius", "fahrenheit"))
    minutes, people, a, b = (
        rng.randint(2, 90),
        rng.randint(2, 12),
        rng.randint(3, 999),
        rng.randint(3, 999),
    )
    amount = rng.randint(5, 500)
    cur = rng.sample(("USD", "EUR", "JPY", "GBP", "BRL"), 2)
    radius = rng.randint(1, 40) + 0.5
    hour = f"{rng.randint(17, 22)}:{rng.choice(('00', '30'))}"
    string, integer = {"type": "string"}, {"type": "integer"}
    return [
        (
            _fn(
                "get_weather",
                "Current weather in a city.",
                city=string | {"description": "City name"},
                unit=string | {"enum": ["celsius", "fahrenheit"]},
            ),
            f"What's the weather like in {city} right now? Give me the temperature in {unit}.",
            {"city": city, "unit": unit},
        ),
        (
            _fn(
                "set_timer",
                "Start a countdown timer.",
                minutes=integer | {"description": "Length in minutes"},
                label=string | {"description": "A name for the timer"},
            ),
            f"Please start a {minutes}-minute timer and call it {name}.",
            {"minutes": minutes, "label": name},
        ),
        (
            _fn(
                "convert_currency",
                "Convert an amount of money between currencies.",
                amount=integer | {"description": "Amount to convert"},
                from_currency=string | {"description": "ISO code, e.g. USD"},
                to_currency=string | {"description": "ISO code, e.g. EUR"},
            ),
            f"How much is {amount} {cur[0]} in {cur[1]}?",
            {"amount": amount, "from_currency": cur[0], "to_currency": cur[1]},
        ),
        (
            _fn(
                "book_table",
                "Reserve a restaurant table.",
                people=integer | {"description": "Number of guests"},
                time=string | {"description": "Time as HH:MM"},
            ),
            f"Book a table for {people} people at {hour} tonight.",
            {"people": people, "time": hour},
        ),
        (
            _fn("add_numbers", "Add two integers.", a=integer, b=integer),
            f"Use the calculator tool to add {a} and {b}.",
            {"a": a, "b": b},
        ),
        (
            _fn(
                "circle_area",
                "Area of a circle.",
                radius={"type": "float", "description": "Radius in meters"},
            ),
            f"What is the area of a circle with a radius of {radius} meters?",
            {"radius": radius},
        ),
        (
            _fn(
                "send_message",
                "Send a short text message to a contact.",
                to=string | {"description": "Contact name"},
                text=string | {"description": "The message"},
            ),
            f"Text {name} the message: running late.",
            {"to": name, "text": "running late"},
        ),
    ]


def tool_call_row(rng: random.Random) -> dict[str, Any]:
    cases = _tool_cases(rng)
    picked = rng.sample(cases, rng.choice((2, 3)))
    schema, request, args = picked[0]
    tools = [c[0] for c in picked]
    rng.shuffle(tools)
    system = TOOL_SYSTEM.format(tools=json.dumps(tools))  # compact: fewer tokens to train on
    return {
        "prompt": [{"role": "system", "content": system}, {"role": "user", "content": request}],
        "bucket": "tool",
        "verifier": "tool_call",
        "reference": {
            "tools": tools,
            "ground_truth": [{schema["name"]: {k: [v] for k, v in args.items()}}],
        },
    }


# Arithmetic asked in five languages, for keeping the prompt's language while RL trains in English
# (the `multilingual` bucket): the answer must be right and written in the question's language.
_MULTILINGUAL = {
    "fr": ("Combien font {e} ?", "Quel est le résultat de {e} ? Explique ta réponse."),
    "es": ("¿Cuánto es {e}?", "¿Cuál es el resultado de {e}? Explica tu respuesta."),
    "pt": ("Quanto é {e}?", "Qual é o resultado de {e}? Explique sua resposta."),
    "de": ("Was ist {e}?", "Wie viel ergibt {e}? Erkläre deine Antwort."),
    "it": ("Quanto fa {e}?", "Qual è il risultato di {e}? Spiega la tua risposta."),
}


def multilingual_arith_row(rng: random.Random) -> dict[str, Any]:
    lang = rng.choice(sorted(_MULTILINGUAL))
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    op, shown, value = rng.choice([("+", "+", a + b), ("-", "-", a - b), ("*", "×", a * b)])
    expression = f"{a} {op} {b}"
    question = rng.choice(_MULTILINGUAL[lang]).format(e=f"{a} {shown} {b}")
    return {
        "prompt": question,
        "bucket": "multilingual",
        "verifier": [{"name": "math", "weight": 1.0}, {"name": "language", "weight": 1.0}],
        "reference": {"answer": str(value), "language": lang},
        # the twin-free split: the same expression held out in English keeps this row out
        "meta": {"split_key": split_key(question, {"expression": expression})},
    }


GENERATORS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "if_constraints": if_constraint_row,
    "tool_calls": tool_call_row,
    "multilingual_arith": multilingual_arith_row,
}


def generated_rows(name: str, n: int, seed: int, split: str) -> list[dict[str, Any]]:
    """`n` distinct rows of generator `name` for `split` ("train" or "heldout")."""
    make = GENERATORS[name]
    rng = random.Random(f"{name}-{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(200 * n + 1000):
        row = make(rng)
        key = json.dumps(row["prompt"], sort_keys=True)
        if key in seen or is_heldout(key) != (split == "heldout"):
            continue
        seen.add(key)
        meta = {"source": name, **row.get("meta", {})}
        rows.append({"id": f"{name}-{split}-{len(rows)}", **row, "meta": meta})
        if len(rows) == n:
            return rows
    raise ValueError(f"could not draw {n} distinct {split} rows from builtin:{name}")
