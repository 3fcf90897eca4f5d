"""Evaluation: generate an answer for every example, score it, and report per task and split.

Metrics (each in [0, 1], reported as percentages):
- exact match: the answer equals the reference (surrounding whitespace ignored);
- token F1: overlap of the lower-cased word/punctuation tokens of answer and reference,
  F1 = 2PR / (P + R) with P = shared / answer tokens, R = shared / reference tokens;
- ROUGE-L: the same F1 but with the longest common subsequence instead of the shared multiset,
  so word order counts;
- pass rate (code tasks): the answer, run in a separate process, passes all the task's tests.

Splits are named by the examples' `split` field (or the file name): `test` (seen tasks, seen
phrasings), `heldout_phrasings`, `heldout_tasks`, `contrast` (one task's inputs under another
seen task's instruction) and `heldout_compositions` (new tasks made of known skills). Averages
are over tasks (each task counts the same, whatever its number of examples). When `contrast` and
`test` are scored together, the contrast average also gets its *retention* (`retention`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from minitune.data.codecheck import check_programs
from minitune.data.formats import Record, read_records
from minitune.data.templates import format_prompt

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: "Hello, World!" -> [hello , world !]."""
    return _TOKEN.findall(text.lower())


def exact_match(prediction: str, reference: str) -> float:
    return float(prediction.strip() == reference.strip())


def token_f1(prediction: str, reference: str) -> float:
    """Example: "the red car" vs "the blue car" -> P = R = 2/3 -> F1 = 0.667."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    shared = sum((Counter(pred) & Counter(ref)).values())
    if shared == 0:
        return 0.0
    p, r = shared / len(pred), shared / len(ref)
    return 2 * p * r / (p + r)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """Example: "a b c d" vs "a c b d" -> LCS 3 -> P = R = 3/4 -> 0.75."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(pred), lcs / len(ref)
    return 2 * p * r / (p + r)


@dataclass
class Scored:
    split: str
    task: str
    prompt: str
    reference: str
    prediction: str
    exact_match: float
    token_f1: float
    rouge_l: float
    code_pass: float | None = None  # code tasks only


@torch.no_grad()
def predict(
    model,
    tok,
    prompts: list[str],
    max_source_length: int = 128,
    max_new_tokens: int = 64,
    batch_size: int = 64,
    **decoding,
) -> list[str]:
    """Generate an answer for each prompt (batched, longest prompts first to waste less)."""
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = tok.encode_batch([prompts[i] for i in chunk], max_length=max_source_length)
        out = model.generate(
            batch.input_ids.to(device),
            batch.attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            **decoding,
        )
        for i, row in zip(chunk, out.tolist(), strict=True):
            answers[i] = tok.decode(row)
    return answers


def score(
    records: list[Record], predictions: list[str], default_split: str, run_code: bool = True
) -> list[Scored]:
    """Score predictions; with run_code, code answers are run against their tests in a limited
    subprocess (minitune/data/codecheck.py); without, they get no pass rate."""
    scored = []
    for r, p in zip(records, predictions, strict=True):
        scored.append(
            Scored(
                split=r.meta.get("split", default_split),
                task=r.meta.get("task", "all"),
                prompt=format_prompt(r.instruction, r.input),
                reference=r.output,
                prediction=p,
                exact_match=exact_match(p, r.output),
                token_f1=token_f1(p, r.output),
                rouge_l=rouge_l(p, r.output),
            )
        )
    code = [i for i, r in enumerate(records) if "tests" in r.meta and "entry_point" in r.meta]
    code = code if run_code else []
    programs = [
        {
            "code": predictions[i],
            "entry_point": records[i].meta["entry_point"],
            "tests": records[i].meta["tests"],
        }
        for i in code
    ]
    for i, result in zip(code, check_programs(programs, batch_time_limit=300), strict=True):
        scored[i].code_pass = float(result.passed)
    return scored


def summarize(scored: list[Scored]) -> dict:
    """{split: {"tasks": {task: metrics}, "average": metrics over tasks}} (percentages)."""
    groups: dict[str, dict[str, list[Scored]]] = defaultdict(lambda: defaultdict(list))
    for s in scored:
        groups[s.split][s.task].append(s)
    report = {}
    for split, tasks in groups.items():
        per_task = {}
        for task, items in sorted(tasks.items()):
            row = {"n": len(items)}
            for metric in ("exact_match", "token_f1", "rouge_l"):
                row[metric] = 100 * sum(getattr(s, metric) for s in items) / len(items)
            passes = [s.code_pass for s in items if s.code_pass is not None]
            if passes:
                row["code_pass"] = 100 * sum(passes) / len(passes)
            per_task[task] = row
        average = {"n": sum(r["n"] for r in per_task.values()), "tasks": len(per_task)}
        for metric in ("exact_match", "token_f1", "rouge_l"):
            average[metric] = sum(r[metric] for r in per_task.values()) / len(per_task)
        report[split] = {"tasks": per_task, "average": average}
    if "contrast" in report and "test" in report:
        report["contrast"]["average"]["retention"] = retention(report)
    return report


