"""The generated instruction suite: task families, their phrasings, and the five splits.

A task family (say, English→French translation) is a generator of (input, output) pairs plus
several instruction phrasings ("Translate this sentence into French.", "How do you say this in
French?", ...). The suite is FLAN in miniature: train on many families and phrasings, then ask
how well the model follows

- `test`: seen families, seen phrasings, new examples;
- `heldout_phrasings`: seen families, each family's last phrasing, never trained on;
- `heldout_tasks`: the families of one whole cluster (`HELDOUT_CLUSTER`), never trained on;
- `contrast` and `heldout_compositions` (`reading.py`): one task's inputs under another seen
  task's instruction, and new tasks made of known skills: does the model read the instruction?

`valid` is like `test`, for choosing checkpoints. Everything is deterministic from the seed:
the same seed gives the same bytes. No (input, answer) pair appears twice in a family, whatever
its phrasing or options, so no test question was trained on.

    python -m minitune data generate --out data/ --seed 0

Fresh training data: `train.jsonl` has 500 examples per family, which a long run repeats until
the model memorises them. `draw_training_examples` draws many more (thousands per family), from
the wide value pools (`make(rng, wide=True)`), in its own random stream, and leaves out every
input and prompt of the evaluation splits of the suite with the same seed, which it regenerates
here to know them. The shipped files do not change. It also draws the training-only families
of `families_shared` (`training_only_families`): more tasks over the suite's own inputs, where
several families share one input and only the instruction tells them apart; they have no
evaluation split, and their examples avoid every evaluation input and prompt of any family.

    python -m minitune data fresh --out runs/fresh_train.jsonl --per-task 4000 --seed 0
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from minitune.data.templates import format_prompt
from minitune.suite import (
    families_code,
    families_language,
    families_shared,
    families_symbolic,
    phrasings,
    reading,
)
from minitune.suite.reading import READING_SPLITS

# the five splits of the suite, then the two that ask whether the model reads the instruction
SPLITS = ("train", "valid", "test", "heldout_phrasings", "heldout_tasks", *READING_SPLITS)
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
    # (rng, wide=False) -> {"input", "output", slots..., "extra": {...}}; wide: larger pools
    make: Callable[..., dict]


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


def _suite_specs() -> list[dict]:
    """The suite's family specs, as the family modules write them."""
    return families_language.FAMILIES + families_code.FAMILIES + families_symbolic.FAMILIES


def all_families() -> list[Family]:
    """Every family of the suite, in a fixed order."""
    families = [Family(**spec) for spec in _suite_specs()]
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "family names must be unique"
    return families


def training_only_families() -> list[Family]:
    """The families of fresh training data only (`families_shared`), in a fixed order: no
    evaluation split of their own, so every phrasing is trained on."""
    families = [Family(**spec) for spec in families_shared.FAMILIES]
    names = [f.name for f in all_families() + families]
    assert len(names) == len(set(names)), "family names must be unique"
    assert all(f.cluster != HELDOUT_CLUSTER for f in families), "the held-out cluster stays out"
    return families


def render(
    family: Family, phrasing_index: int, sample: dict, split: str, phrasing: str | None = None
) -> Example:
    """Fill a phrasing with a sample. A phrasing that contains `{input}` takes the input inline
    (and the example's `input` field stays empty); otherwise the input goes in its own field.
    `phrasing`: this text instead of the family's phrasing number `phrasing_index` (a grammar
    phrasing; its template is then `<task>/g<index>`)."""
    template = (
        f"{family.name}/{phrasing_index}"
        if phrasing is None
        else f"{family.name}/g{phrasing_index}"
    )
    phrasing = family.phrasings[phrasing_index] if phrasing is None else phrasing
    slots = {k: v for k, v in sample.items() if k not in ("output", "extra")}
    instruction = phrasing.format_map(slots)
    inline = "{input}" in phrasing
    return Example(
        instruction=instruction,
        input="" if inline else sample["input"],
        output=sample["output"],
        task=family.name,
        cluster=family.cluster,
        template=template,
        split=split,
        extra=sample.get("extra", {}),
    )


