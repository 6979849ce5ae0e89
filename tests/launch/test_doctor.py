"""`rlcore doctor`: every check fails on a tokenizer broken on purpose and passes on a good one.

The tokenizers are the embedded tiny model's character-level tokenizer with a modified chat
template, BOS/EOS or config, saved with a config.json (no weights: the doctor reads none).
"""

import json

import pytest
from rlcore.launch import doctor
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig

from rlcore.models.tiny import CHAT_TEMPLATE, EOS, IM_END, build_tokenizer

# Escapes special-token strings in content and renders tool calls: every check passes.
GOOD = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{{ m['content'] | replace('<|', '< |') }}"
    "{% for c in m.get('tool_calls') or [] %}"
    "<tool_call>{{ c['function']['name'] }}({{ c['function']['arguments'] | tojson }})</tool_call>"
    "{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEN = "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"


def make(
    tmp_path, template=GOOD, eos=IM_END, bos=None, add_bos=False, config_eos=(2, 0), gen_eos=None
):
    """Saves a tiny tokenizer (+ config.json, optional generation_config.json); returns the path."""
    tok = build_tokenizer()
    tok.chat_template = template
    tok.eos_token = eos
    if bos is not None:
        tok.bos_token = bos
        tok.add_bos_token = add_bos
    tok.save_pretrained(tmp_path)
    LlamaConfig(vocab_size=len(tok), hidden_size=32, eos_token_id=list(config_eos)).save_pretrained(
        tmp_path
    )
    if gen_eos is not None:
        GenerationConfig(eos_token_id=list(gen_eos)).save_pretrained(tmp_path)
    return str(tmp_path)


def statuses(path):
    return {c.name: c.status for c in doctor.run_checks(path)}


def check(path, fn):
    tok = AutoTokenizer.from_pretrained(path)
    return fn(tok, path) if fn is doctor.check_eos else fn(tok)


def test_good_tokenizer_passes_everything(tmp_path):
    path = make(tmp_path, gen_eos=(2,))
    assert set(statuses(path).values()) == {"PASS"}
    assert doctor.main([path]) == 0


def test_tiny_template_warns_about_tool_calls(tmp_path):
    got = statuses(make(tmp_path, template=CHAT_TEMPLATE))
    assert got.pop("tool_calls") == "WARN"
    assert set(got.values()) == {"PASS"}


def test_bos(tmp_path):
    doubled = make(tmp_path / "a", template="{{ bos_token }}{{ bos_token }}" + GOOD, bos=EOS)
    assert check(doubled, doctor.check_bos).status == "FAIL"
    # the template writes BOS and the tokenizer adds it again (only when tokenizing the text)
    again = make(tmp_path / "b", template="{{ bos_token }}" + GOOD, bos=EOS, add_bos=True)
    result = check(again, doctor.check_bos)
    assert result.status == "WARN" and "adds it again" in result.detail
    missing = make(tmp_path / "c", bos=EOS, add_bos=True)
    result = check(missing, doctor.check_bos)
    assert result.status == "WARN" and "without BOS" in result.detail
    once = make(tmp_path / "d", template="{{ bos_token }}" + GOOD, bos=EOS)
    assert check(once, doctor.check_bos).status == "PASS"


@pytest.mark.parametrize(
    "gen",
    ["", "{% if add_generation_prompt %}<|im_start|>assistant{% endif %}"],
    ids=["none", "no-newline"],
)
def test_generation_prompt_missing_or_short(tmp_path, gen):
    path = make(tmp_path, template=CHAT_TEMPLATE.replace(GEN, gen))
    assert check(path, doctor.check_generation_prompt).status == "FAIL"


def test_eos_not_stopped_on(tmp_path):
    # turns end with <|im_end|>, but config and tokenizer only name <|endoftext|>
    path = make(tmp_path / "a", eos=EOS, config_eos=(0,))
    result = check(path, doctor.check_eos)
    assert result.status == "FAIL" and "<|im_end|>" in result.detail
    assert doctor.main([path]) == 1
    stale_generation_config = make(tmp_path / "b", gen_eos=(0,))
    assert check(stale_generation_config, doctor.check_eos).status == "WARN"
    sft_ends_elsewhere = make(tmp_path / "c", eos=EOS, config_eos=(2, 0))
    assert check(sft_ends_elsewhere, doctor.check_eos).status == "WARN"


