"""The generated instruction suite: task families, their phrasings, and the five splits.

A task family (say, English→French translation) is a generator of (input, output) pairs plus
several instruction phrasings ("Translate this sentence into French.", "How do you say this in
French?", ...). The suite is FLAN in miniature: train on many families and phrasings, then ask
how well the model follows

- `test`: seen families, seen phrasings, new examples;
- `heldout_phrasings`: seen families, each family's last phrasing, never trained on;
- `heldout_tasks`: the families of one whole cluster (`HELDOUT_CLUSTER`), never trained on.

`valid` is like `test`, for choosing checkpoints. Everything is deterministic from the seed:
the same seed gives the same bytes. No (input, answer) pair appears twice in a family, whatever
its phrasing or options, so no test question was trained on.

    python -m minitune data generate --out data/ --seed 0
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from minitune.data import families_language, families_symbolic

SPLITS = ("train", "valid", "test", "heldout_phrasings", "heldout_tasks")
HELDOUT_CLUSTER = "extraction"
# examples per family in each split (held-out families only get `heldout_tasks`)
DEFAULT_COUNTS = {
    "train": 500,
    "valid": 30,
    "test": 60,
    "heldout_phrasings": 40,
    "heldout_tasks": 80,
}


@dataclass(frozen=True)
class Family:
    """A task family: a generator of samples and its instruction phrasings (last: held out)."""

    name: str
    cluster: str
    phrasings: tuple[str, ...]
    make: Callable[[random.Random], dict]  # rng -> {"input", "output", slots..., "extra": {...}}


@dataclass
class Example:
    """One instruction example, as written to the JSONL files."""

    instruction: str
    input: str
    output: str
    task: str
    cluster: str
    template: str  # "<task>/<phrasing index>"
    split: str
    extra: dict = field(default_factory=dict)  # e.g. code tasks: entry_point and tests

    def to_json(self) -> str:
        record = {
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "task": self.task,
            "cluster": self.cluster,
            "template": self.template,
            "split": self.split,
            **self.extra,
        }
        return json.dumps(record, ensure_ascii=False)


def all_families() -> list[Family]:
    """Every family of the suite, in a fixed order."""
    families = [Family(**spec) for spec in families_language.FAMILIES + families_symbolic.FAMILIES]
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "family names must be unique"
    return families


def render(family: Family, phrasing_index: int, sample: dict, split: str) -> Example:
    """Fill a phrasing with a sample. A phrasing that contains `{input}` takes the input inline
    (and the example's `input` field stays empty); otherwise the input goes in its own field."""
    phrasing = family.phrasings[phrasing_index]
    slots = {k: v for k, v in sample.items() if k not in ("output", "extra")}
    instruction = phrasing.format_map(slots)
    inline = "{input}" in phrasing
    return Example(
        instruction=instruction,
        input="" if inline else sample["input"],
        output=sample["output"],
        task=family.name,
        cluster=family.cluster,
        template=f"{family.name}/{phrasing_index}",
        split=split,
        extra=sample.get("extra", {}),
    )


def generate_suite(seed: int = 0, counts: dict[str, int] | None = None) -> dict[str, list[Example]]:
    """All five splits. Each family draws from its own random stream, so adding a family does
    not change the others' examples."""
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for family in all_families():
        rng = random.Random(f"minitune-{seed}-{family.name}")
        seen_keys: set[str] = set()
        n_seen_phrasings = len(family.phrasings) - 1
        if family.cluster == HELDOUT_CLUSTER:
            plan = [("heldout_tasks", counts["heldout_tasks"], range(len(family.phrasings)))]
        else:
            plan = [
                ("train", counts["train"], range(n_seen_phrasings)),
                ("valid", counts["valid"], range(n_seen_phrasings)),
                ("test", counts["test"], range(n_seen_phrasings)),
                ("heldout_phrasings", counts["heldout_phrasings"], [n_seen_phrasings]),
            ]
        for split, n, phrasing_choices in plan:
            made, attempts = 0, 0
            while made < n:
                attempts += 1
                if attempts > 50 * n + 100:
                    raise RuntimeError(f"{family.name}: cannot draw {n} distinct {split} examples")
                sample = family.make(rng)
                key = json.dumps([sample["input"], sample["output"]])
                if key in seen_keys:
                    continue  # never the same input and answer in two splits (or twice in one)
                seen_keys.add(key)
                example = render(family, rng.choice(list(phrasing_choices)), sample, split)
                splits[split].append(example)
                made += 1
    return splits


def write_suite(out_dir: str | Path, seed: int = 0, counts: dict[str, int] | None = None) -> dict:
    """Write `<split>.jsonl` files into out_dir; returns counts per split and per task."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = generate_suite(seed, counts)
    summary = {}
    for split, examples in splits.items():
        path = out / f"{split}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for example in examples:
                f.write(example.to_json() + "\n")
        tmp.replace(path)
        summary[split] = dict(Counter(e.task for e in examples))
    return summary