class GenerationError(ValueError):
    """Some families cannot give as many distinct examples as asked; one line per family."""


def _key(sample: dict) -> str:
    """What makes two samples the same example: their input and answer."""
    return json.dumps([sample["input"], sample["output"]])


def _draw(
    family: Family,
    rng: random.Random,
    n: int,
    split: str,
    phrasings: list[int],
    seen: set[str],
    wide: bool = False,
    allowed: Callable[[dict, Example], bool] | None = None,
    patience: int | None = None,
) -> list[tuple[dict, Example]]:
    """Up to n new (sample, example) pairs of one family, each with a phrasing drawn from
    `phrasings`. A sample whose key is in `seen` is skipped (and new keys are added to it);
    one that `allowed` rejects is skipped too. Stops after 50·n + 100 draws, or after
    `patience` draws in a row that gave nothing new: then the family's space is (nearly) used up.
    """
    drawn: list[tuple[dict, Example]] = []
    attempts, misses = 0, 0
    while len(drawn) < n and attempts < 50 * n + 100:
        if patience is not None and misses >= patience:
            break
        attempts, misses = attempts + 1, misses + 1
        sample = family.make(rng, wide=wide)
        key = _key(sample)
        if key in seen:
            continue  # never the same input and answer in two splits (or twice in one)
        seen.add(key)
        example = render(family, rng.choice(phrasings), sample, split)
        if allowed is not None and not allowed(sample, example):
            continue
        drawn.append((sample, example))
        misses = 0
    return drawn


def _suite_with_samples(
    seed: int, counts: dict[str, int] | None = None
) -> tuple[dict[str, list[tuple[dict, Example]]], list[str]]:
    """The five splits as (sample, example) pairs, and one line per family that fell short."""
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    splits: dict[str, list[tuple[dict, Example]]] = {name: [] for name in SPLITS}
    short: list[str] = []
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
        made = 0
        for split, n, phrasing_choices in plan:
            drawn = _draw(family, rng, n, split, list(phrasing_choices), seen_keys)
            splits[split] += drawn
            made += len(drawn)
        asked = sum(n for _, n, _ in plan)
        if made < asked:
            short.append(f"{family.name}: {made:,} distinct examples (asked {asked:,} in all)")
    if not short:
        splits["contrast"] = _contrast_split(seed, splits)
        splits["heldout_compositions"] = _composition_split(seed, splits)
    return splits, short


def _contrast_split(seed: int, splits: dict) -> list[tuple[dict, Example]]:
    """`reading.CONTRAST`: the first `test` inputs of each input task, asked under each other
    task of its group with one of that task's trained phrasings (drawn), answered by its
    operation; kept only when that answer is not the input's own answer and the pair is not
    already an example of the asked task."""
    families = {f.name: f for f in all_families()}
    keys = {_key(sample) for pairs in splits.values() for sample, _ in pairs}
    test = [sample | {"task": e.task} for sample, e in splits["test"]]
    out: list[tuple[dict, Example]] = []
    for group in reading.CONTRAST:
        for source in group.input_tasks:
            inputs = [s for s in test if s["task"] == source]
            for asked in (t for t in group.asked_tasks if t != source and t in families):
                rng = random.Random(f"minitune-{seed}-contrast-{source}-{asked}")
                family, kept = families[asked], 0
                for own in inputs:
                    if kept == reading.CONTRAST_PER_PAIR:
                        break
                    slots = {}
                    if asked == "count_letter":
                        slots["letter"] = reading.letter_to_count(rng, own["input"])
                        if slots["letter"] is None:
                            continue
                    answer = reading.OPERATIONS[asked](own["input"], slots)
                    sample = {"input": own["input"], "output": answer, **slots}
                    if answer in (None, own["output"]) or _key(sample) in keys:
                        continue
                    sample["extra"] = {"input_task": source}
                    phrasing = rng.randrange(len(family.phrasings) - 1)  # a trained one
                    out.append((sample, render(family, phrasing, sample, "contrast")))
                    kept += 1
    return out


