"""The two splits that ask whether the model reads the instruction (`data/contrast.jsonl`,
`data/heldout_compositions.jsonl`; minitune/suite/reading.py): what they hold, that their
answers are right, that they are new to training, and how retention is computed."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from minitune.data.formats import read_records
from minitune.data.templates import format_prompt
from minitune.evaluate import format_table, retention, summarize
from minitune.suite import families_shared, phrasings, reading, tasks
from minitune.suite.tasks import (
    HELDOUT_CLUSTER,
    GenerationError,
    all_families,
    evaluation_exclusions,
    generate_suite,
    training_only_families,
)

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def shipped():
    names = ("train", "test", "contrast", "heldout_compositions")
    return {name: read_records(DATA / f"{name}.jsonl") for name in names}


NUMBER_WORDS = {*reading.symbolic.NUMBERS_EN, *reading.symbolic.TENS_EN, "hundred", "thousand"}


def input_kind(text: str) -> str:
    """What an input looks like, as a reader would sort it."""
    if re.fullmatch(r"-?\d+(, -?\d+)+", text):
        return "number list"
    if re.fullmatch(r"\d{1,2} [A-Z][a-z]+ \d{4}", text):
        return "date in words"
    if text.endswith("."):
        return "sentence"
    if set(re.split(r"[ -]", text)) <= NUMBER_WORDS:
        return "number in words"
    return "word list"


@pytest.fixture(scope="module")
def samples():
    """The suite's (sample, example) pairs: a sample holds the input even where the phrasing
    puts it inline (the shipped files equal these: tests/test_data.py)."""
    splits, short = tasks._suite_with_samples(0)
    assert not short
    return splits


# ---- the operations -----------------------------------------------------------------------


def test_each_operation_gives_its_tasks_own_answers():
    """An operation used for contrast answers (and for the 20% check) answers every example of
    its own task as the task's generator does, on evaluation and on wide pools."""
    families = {f.name: f for f in all_families() + training_only_families()}
    checked = 0
    for name, operation in reading.OPERATIONS.items():
        family = families[name]
        rng = random.Random(name)
        for wide in (False, True):
            for _ in range(200):
                sample = family.make(rng, wide=wide)
                slots = {k: v for k, v in sample.items() if k not in ("input", "output")}
                assert operation(sample["input"], slots) == sample["output"], (name, sample)
                checked += 1
    assert checked == 400 * len(reading.OPERATIONS)


def test_operations_say_when_an_input_is_not_theirs():
    assert reading.OPERATIONS["list_max"]("cow sheep", {}) is None
    assert reading.OPERATIONS["date_format"]("5 March 2024", {}) is None
    assert reading.OPERATIONS["uppercase"]("3, 7, 1", {}) is None


# ---- contrast -----------------------------------------------------------------------------


def test_contrast_asks_seen_tasks_on_other_tasks_test_inputs(shipped, samples):
    test = defaultdict(dict)  # input task -> its test inputs -> their answers
    for sample, example in samples["test"]:
        test[example.task][sample["input"]] = sample["output"]
    trained_templates = {r.meta["template"] for r in shipped["train"]}
    assert len(samples["contrast"]) == len(shipped["contrast"])
    kinds, pairs = set(), Counter()
    for sample, example in samples["contrast"]:
        asked, source = example.task, example.extra["input_task"]
        text = sample["input"]
        assert asked != source
        assert example.template in trained_templates  # a trained phrasing of the asked task
        assert text in test[source]
        slots = {"letter": sample["letter"]} if asked == "count_letter" else {}
        if slots:
            assert f"'{slots['letter']}'" in example.instruction
            assert slots["letter"].upper() not in text  # case cannot change the count
        assert reading.OPERATIONS[asked](text, slots) == example.output
        assert example.output != test[source][text]  # not the input's own task's answer
        kinds.add(input_kind(text))
        pairs[(source, asked)] += 1
    assert {"number list", "word list", "sentence"} <= kinds
    assert len(pairs) >= 12 and min(pairs.values()) >= 10
    assert len({asked for _, asked in pairs}) >= 6


