"""Evaluation as a user reads it: answers go back to their prompts, references score 100%,
averages are over tasks (macro), code answers are run, and the table shows the report's numbers.

A stub model stands in for the network: it answers each prompt with a text chosen in advance
(looked up by the prompt's token ids), so what `predict` returns can be checked exactly.
"""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from minitune.data.formats import Record
from minitune.evaluate import Scored, evaluate_files, format_table, predict, score, summarize
from minitune.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
TOK = Tokenizer(ROOT / "tokenizer" / "minitune.model")


class StubModel(nn.Module):
    """Answers a prompt with answers[prompt]; records the batches it was given."""

    def __init__(self, tok: Tokenizer, answers: dict[str, str], max_source_length: int = 512):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # predict asks the parameters for the device
        self.tok = tok
        self.by_ids = {}
        for prompt, answer in answers.items():
            batch = tok.encode_batch([prompt], max_length=max_source_length)
            self.by_ids[tuple(batch.input_ids[0].tolist())] = answer
        self.batch_sizes: list[int] = []

    def generate(self, input_ids, attention_mask, max_new_tokens=64, **decoding):
        self.batch_sizes.append(input_ids.shape[0])
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            prompt_ids = tuple(i for i, m in zip(ids, mask, strict=True) if m)
            rows.append(self.tok.encode(self.by_ids[prompt_ids], add_eos=True)[:max_new_tokens])
        width = max(map(len, rows))
        return torch.tensor([r + [self.tok.pad_id] * (width - len(r)) for r in rows])


def test_predict_returns_each_answer_to_its_own_prompt():
    # mixed lengths, ties in length, more prompts than one batch: the sort and the chunks matter
    prompts = [f"Question {i}: " + "word " * ((7 * i) % 11) + "?" for i in range(23)]
    prompts += ["short", "a much, much longer prompt " * 6, "short!"]
    answers = {p: f"answer to number {i}" for i, p in enumerate(prompts)}
    model = StubModel(TOK, answers)
    got = predict(model, TOK, prompts, max_source_length=512, batch_size=4)
    assert got == [answers[p] for p in prompts]
    assert model.batch_sizes == [4] * 6 + [2]  # really batched, in chunks of 4