def _composition_split(seed: int, splits: dict) -> list[tuple[dict, Example]]:
    """`reading.COMPOSITIONS`: `COMPOSITION_COUNT` examples of each, every phrasing in turn,
    none with the input of any example of the other splits. Raises GenerationError when a
    phrasing has a word that no trained phrasing has."""
    # the suite's own specs, also when a caller narrows all_families()
    specs = [f for f in _suite_specs() if f["cluster"] != HELDOUT_CLUSTER]
    trained = [p for f in specs for p in f["phrasings"][:-1]]
    try:
        reading.check_words(trained)
    except ValueError as err:
        raise GenerationError(str(err)) from None
    inputs = {sample["input"] for pairs in splits.values() for sample, _ in pairs}
    out: list[tuple[dict, Example]] = []
    for c in reading.COMPOSITIONS:
        family = Family(
            c.name, "compositions", c.phrasings, lambda rng, wide=False, c=c: c.make(rng)
        )
        rng = random.Random(f"minitune-{seed}-compose-{c.name}")
        drawn = 0
        for _ in range(100 * reading.COMPOSITION_COUNT):
            if drawn == reading.COMPOSITION_COUNT:
                break
            sample = c.make(rng) | {"extra": {"kind": c.kind}}
            if sample["input"] in inputs:
                continue
            inputs.add(sample["input"])
            example = render(family, drawn % len(c.phrasings), sample, "heldout_compositions")
            out.append((sample, example))
            drawn += 1
        if drawn < reading.COMPOSITION_COUNT:
            raise GenerationError(f"{c.name}: only {drawn} distinct inputs")
    return out


def generate_suite(seed: int = 0, counts: dict[str, int] | None = None) -> dict[str, list[Example]]:
    """All five splits. Each family draws from its own random stream, so adding a family does
    not change the others' examples. Raises `GenerationError` (one line per family) when a
    family's space holds fewer distinct examples than `counts` asks for."""
    splits, short = _suite_with_samples(seed, counts)
    if short:
        raise GenerationError(
            "some tasks have fewer distinct examples than asked:\n  " + "\n  ".join(short)
        )
    return {split: [example for _, example in pairs] for split, pairs in splits.items()}