def retention(report: dict) -> float | None:
    """How much of a task's skill survives when its instruction comes with another task's
    input: the mean, over the tasks asked in `contrast`, of min(1, contrast EM / test EM).
    Capped at 1, so a task that happens to be easier on other inputs cannot hide one that
    breaks; tasks with no exact match on `test` are left out (nothing to retain); None when
    none is left."""
    test = report["test"]["tasks"]
    ratios = [
        min(1.0, row["exact_match"] / test[task]["exact_match"])
        for task, row in report["contrast"]["tasks"].items()
        if test.get(task, {}).get("exact_match", 0) > 0
    ]
    return sum(ratios) / len(ratios) if ratios else None


SPLIT_NAMES = {
    "test": "seen tasks, seen phrasings",
    "heldout_phrasings": "held-out phrasings",
    "heldout_tasks": "held-out tasks",
    "contrast": "one input, another seen task's instruction",
    "heldout_compositions": "held-out compositions of known skills",
}


def format_table(report: dict) -> str:
    """A plain-text table: one line per task, an average line per split."""
    lines = [
        f"{'split':20s} {'task':24s} {'n':>5s} {'EM':>6s} {'F1':>6s} {'ROUGE-L':>7s} {'code':>6s}"
    ]
    for split, part in report.items():
        for task, row in part["tasks"].items():
            code = f"{row['code_pass']:6.1f}" if "code_pass" in row else f"{'':6s}"
            lines.append(
                f"{split:20s} {task:24s} {row['n']:5d} {row['exact_match']:6.1f} "
                f"{row['token_f1']:6.1f} {row['rouge_l']:7.1f} {code}"
            )
        a = part["average"]
        label = f"average of {a['tasks']} tasks"
        lines.append(
            f"{split:20s} {label:24s} {a['n']:5d} {a['exact_match']:6.1f} "
            f"{a['token_f1']:6.1f} {a['rouge_l']:7.1f}"
        )
        if a.get("retention") is not None:
            lines.append(f"{split:20s} {'retention (vs test)':24s} {'':5s} {a['retention']:6.2f}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def split_name(path: str | Path) -> str:
    return Path(path).stem


def evaluate_files(
    model,
    tok,
    files: list[str],
    limit: int | None,
    max_source_length: int,
    max_new_tokens: int,
    run_code: bool | None = None,
    **decoding,
) -> dict:
    """Predict and score every example of the files; returns the report (see evaluate.py) and
    notes for the user (prompts cut to max_source_length, generated code run or not).

    Code answers are run against their tests (in a limited subprocess) for the shipped suite's
    files, or for any file with run_code=True; run_code=False runs none."""
    from minitune.run.paths import is_shipped

    scored, notes, ran = [], [], 0
    for path in files:
        records = read_records(path)[:limit] if limit else read_records(path)
        prompts = [format_prompt(r.instruction, r.input) for r in records]
        cut = sum(len(tok.encode(p)) + 1 > max_source_length for p in prompts)
        if cut:
            notes.append(
                f"{path}: {cut} of {len(prompts)} prompts are longer than "
                f"{max_source_length} tokens and were cut (--max-source-length)"
            )
        predictions = predict(model, tok, prompts, max_source_length, max_new_tokens, **decoding)
        runs = run_code if run_code is not None else is_shipped(path)
        scored += score(records, predictions, split_name(path), run_code=runs)
        n_code = sum("tests" in r.meta and "entry_point" in r.meta for r in records)
        if n_code and runs:
            ran += n_code
        elif n_code:
            notes.append(
                f"{path}: {n_code} code answers were not run (it is not the shipped "
                "suite); --run-code runs them in a limited subprocess"
            )
    if ran:
        notes.append(
            f"ran {ran} generated programs against their tests, each in a separate "
            "Python process with CPU-time and memory limits"
        )
    return {"report": summarize(scored), "scored": scored, "notes": notes}