def test_contrast_prompts_are_new(shipped):
    seen = {format_prompt(r.instruction, r.input) for s in ("train", "test") for r in shipped[s]}
    prompts = [format_prompt(r.instruction, r.input) for r in shipped["contrast"]]
    assert len(set(prompts)) == len(prompts)
    assert not set(prompts) & seen


# ---- held-out compositions ----------------------------------------------------------------


def test_compositions_are_new_tasks_of_three_kinds(shipped):
    items = defaultdict(list)
    for r in shipped["heldout_compositions"]:
        items[r.meta["task"]].append(r)
    assert len(items) >= 8
    kinds = Counter(reading_kind for reading_kind in (c.kind for c in reading.COMPOSITIONS))
    assert set(kinds) == {"direction", "sequence", "input"} and min(kinds.values()) >= 2
    assert {c.name for c in reading.COMPOSITIONS} == set(items)
    families = {f.name for f in all_families() + training_only_families()}
    assert not set(items) & families
    trained_tasks = {r.meta["task"] for r in shipped["train"]}
    assert not set(items) & trained_tasks
    input_kinds = {input_kind(r.input) for rs in items.values() for r in rs}
    assert len(input_kinds) >= 3, input_kinds
    for c in reading.COMPOSITIONS:
        assert {r.instruction for r in items[c.name]} == set(c.phrasings)  # each one asked


def test_composition_words_all_occur_in_training_prompts(shipped):
    """Read from the shipped training file itself, not from the suite's code."""
    by_template = defaultdict(list)  # a phrasing's words: those of all its instructions
    for r in shipped["train"]:  # (an inline input's words are not the phrasing's)
        by_template[r.meta["template"]].append(reading.words_in(r.instruction))
    trained = set().union(*(set.intersection(*ws) for ws in by_template.values()))
    assert {"sort", "largest", "upper", "duplicates"} <= trained
    for c in reading.COMPOSITIONS:
        for phrasing in c.phrasings:
            assert reading.words_in(phrasing) <= trained, (
                c.name,
                reading.words_in(phrasing) - trained,
            )


def test_a_new_word_in_a_composition_fails_loudly(monkeypatch):
    odd = reading.Composition(
        "sort_words",
        "input",
        ("Sort the words in alphabetical order.",),
        lambda rng: {"input": "b a", "output": "a b"},
        known="sort_numbers",
    )
    monkeypatch.setattr(reading, "COMPOSITIONS", (*reading.COMPOSITIONS, odd))
    with pytest.raises(ValueError, match="alphabetical"):
        reading.check_words(["Sort the words in order."])
    small = {"train": 2, "valid": 1, "test": 1, "heldout_phrasings": 1, "heldout_tasks": 1}
    with pytest.raises(GenerationError, match=r"sort_words: \['alphabetical'\]"):
        generate_suite(0, small)


def test_no_trained_task_gives_a_compositions_answer(shipped):
    """A model that does a trained task's operation on a composition's input, instead of what
    its instruction says, is right on at most 20% of its items. For a composition that applies
    one known operation to another kind of input, that operation is its point and is left out."""
    items = defaultdict(list)
    for r in shipped["heldout_compositions"]:
        items[r.meta["task"]].append(r)
    for c in reading.COMPOSITIONS:
        for name, operation in reading.OPERATIONS.items():
            if name == c.known:
                continue
            hits = 0
            for r in items[c.name]:
                letters = set(r.input) if name == "count_letter" else {None}
                answers = {operation(r.input, {"letter": x} if x else {}) for x in letters}
                hits += r.output in answers
            assert hits <= 0.2 * len(items[c.name]), (c.name, name, hits)
        # nor does copying the input
        assert sum(r.input == r.output for r in items[c.name]) <= 0.2 * len(items[c.name])