def _write_jsonl(path: Path, examples: list[Example]) -> None:
    """One example per line, UTF-8, \\n line ends; written to a temporary file, then renamed."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for example in examples:
            f.write(example.to_json() + "\n")
    tmp.replace(path)


def write_suite(out_dir: str | Path, seed: int = 0, counts: dict[str, int] | None = None) -> dict:
    """Write `<split>.jsonl` files into out_dir; returns counts per split and per task."""
    splits = generate_suite(seed, counts)  # first: nothing is written if it cannot be drawn
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for split, examples in splits.items():
        _write_jsonl(out / f"{split}.jsonl", examples)
        summary[split] = dict(Counter(e.task for e in examples))
    return summary


# ---- fresh training data -----------------------------------------------------------------

EVAL_SPLITS = ("valid", "test", "heldout_phrasings", "heldout_tasks", *READING_SPLITS)
# a fresh draw gives up on a family after this many draws in a row bring nothing new
FRESH_PATIENCE = 20_000


@dataclass
class Exclusions:
    """What fresh training data must avoid: everything the evaluation splits of a suite ask."""

    inputs: dict[str, set[str]]  # per family: the sample inputs of its evaluation examples
    keys: dict[str, set[str]]  # per family: their (input, answer) keys
    prompts: set[str]  # every evaluation prompt (instruction + input), of any family
    # for the training-only families, which share the suite's inputs but have no split:
    # the sample inputs of every family, and each of their lines and sentences (a story's
    # sentence is part of a summarize_story input):
    any_inputs: set[str] = field(default_factory=set)
    heldout_answers: set[str] = field(default_factory=set)  # the answers of `heldout_tasks`
    # every evaluation example's (answer, input) key: a training example that is one of them
    # asks the evaluation question backwards (French→English test, English→French training)
    reversed_keys: set[str] = field(default_factory=set)
    # the inputs of `contrast` and `heldout_compositions`, whose tasks are not families: no
    # training example of any family has one as its input, or as its answer when it is a text
    # of 10 characters or more (a one-word answer such as "cook" may be anyone's)
    reading_inputs: set[str] = field(default_factory=set)

    def allows(self, family: str, sample: dict, example: Example) -> bool:
        """True when the example shares nothing with the evaluation splits."""
        return (
            sample["input"] not in self.inputs[family]
            and _key(sample) not in self.keys[family]
            and self._shares_nothing(sample, example)
        )

    def allows_anywhere(self, sample: dict, example: Example) -> bool:
        """For a training-only family: True when its input is no evaluation input of any family,
        its prompt no evaluation prompt, and its answer no answer of a held-out task."""
        return (
            sample["input"] not in self.any_inputs
            and sample["output"] not in self.heldout_answers
            and self._shares_nothing(sample, example)
        )

    def _shares_nothing(self, sample: dict, example: Example) -> bool:
        """No evaluation prompt, no evaluation question backwards, no input of the reading
        splits as input or answer."""
        return (
            format_prompt(example.instruction, example.input) not in self.prompts
            and _key(sample) not in self.reversed_keys
            and sample["input"] not in self.reading_inputs
            and (len(sample["output"]) < 10 or sample["output"] not in self.reading_inputs)
        )


def pieces_of(text: str) -> set[str]:
    """A text, its lines and their sentences: "A b. C d.\nE" -> {"A b. C d.\nE", "A b. C d.",
    "A b.", "C d.", "E"}; what a training-only input must not be, to share no part of it."""
    lines = text.split("\n")
    parts = {text, *lines, *(s for line in lines for s in re.split(r"(?<=[.!?]) ", line))}
    return parts - {""}


def evaluation_exclusions(seed: int = 0, counts: dict[str, int] | None = None) -> Exclusions:
    """The inputs, keys and prompts of the evaluation splits (valid, test, heldout_phrasings,
    heldout_tasks) of `generate_suite(seed, counts)`, regenerated with its own code (it is
    deterministic), so this is exact for the suite of any seed and split sizes."""
    splits, short = _suite_with_samples(seed, counts)
    if short:
        raise GenerationError("the suite cannot be generated:\n  " + "\n  ".join(short))
    names = [f.name for f in all_families()]
    exclusions = Exclusions({n: set() for n in names}, {n: set() for n in names}, set())
    for split in EVAL_SPLITS:
        for sample, example in splits[split]:
            if split in READING_SPLITS:
                exclusions.reading_inputs.add(sample["input"])
            else:
                exclusions.inputs[example.task].add(sample["input"])
                exclusions.keys[example.task].add(_key(sample))
            exclusions.prompts.add(format_prompt(example.instruction, example.input))
            exclusions.any_inputs.update(pieces_of(sample["input"]))
            exclusions.reversed_keys.add(
                _key({"input": sample["output"], "output": sample["input"]})
            )
            if split == "heldout_tasks":
                exclusions.heldout_answers.add(sample["output"])
    return exclusions


def fresh_families(shared: bool = True) -> list[Family]:
    """The families of fresh training data, in its order: the suite's seen families, then (with
    `shared`) the training-only ones."""
    seen = [f for f in all_families() if f.cluster != HELDOUT_CLUSTER]
    return seen + (training_only_families() if shared else [])


def draw_training_examples(
    per_task: int,
    seed: int = 0,
    wide: bool = True,
    counts: dict[str, int] | None = None,
    shared: bool = False,
    grammar: float = 0.0,
) -> list[Example]:
    """Up to `per_task` distinct training examples for every seen family (never a held-out
    family, never a held-out phrasing), none sharing an input, (input, answer) or prompt with
    the evaluation splits of `generate_suite(seed, counts)` (`counts`: the split sizes that
    suite was made with; default the shipped ones).

    With `shared`, `TRAINING_ONLY_SHARE` of that for each training-only family too
    (`training_only_families`, after the seen ones; all their phrasings; `asked_count`), none
    whose input is an evaluation input of any family, whose prompt is an evaluation prompt, or
    whose answer is a `heldout_tasks` answer.

    With `grammar`, that share of the examples of every seen task (and of the training-only
    families that ask one on other inputs) is asked with a phrasing generated by
    `phrasings.py`'s grammar instead of one of the five trained ones (never within one word of a
    held-out phrasing), chosen in a stream of its own: the samples stay the same.

    Each family draws from its own stream `minitune-train-<seed>-<family>`, so the shipped
    files do not move, adding a family moves no other family's examples, and the same arguments
    give the same examples. `wide` draws from the larger value pools. A family whose space is
    smaller than `per_task` gives what it has: its draw stops after 50·per_task + 100 draws, or
    `FRESH_PATIENCE` draws in a row with nothing new; compare `Counter(e.task for e in
    examples)` with `per_task` to see which fell short.
    """
    if per_task < 1:
        raise ValueError(f"per_task must be at least 1, got {per_task}")
    exclusions = evaluation_exclusions(seed, counts)
    training_only = {f.name for f in training_only_families()}
    examples: list[Example] = []
    for family in fresh_families(shared):
        rng = random.Random(f"minitune-train-{seed}-{family.name}")
        if family.name in training_only:  # no split of its own: all phrasings; no eval input
            phrasings, allowed = list(range(len(family.phrasings))), exclusions.allows_anywhere
        else:  # the held-out phrasing stays out
            phrasings = list(range(len(family.phrasings) - 1))
            allowed = partial(exclusions.allows, family.name)
        n = asked_count(family.name, per_task)
        drawn = _draw(family, rng, n, "train", phrasings, set(), wide, allowed, FRESH_PATIENCE)
        if grammar:
            drawn = _rephrase(family, drawn, grammar, seed, allowed)
        examples += [example for _, example in drawn]
    return examples


def held_out_phrasings() -> tuple[str, ...]:
    """Every phrasing that must stay new to training: each seen family's last one, every
    phrasing of the held-out cluster and of the held-out compositions."""
    families = all_families()
    return (
        *(f.phrasings[-1] for f in families if f.cluster != HELDOUT_CLUSTER),
        *(p for f in families if f.cluster == HELDOUT_CLUSTER for p in f.phrasings),
        *(p for c in reading.COMPOSITIONS for p in c.phrasings),
    )


def _rephrase(family: Family, drawn: list, share: float, seed: int, allowed) -> list:
    """`share` of a family's drawn examples asked with a grammar phrasing of its task (a
    training-only family `<task>_on_<inputs>` uses its task's); one that `allowed` rejects, or a
    family the grammar has no requests for, keeps its own."""
    task = family.name.split("_on_")[0]
    if task not in phrasings.REQUESTS:
        return drawn
    choices = phrasings.grammar_phrasings(task, held_out_phrasings())
    rng = random.Random(f"minitune-phrase-{seed}-{family.name}")
    out = []
    for sample, example in drawn:
        if rng.random() < share:
            j = rng.randrange(len(choices))
            other = render(family, j, sample, "train", phrasing=choices[j])
            example = other if allowed(sample, other) else example
        out.append((sample, example))
    return out


# a training-only family draws this share of `per_task`: the 21 of them then hold 24% of a
# fresh draw, and the 27 evaluated tasks keep 76% of the steps (with all of it, 56%)
TRAINING_ONLY_SHARE = 0.4


def asked_count(family: str, per_task: int) -> int:
    """How many fresh examples `draw_training_examples(per_task, ...)` asks of a family."""
    if family in {f.name for f in training_only_families()}:
        return max(1, round(per_task * TRAINING_ONLY_SHARE))
    return per_task


def write_training_set(
    path: str | Path,
    per_task: int,
    seed: int = 0,
    wide: bool = True,
    shared: bool = False,
    grammar: float = 0.0,
) -> dict[str, int]:
    """Write `draw_training_examples(per_task, seed, wide, shared=shared, grammar=grammar)` as
    JSONL to `path` (same arguments, same bytes); returns the number of examples per family, in
    the order of `fresh_families(shared)`."""
    examples = draw_training_examples(per_task, seed, wide, shared=shared, grammar=grammar)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_jsonl(path, examples)
    made = Counter(e.task for e in examples)
    return {f.name: made[f.name] for f in fresh_families(shared)}