def test_special_tokens_in_user_text_stay_text(tmp_path):
    # the template pastes content as is: tokenized whole, the text would be parsed; rlcore's ids not
    result = check(make(tmp_path / "a", template=CHAT_TEMPLATE), doctor.check_special_in_text)
    assert (
        result.status == "PASS" and "would parse" in result.detail and "<|im_end|>" in result.detail
    )
    escaped = check(make(tmp_path / "b"), doctor.check_special_in_text)  # GOOD escapes "<|"
    assert escaped.status == "PASS" and "would parse" not in escaped.detail


def test_special_tokens_leaking_warn(tmp_path, monkeypatch):
    # the check can fail: with data.parse_special_tokens on, the strings become control tokens
    from rlcore.data import chat

    parsing = lambda *a: chat.render_prompt(*a, parse_specials=True)  # noqa: E731
    monkeypatch.setattr(doctor, "render_prompt", parsing)
    result = check(make(tmp_path, template=CHAT_TEMPLATE), doctor.check_special_in_text)
    assert result.status == "WARN" and "<|im_end|>" in result.detail


def test_tool_calls_dropped(tmp_path):
    assert check(make(tmp_path, template=CHAT_TEMPLATE), doctor.check_tool_calls).status == "WARN"


def test_train_inference_multi_turn_think_stripped(tmp_path):
    # like templates that drop earlier turns' reasoning: the turn-1 rollout is not what turn 2 sees
    strip = GOOD.replace(
        "{{ m['content'] | replace('<|', '< |') }}",
        "{{ m['content'].split('</think>')[-1] if m['role'] == 'assistant' and not loop.last "
        "else m['content'] }}",
    )
    result = check(make(tmp_path, template=strip), doctor.check_train_inference)
    assert result.status == "FAIL"
    assert result.detail.startswith("multi-turn: turn 2") and "<think>" in result.detail


def test_train_inference_sft_end_token_differs(tmp_path):
    path = make(tmp_path, eos=EOS, config_eos=(2, 0))
    result = check(path, doctor.check_train_inference)
    assert result.status == "FAIL" and "<|endoftext|>" in result.detail


def test_template_errors_and_missing_template(tmp_path, capsys):
    raises = GOOD.replace(
        "{% for m in messages %}",
        "{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}",
    )
    got = statuses(make(tmp_path / "a", template=raises))
    assert got["tool_calls"] == got["train_inference"] == "FAIL"
    path = make(tmp_path / "b")
    (tmp_path / "b" / "chat_template.jinja").unlink()
    assert [(c.name, c.status) for c in doctor.run_checks(path)] == [("chat_template", "FAIL")]
    assert doctor.main([path, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["checks"][0]["status"] == "FAIL"
    assert doctor.main([str(tmp_path / "nowhere")]) == 2


def test_stop_ids_match_the_trainer(tmp_path):
    from rlcore.data.chat import stop_token_ids as _stop_token_ids

    for eos, config_eos in [(IM_END, (2, 0)), (EOS, (0,)), (IM_END, (0,))]:
        path = make(tmp_path / f"{eos[2:5]}{config_eos}", eos=eos, config_eos=config_eos)
        tok = AutoTokenizer.from_pretrained(path)
        assert doctor.stop_token_ids(tok, path) == _stop_token_ids(tok, path)


@pytest.mark.slow
def test_smollm2_conversion_and_findings():
    from rlcore.models.smollm2 import smollm2_path  # converts once (~30 s), then cached

    try:  # the package ships the weights only: importing it needs `llm`, which is not installed
        path = smollm2_path()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"SmolLM2 is not installed: {e}")
    assert json.loads((path / "generation_config.json").read_text())["eos_token_id"] == [2]
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    got = statuses(str(path))
    assert got.pop("tool_calls") == "WARN"
    assert set(got.values()) == {"PASS"}