def test_extraction_stays_held_out():
    families = all_families() + training_only_families()
    assert all(f.cluster != HELDOUT_CLUSTER for f in tasks.fresh_families(shared=True))
    assert {f.name for f in families if f.cluster == HELDOUT_CLUSTER} == {
        "extract_emails",
        "extract_dates",
        "extract_numbers",
    }


# ---- fresh training data stays away from both splits -------------------------------------


def test_fresh_training_avoids_the_reading_splits(shipped):
    exclusions = evaluation_exclusions()
    for r in shipped["contrast"] + shipped["heldout_compositions"]:
        assert format_prompt(r.instruction, r.input) in exclusions.prompts
        if r.input:
            assert r.input in exclusions.reading_inputs
    # the evaluation question backwards is no training example: a composition turns "5 March
    # 2024" into "2024-03-05"; date_format training must not turn that ISO date into its words
    back = next(r for r in shipped["heldout_compositions"] if r.meta["task"] == "date_from_words")
    date_format = next(f for f in all_families() if f.name == "date_format")
    sample = {"input": back.output, "output": back.input}
    example = tasks.render(date_format, 0, sample, "train")
    assert not exclusions.allows("date_format", sample, example)
    # a French composition input is nobody's translation answer
    french = next(
        r for r in shipped["heldout_compositions"] if r.meta["task"] == "uppercase_french"
    )
    translate = next(f for f in all_families() if f.name == "translate_en_fr")
    sample = {"input": "The cat sees a dog.", "output": french.input}
    assert not exclusions.allows(
        "translate_en_fr", sample, tasks.render(translate, 0, sample, "train")
    )
    drawn = tasks.draw_training_examples(300, shared=True)
    inputs = {e.input for e in drawn} | {e.output for e in drawn if len(e.output) >= 10}
    assert not inputs & exclusions.reading_inputs


# ---- scoring ------------------------------------------------------------------------------


def _scored(split, task, right, n=10):
    from minitune.evaluate import Scored

    return [
        Scored(split, task, "p", "a", "a" if i < right else "b", float(i < right), 0.0, 0.0)
        for i in range(n)
    ]


def test_retention_is_capped_and_skips_tasks_with_nothing_to_keep():
    scored = (
        _scored("test", "sort", 8)
        + _scored("contrast", "sort", 4)  # 0.5 of its test score
        + _scored("test", "max", 5)
        + _scored("contrast", "max", 9)  # easier here: counts as 1, not 1.8
        + _scored("test", "upper", 0)
        + _scored("contrast", "upper", 3)  # nothing on test: left out
    )
    report = summarize(scored)
    assert report["contrast"]["average"]["retention"] == pytest.approx(0.75)
    assert "retention (vs test)" in format_table(report)
    assert "retention" not in summarize(_scored("contrast", "sort", 4))["contrast"]["average"]
    assert retention(summarize(_scored("test", "a", 0) + _scored("contrast", "a", 1))) is None


# ---- training where the instruction is needed --------------------------------------------


def test_cross_families_ask_a_seen_task_on_other_inputs():
    """Each cross family asks a seen task, with that task's trained phrasings (never its held-out
    one), on inputs drawn by another generator, answered by the task's operation."""
    seen = {f.name: f for f in all_families()}
    cross = [f for f in training_only_families() if f.name.split("_on_")[0] in seen]
    assert len(cross) == len(families_shared.CROSS) >= 9
    for family in cross:
        task = family.name.split("_on_")[0]
        assert family.phrasings == seen[task].phrasings[:-1]
        draw_input = families_shared.SHARED_INPUTS[family.cluster]
        for i in range(100):
            sample = family.make(random.Random(i), wide=i % 2 == 1)
            assert sample["input"] == draw_input(random.Random(i), i % 2 == 1)
            slots = {"letter": sample["letter"]} if "letter" in sample else {}
            assert sample["output"] == reading.OPERATIONS[task](sample["input"], slots)