def _records(per_task: int = 3) -> list[Record]:
    """The first examples of a few tasks of the shipped test split, code tasks included."""
    wanted = {
        "addition": "test",
        "translate_en_fr": "test",
        "code_numbers": "test",
        "code_strings": "heldout_tasks",
        "uppercase": "heldout_tasks",
    }
    rows, count = [], dict.fromkeys(wanted, 0)
    for line in (ROOT / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["task"] in wanted and count[row["task"]] < per_task:
            count[row["task"]] += 1
            rows.append({**row, "split": wanted[row["task"]]})  # two splits in one file
    return rows


def test_references_as_predictions_score_100_on_every_metric(tmp_path):
    rows = _records()
    rows.sort(key=lambda r: len(r["input"]))  # file order is not length order
    rows = rows[::2] + rows[1::2]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    from minitune.data.templates import format_prompt

    answers = {format_prompt(r["instruction"], r["input"]): r["output"] for r in rows}
    model = StubModel(TOK, answers, max_source_length=512)
    # a copy outside data/: code runs only when asked (shipped files run it by default)
    result = evaluate_files(model, TOK, [str(path)], None, 512, 200, run_code=True)
    assert [s.prediction for s in result["scored"]] == [r["output"] for r in rows]
    report = result["report"]
    assert set(report) == {"test", "heldout_tasks"}
    for split in report.values():
        for task, row in split["tasks"].items():
            assert row["n"] == 3
            assert row["exact_match"] == row["token_f1"] == row["rouge_l"] == 100.0, task
            assert row.get("code_pass", 100.0) == 100.0, task
        average = split["average"]
        assert average["exact_match"] == average["token_f1"] == average["rouge_l"] == 100.0
    assert "code_pass" in report["test"]["tasks"]["code_numbers"]
    assert "code_pass" in report["heldout_tasks"]["tasks"]["code_strings"]
    assert "code_pass" not in report["test"]["tasks"]["addition"]


def test_wrong_code_fails_and_macro_averages_are_per_task(tmp_path):
    """Hand-computed: task a has 3 examples (1 right), task b has 1 (right), code task c has 2
    (one is the reference, one returns the wrong value and fails its tests).

    exact match: a 1/3, b 1/1, c 1/2 -> macro (33.33 + 100 + 50) / 3 = 61.11 (micro: 3/6 = 50)
    token F1 of "the red car" vs "the blue car" = 2/3; ROUGE-L of "c b a" vs "a b c" = 1/3.
    """
    code = {"entry_point": "double", "tests": [[[2], 4], [[5], 10]]}
    records = [
        Record("i", "x1", "the blue car", {"task": "a"}),
        Record("i", "x2", "a b c", {"task": "a"}),
        Record("i", "x3", "yes", {"task": "a"}),
        Record("i", "x4", "42", {"task": "b"}),
        Record("i", "x5", "def double(x):\n    return 2 * x\n", {"task": "c", **code}),
        Record("i", "x6", "def double(x):\n    return 2 * x\n", {"task": "c", **code}),
    ]
    predictions = [
        "the red car",
        "c b a",
        "yes",
        " 42 ",
        "def double(x):\n    return 2 * x\n",
        "def double(x):\n    return x + 2\n",
    ]
    scored = score(records, predictions, default_split="valid")
    assert [s.code_pass for s in scored] == [None, None, None, None, 1.0, 0.0]
    report = summarize(scored)["valid"]
    a, b, c = (report["tasks"][t] for t in "abc")
    assert a["exact_match"] == pytest.approx(100 / 3)
    assert a["token_f1"] == pytest.approx(100 * (2 / 3 + 1 + 1) / 3)
    assert a["rouge_l"] == pytest.approx(100 * (2 / 3 + 1 / 3 + 1) / 3)
    assert b["exact_match"] == b["token_f1"] == b["rouge_l"] == 100.0
    assert c["exact_match"] == 50.0 and c["code_pass"] == 50.0 and "code_pass" not in a
    average = report["average"]
    assert average["n"] == 6 and average["tasks"] == 3
    assert average["exact_match"] == pytest.approx((100 / 3 + 100 + 50) / 3)
    for metric in ("token_f1", "rouge_l"):
        assert average[metric] == pytest.approx((a[metric] + b[metric] + c[metric]) / 3)

    table = format_table({"valid": report}).splitlines()
    assert table[0].split() == ["split", "task", "n", "EM", "F1", "ROUGE-L", "code"]
    rows = {line.split()[1]: line.split() for line in table[1:4]}
    assert rows["a"] == ["valid", "a", "3", "33.3", f"{a['token_f1']:.1f}", f"{a['rouge_l']:.1f}"]
    assert rows["c"] == [
        "valid",
        "c",
        "2",
        "50.0",
        f"{c['token_f1']:.1f}",
        f"{c['rouge_l']:.1f}",
        "50.0",
    ]
    assert table[4].split() == [
        "valid",
        "average",
        "of",
        "3",
        "tasks",
        "6",
        "61.1",
        f"{average['token_f1']:.1f}",
        f"{average['rouge_l']:.1f}",
    ]


def test_splits_are_kept_apart():
    scored = [
        Scored("test", "t", "p", "r", "r", 1.0, 1.0, 1.0),
        Scored("heldout_tasks", "t", "p", "r", "x", 0.0, 0.0, 0.0),
    ]
    report = summarize(scored)
    assert report["test"]["average"]["exact_match"] == 100.0
    assert report["heldout_tasks"]["average"]["exact_match"] == 0.0
