"""`hf:` data sources (rlcore/data/hf.py): datasets folders and files with a column mapping, GSM8K
and MATH answer forms, errors naming the config key. The datasets are built here (no hub)."""

import json

import pytest
from rlcore.verifiers.base import Sample
from rlcore.verifiers.math import MathVerifier

from rlcore.data.dataset import DataError, load_source
from rlcore.data.hf import final_answer

GSM = {
    "question": ["Tom has 3 apples and buys 4. How many?", "A pen costs 2. Six pens?"],
    "answer": ["3 + 4 = <<3+4=7>>7\n#### 7", "6 * 2 = 12\n#### 1,2"],
}
COLUMNS = {"prompt": "question", "answer": "answer"}


@pytest.fixture
def gsm_folder(tmp_path):
    import datasets

    d = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(GSM),
            "test": datasets.Dataset.from_dict({k: v[:1] for k, v in GSM.items()}),
        }
    )
    d.save_to_disk(str(tmp_path / "gsm"))
    return tmp_path / "gsm"


def _load(spec, **kw):
    return load_source(spec, key="data.train", size=10, seed=0, split="train", **kw)


def test_a_saved_dataset_with_a_column_mapping_gives_rows_the_math_verifier_scores(gsm_folder):
    rows = _load({"source": f"hf:{gsm_folder}", "options": {"split": "train", "columns": COLUMNS}})
    assert [r["prompt"] for r in rows] == GSM["question"]
    assert [r["reference"]["answer"] for r in rows] == ["7", "12"]  # after "####", no comma
    v = MathVerifier()
    assert v.verify(
        Sample(prompt="", response="so \\boxed{7}", reference=rows[0]["reference"])
    ).correct
    # the config's data.split / data.columns are the defaults of an hf: source without options
    test = _load(f"hf:{gsm_folder}", hf_defaults={"split": "test", "columns": COLUMNS})
    assert len(test) == 1 and test[0]["reference"]["answer"] == "7"


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_data_files_by_their_format(tmp_path, suffix):
    import datasets

    path = tmp_path / f"math{suffix}"
    table = datasets.Dataset.from_dict(
        {"problem": ["What is 1/2 + 1/4?"], "solution": ["We add: $\\boxed{\\frac{3}{4}}$."]}
    )
    {".parquet": table.to_parquet, ".jsonl": table.to_json, ".csv": table.to_csv}[suffix](str(path))
    rows = _load(
        {
            "source": f"hf:{path}",
            "options": {"columns": {"prompt": "problem", "answer": "solution"}},
        }
    )
    assert rows[0]["reference"]["answer"] == "\\frac{3}{4}"  # MATH's last \boxed{...}


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"options": {"split": "train", "columns": {"prompt": "query"}}},
            "no column 'query'; it has",
        ),
        ({"options": {"split": "validation", "columns": COLUMNS}}, "no split 'validation'"),
        ({"options": {"columns": {"answer": "answer"}}}, "needs 'prompt'"),
        ({"options": {"splits": "train"}}, "takes options split, columns, name"),
    ],
)
def test_errors_name_the_key_and_what_is_wrong(gsm_folder, spec, message):
    with pytest.raises(DataError, match=f"data.train.source: .*{message}|data.train: .*{message}"):
        _load({"source": f"hf:{gsm_folder}", **spec})


def test_a_missing_path_and_an_offline_hub_name_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="not a dataset folder or a data file"):
        _load(f"hf:{tmp_path / 'nope'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="data.train: hf:someone/gsm-nowhere: "):
        _load("hf:someone/gsm-nowhere")


def test_final_answer_forms():
    assert final_answer("work\n#### 1,234") == "1234"
    assert final_answer("so $\\boxed{x^{2}}$ and \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert final_answer(" 42 ") == "42" and final_answer(5) == 5
    assert json.dumps(final_answer("\\boxed{unclosed")) == json.dumps("\\boxed{unclosed")