def test_no_training_family_does_a_compositions_operation_on_its_input_kind():
    """A composition of the third kind (a known operation on another input kind) stays held
    out: no training family asks its operation on inputs of its kind."""
    families = all_families() + training_only_families()
    for c in (c for c in reading.COMPOSITIONS if c.kind == "input"):
        kinds = {input_kind(c.make(random.Random(i))["input"]) for i in range(50)}
        if c.name == "uppercase_french":
            kinds = {"French sentence"}
        for family in families:
            if family.name.split("_on_")[0] != c.known:
                continue
            for i in range(200):
                text = family.make(random.Random(i), wide=True)["input"]
                kind = input_kind(text)
                if kind == "sentence" and re.search(r"\b(le|la|les|une?)\b", text, re.I):
                    kind = "French sentence"
                assert kind not in kinds, (c.name, family.name, text)


_words, _word_distance = phrasings.words, phrasings.word_distance


def test_no_trained_phrasing_is_a_held_out_one_give_or_take_a_word():
    """After lower-casing and dropping punctuation, every trained phrasing (seen tasks' five,
    every training-only family's) is at least two words away from every held-out phrasing
    (each seen task's sixth, the held-out tasks' all) and differs from every composition's."""
    seen = [f for f in all_families() if f.cluster != HELDOUT_CLUSTER]
    trained = [p for f in seen for p in f.phrasings[:-1]]
    trained += [p for f in training_only_families() for p in f.phrasings]
    held_out = [f.phrasings[-1] for f in seen]
    held_out += [p for f in all_families() if f.cluster == HELDOUT_CLUSTER for p in f.phrasings]
    for h in held_out:
        near = [t for t in trained if _word_distance(_words(h), _words(t)) < 2]
        assert not near, (h, near)
    composed = {tuple(_words(p)) for c in reading.COMPOSITIONS for p in c.phrasings}
    assert not composed & {tuple(_words(t)) for t in trained}
    assert _word_distance(_words("Sort the list."), _words("sort the LIST")) == 0
    assert _word_distance(_words("Sort the list."), _words("Sort this list.")) == 1


def test_the_grammar_says_each_task_many_ways_never_near_a_held_out_phrasing():
    assert phrasings.expand("{sort|order} the list{| now}") == [
        "sort the list",
        "sort the list now",
        "order the list",
        "order the list now",
    ]
    held_out = [_words(p) for p in tasks.held_out_phrasings()]
    assert len(held_out) == 27 + 18 + 27
    seen = {f.name: f for f in all_families() if f.cluster != HELDOUT_CLUSTER}
    assert set(phrasings.REQUESTS) == set(seen)
    for task, family in seen.items():
        generated = phrasings.grammar_phrasings(task, tasks.held_out_phrasings())
        assert len(generated) >= 50, task
        slots = set().union(*(set(re.findall(r"\{\w+\}", p)) for p in family.phrasings))
        for phrasing in generated:
            assert set(re.findall(r"\{\w+\}", phrasing)) <= slots, phrasing
            assert all(_word_distance(_words(phrasing), h) >= 2 for h in held_out), phrasing


def test_a_grammar_draw_rephrases_a_share_and_keeps_the_samples():
    plain = tasks.draw_training_examples(60, shared=True)
    mixed = tasks.draw_training_examples(60, shared=True, grammar=0.5)
    assert [(e.task, e.output) for e in plain] == [(e.task, e.output) for e in mixed]
    rephrased = [e for e in mixed if "/g" in e.template]
    assert 0.4 * len(mixed) < len(rephrased) < 0.6 * len(mixed)
    by_task = Counter(e.task for e in rephrased)
    assert by_task["sort_numbers"] and by_task["sort_numbers_on_repeat_lists"]
    assert not by_task["list_min"]  # no grammar for the training-only tasks of their own
    exclusions = evaluation_exclusions()
    assert not {format_prompt(e.instruction, e.input) for e in rephrased} & exclusions.prompts
