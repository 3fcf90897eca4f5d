"""Two evaluation splits that ask whether the model reads the instruction.

Most tasks of the suite have an input of their own shape: "12 + 30" is always an addition, a
French sentence always wants English. A model can score well by recognising the task from its
input and never reading the instruction. These splits take that away:

- `contrast`: test inputs of one seen task, asked with **another** seen task's trained phrasing,
  each with that other task's answer ("Sort the numbers from smallest to largest." on a `list_max`
  input wants the sorted list, not the maximum). Only items whose answer differs from the
  input's own task's answer are kept. Three kinds of input: number lists, word lists and English
  sentences (`CONTRAST`). An example's `task` is the task the instruction asks for, and
  `input_task` the task its input came from. *Retention* (`evaluate.retention`) compares each
  asked task's exact match here with its exact match on `test`.
- `heldout_compositions`: nine tasks no family of the suite is, built from skills that are
  (`COMPOSITIONS`), three of each kind: a known operation in another direction or form (sort
  largest first, a date in words back to ISO); two known operations in a row (drop duplicates and
  sort); a known operation on another known input kind (upper case on a French sentence). Every
  word of their instructions occurs in the trained phrasings (`check_words` fails loudly on a new
  one), and no trained task's answer is theirs on more than a fifth of their inputs (a test checks
  it with `OPERATIONS`). None is ever trained on, and the `extraction` cluster stays held out.

Both are drawn from the suite's own generators (evaluation pools), deterministically from the
seed, and written beside the five splits (`tasks.write_suite`); their inputs and prompts join the
exclusions of every fresh training draw (`tasks.evaluation_exclusions`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from minitune.suite import families_symbolic as symbolic
from minitune.suite.families_language import sentence_pair
from minitune.suite.lexicon import MONTHS, pools

READING_SPLITS = ("contrast", "heldout_compositions")
CONTRAST_PER_PAIR = 20  # items per (input task, asked task) pair
COMPOSITION_COUNT = 40  # items per composition task


# ---------------------------------------------------------------------------------------------
# operations: what a trained task answers on any input of its kind (None: not its kind)
# ---------------------------------------------------------------------------------------------


def numbers_of(text: str) -> list[int] | None:
    """ "3, 7, 1" -> [3, 7, 1]; None when the text is not such a list."""
    if not re.fullmatch(r"-?\d+(, -?\d+)*", text):
        return None
    return [int(x) for x in text.split(", ")]


def show(xs: list[int]) -> str:
    return ", ".join(map(str, xs))


def words_of(text: str) -> list[str]:
    """The words of a text, without the punctuation at their ends."""
    return [w.strip(".,!?") for w in text.split()]


def _on_numbers(fn: Callable[[list[int]], str]) -> Callable[[str, dict], str | None]:
    def operation(text: str, slots: dict) -> str | None:
        xs = numbers_of(text)
        return None if not xs else fn(xs)

    return operation


def _on_text(fn: Callable[[str], str]) -> Callable[[str, dict], str | None]:
    def operation(text: str, slots: dict) -> str | None:
        return fn(text) if re.search(r"[A-Za-z]", text) else None

    return operation


def _count_letter(text: str, slots: dict) -> str | None:
    return str(text.count(slots["letter"])) if "letter" in slots else None


def _iso_to_words(text: str) -> str | None:
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)", text)
    if not m or not 1 <= int(m[2]) <= 12:
        return None
    return f"{int(m[3])} {MONTHS[int(m[2]) - 1]} {m[1]}"


def _digits_to_words(text: str) -> str | None:
    return symbolic.number_words(int(text)) if re.fullmatch(r"\d{1,4}", text) else None


# The trained tasks' operations, by task name: the suite's seen tasks that take number lists,
# word lists or sentences, the training-only tasks of `families_shared` over them, and the format
# tasks. Contrast answers come from here (tests check each against the task's own examples).
OPERATIONS: dict[str, Callable[[str, dict], str | None]] = {
    "sort_numbers": _on_numbers(lambda xs: show(sorted(xs))),
    "list_max": _on_numbers(lambda xs: str(max(xs))),
    "dedupe": _on_numbers(lambda xs: show(list(dict.fromkeys(xs)))),
    "uppercase": _on_text(str.upper),
    "reverse_word": _on_text(lambda t: t[::-1]),
    "acronym": _on_text(lambda t: "".join(w[0] for w in words_of(t) if w).upper()),
    "count_letter": _count_letter,
    "date_format": lambda text, slots: _iso_to_words(text),
    "number_words": lambda text, slots: _digits_to_words(text),
    # the training-only tasks (families_shared), when they are trained
    "list_min": _on_numbers(lambda xs: str(min(xs))),
    "list_first": _on_numbers(lambda xs: str(xs[0])),
    "list_last": _on_numbers(lambda xs: str(xs[-1])),
    "list_length": _on_numbers(lambda xs: str(len(xs))),
    "list_sum": _on_numbers(lambda xs: str(sum(xs))),
    "list_reverse": _on_numbers(lambda xs: show(xs[::-1])),
    "repeat_sentence": lambda text, slots: text,
    "count_words": _on_text(lambda t: str(len(words_of(t)))),
    "last_word": _on_text(lambda t: words_of(t)[-1]),
}


# ---------------------------------------------------------------------------------------------
# contrast: one task's inputs under other tasks' trained phrasings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContrastGroup:
    """Inputs of `input_tasks` (one kind), each asked under every `asked_task` but its own."""

    kind: str
    input_tasks: tuple[str, ...]
    asked_tasks: tuple[str, ...]


CONTRAST = (
    ContrastGroup(
        "number lists",
        ("sort_numbers", "list_max", "dedupe"),
        ("sort_numbers", "list_max", "dedupe"),
    ),
    ContrastGroup(
        "word lists",
        ("uppercase", "acronym", "reverse_word", "count_letter"),
        ("uppercase", "acronym", "reverse_word", "count_letter"),
    ),
    ContrastGroup("English sentences", ("translate_en_fr",), ("uppercase", "count_letter")),
)


def letter_to_count(rng: random.Random, text: str) -> str | None:
    """A lower-case letter of the text whose capital is not in it (so case cannot change the
    count); None when there is none."""
    letters = sorted({c for c in text if c.islower() and c.upper() not in text})
    return rng.choice(letters) if letters else None


# ---------------------------------------------------------------------------------------------
# held-out compositions: new tasks from known skills, in known words
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Composition:
    """A held-out task made of known skills. `kind`: "direction" (a known operation in another
    direction or form), "sequence" (two known operations in a row) or "input" (a known operation,
    `known`, on another known input kind). Every phrasing is evaluated; none is trained."""

    name: str
    kind: str
    phrasings: tuple[str, ...]
    make: Callable[[random.Random], dict]  # -> {"input", "output"}
    known: str = ""  # for kind "input": the trained task whose operation this is


def _sort_descending(rng):
    xs = numbers_of(symbolic.make_sort_numbers(rng)["input"])
    return {"input": show(xs), "output": show(sorted(xs, reverse=True))}


def _date_from_words(rng):
    sample = symbolic.make_date_format(rng)
    return {"input": sample["output"], "output": sample["input"]}


def _number_from_words(rng):
    sample = symbolic.make_number_words(rng)
    return {"input": sample["output"], "output": sample["input"]}


def _dedupe_sort(rng):
    """A `dedupe` input whose first occurrences are not already in order (else dropping the
    duplicates alone would answer it), drawn again until it is so."""
    while True:
        xs = numbers_of(symbolic.make_dedupe(rng)["input"])
        if list(dict.fromkeys(xs)) != sorted(set(xs)):
            return {"input": show(xs), "output": show(sorted(set(xs)))}


def _reverse_uppercase(rng):
    text = symbolic.make_uppercase(rng)["input"]
    return {"input": text, "output": text[::-1].upper()}


def _max_in_words(rng):
    xs = numbers_of(symbolic.make_list_max(rng)["input"])
    return {"input": show(xs), "output": symbolic.number_words(max(xs))}


def _dedupe_words(rng):
    """3 to 5 different words, then one or two of them again at later places."""
    words = rng.sample(pools(False).words, rng.randint(3, 5))
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(len(words))
        words.insert(rng.randint(i + 1, len(words)), words[i])
    return {"input": " ".join(words), "output": " ".join(dict.fromkeys(words))}


def _uppercase_french(rng):
    french = sentence_pair(rng)[1]
    return {"input": french, "output": french.upper()}


def _acronym_sentence(rng):
    english = sentence_pair(rng)[0]
    return {"input": english, "output": "".join(w[0] for w in words_of(english)).upper()}


COMPOSITIONS = (
    Composition(
        "sort_descending",
        "direction",
        (
            "Sort the numbers from largest to smallest.",
            "Put these numbers in order, largest first.",
            "Arrange the list from the biggest number to the smallest.",
        ),
        _sort_descending,
    ),
    Composition(
        "date_from_words",
        "direction",
        (
            "Write this date in the form YYYY-MM-DD.",
            "Convert the date in words to an ISO date.",
            "Rewrite the date with the month as a number, in ISO format.",
        ),
        _date_from_words,
    ),
    Composition(
        "number_from_words",
        "direction",
        (
            "Turn the English words into a number.",
            "Convert these words to the number they name.",
            "What number do these English words give?",
        ),
        _number_from_words,
    ),
    Composition(
        "dedupe_sort",
        "sequence",
        (
            "Remove the duplicates from the list and sort the numbers from smallest to largest.",
            "Sort the numbers from smallest to largest, keeping each number only once.",
            "Drop repeated numbers and put the list in ascending order.",
        ),
        _dedupe_sort,
    ),
    Composition(
        "reverse_uppercase",
        "sequence",
        (
            "Reverse the letters of the text and write it in capital letters.",
            "Write the text backwards in upper case.",
            "Convert the text to upper case and spell it in reverse order.",
        ),
        _reverse_uppercase,
    ),
    Composition(
        "max_in_words",
        "sequence",
        (
            "Write the largest number in the list in English words.",
            "Find the maximum of these numbers and spell it out.",
            "Give the biggest number of the list in words.",
        ),
        _max_in_words,
    ),
    Composition(
        "dedupe_words",
        "input",
        (
            "Remove the duplicates from the words, keeping the first occurrence of each word.",
            "List each word only once, in the order they first appear.",
            "Drop repeated words from the text.",
        ),
        _dedupe_words,
        known="dedupe",
    ),
    Composition(
        "uppercase_french",
        "input",
        (
            "Convert this French sentence to upper case.",
            "Write the French text in capital letters.",
            "Make every letter of this French sentence uppercase.",
        ),
        _uppercase_french,
        known="uppercase",
    ),
    Composition(
        "acronym_sentence",
        "input",
        (
            "Write the initials of the words of this English sentence in capitals.",
            "Take the first letter of every word in the sentence and join them in upper case.",
            "Make an acronym from the first letter of each word of the sentence.",
        ),
        _acronym_sentence,
        known="acronym",
    ),
)


def words_in(text: str) -> set[str]:
    """The lower-cased runs of letters of a phrasing, its {slots} left out."""
    return set(re.findall(r"[a-z]+", re.sub(r"\{\w+\}", "", text).lower()))


def check_words(trained_phrasings: list[str]) -> None:
    """Raise ValueError naming each composition phrasing's word that no trained phrasing has."""
    known = set().union(*map(words_in, trained_phrasings))
    new = [
        f"{c.name}: {sorted(words_in(p) - known)} in {p!r}"
        for c in COMPOSITIONS
        for p in c.phrasings
        if words_in(p) - known
    ]
    if new:
        raise ValueError(
            "held-out compositions must use only words of the trained phrasings; new:\n  "
            + "\n  ".join(new)
        )
