"""Training-only task families that share their inputs: the instruction alone names the task.

Super-NaturalInstructions (Wang et al. 2022) found that a model follows new instructions better
the more tasks it was trained on. The suite has 27 seen families, and most of them have an input
that gives the task away: "12 + 30" is always an addition, a French sentence always wants
English. Here are 12 more, in three groups; within a group every family draws the *same* input
from the *same* generator, so only the instruction says what to do with it:

- number lists "3, 7, 1" (the input of `sort_numbers` and `list_max`): `list_min`,
  `list_first`, `list_last`, `list_length`, `list_sum`, `list_reverse`;
- plain English sentences (those of `translate_en_fr`, and single sentences of
  `summarize_story`'s stories): `nth_word`, `word_after`, `repeat_sentence`, `count_words`,
  `last_word`;
- `key: value` lines (the input of `to_json`): `value_of_key`.

Nine more (`CROSS`) ask one of the suite's own seen tasks, with its five trained phrasings, on
inputs of its kind that another task's generator draws: `sort_numbers` and `list_max` on
`dedupe`'s lists with repeats, `uppercase` on English sentences, `reverse_word` on `uppercase`'s
word lists, ... (answered by `reading.OPERATIONS`). That is what the `contrast` split asks: the
input no longer tells which task it is.

They are used only in fresh training data (`tasks.draw_training_examples`); they have no
evaluation split, so all five phrasings are trained on, and a drawn example is dropped when its
input is an evaluation input of any family of the suite (or its prompt an evaluation prompt, or
its answer a held-out task's answer). None of them takes every item of a kind out of a text
(emails, dates, numbers): that is the held-out `extraction` cluster's job, which must stay new.

Each family has the shape of `families_language.py`: a dict of name, cluster, phrasings and
`make(rng, wide=False)`. `wide` reaches the names and places of the story sentences and of the
`key: value` records; number lists and grammar sentences come from generators that have no
wide pools (`sort_numbers` and translation ignore `wide` too).

Words of a sentence are what spaces separate, without the punctuation at their ends:
"One morning, Nora walked to the park." has 7 words; the second is "morning", the last "park".
"""

from __future__ import annotations

import random
import re

from minitune.suite.families_language import make_story, sentence_pair
from minitune.suite.families_symbolic import FAMILIES as SYMBOLIC
from minitune.suite.families_symbolic import (
    make_count_letter,
    make_dedupe,
    make_list_max,
    make_reverse_word,
    make_to_json,
    make_uppercase,
)
from minitune.suite.reading import OPERATIONS, letter_to_count

# ---------------------------------------------------------------------------------------------
# the shared inputs: one generator per group; every family of a group draws its input first
# ---------------------------------------------------------------------------------------------


def number_list(rng: random.Random, wide: bool = False) -> list[int]:
    """3 to 8 numbers from 0 to 99, drawn by `list_max`'s own generator (so the same draws as
    `sort_numbers` and `list_max`): the input "3, 7, 1" -> [3, 7, 1]."""
    return [int(x) for x in make_list_max(rng, wide)["input"].split(", ")]


def show(xs: list[int]) -> str:
    """A number list as the suite writes it: [3, 7, 1] -> "3, 7, 1"."""
    return ", ".join(map(str, xs))


def plain_sentence(rng: random.Random, wide: bool = False) -> str:
    """An English sentence: two times in three the English side of a translation pair ("The
    poor goats watch a star."), else one sentence of a short story ("One afternoon, Nora
    walked to the park."), whose names come from the wide pools when `wide`."""
    if rng.random() < 2 / 3:
        return sentence_pair(rng)[0]
    story = make_story(rng, wide)["input"]
    return rng.choice(re.split(r"(?<=\.) ", story))


def words_of(sentence: str) -> list[str]:
    """The words of a sentence, without the punctuation at their ends:
    "One morning, Nora walked." -> ["One", "morning", "Nora", "walked"]."""
    return [w.strip(".,!?") for w in sentence.split()]


def record_lines(rng: random.Random, wide: bool = False) -> tuple[str, dict[str, str]]:
    """`key: value` lines drawn by `to_json`'s own generator, and the record they state:
    "name: Anna\\ncity: Paris" -> {"name": "Anna", "city": "Paris"}."""
    lines = make_to_json(rng, wide)["input"]
    return lines, dict(line.split(": ", 1) for line in lines.split("\n"))


# ---------------------------------------------------------------------------------------------
# number lists
# ---------------------------------------------------------------------------------------------


def make_list_min(rng, wide=False):
    xs = number_list(rng, wide)
    return {"input": show(xs), "output": str(min(xs))}


def make_list_first(rng, wide=False):
    xs = number_list(rng, wide)
    return {"input": show(xs), "output": str(xs[0])}


def make_list_last(rng, wide=False):
    xs = number_list(rng, wide)
    return {"input": show(xs), "output": str(xs[-1])}


def make_list_length(rng, wide=False):
    xs = number_list(rng, wide)
    return {"input": show(xs), "output": str(len(xs))}


def make_list_sum(rng, wide=False):
    xs = number_list(rng, wide)
    return {"input": show(xs), "output": str(sum(xs))}


def make_list_reverse(rng, wide=False):
    xs = number_list(rng, wide)
    return {"input": show(xs), "output": show(xs[::-1])}


# ---------------------------------------------------------------------------------------------
# sentences
# ---------------------------------------------------------------------------------------------

ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth"
).split()


def make_nth_word(rng, wide=False):
    """The word at a position the instruction names, as a number ({n}) or a word ({ordinal})."""
    sentence = plain_sentence(rng, wide)
    words = words_of(sentence)
    n = rng.randint(1, len(words))
    return {"input": sentence, "output": words[n - 1], "n": n, "ordinal": ORDINALS[n - 1]}


def make_word_after(rng, wide=False):
    """The word right after a given one ({word}), which appears once in the sentence (whatever
    its case) and is not its last word. A sentence without such a word is drawn again."""
    while True:
        sentence = plain_sentence(rng, wide)
        words = words_of(sentence)
        lower = [w.lower() for w in words]
        choices = [i for i in range(len(words) - 1) if lower.count(lower[i]) == 1]
        if choices:
            i = rng.choice(choices)
            return {"input": sentence, "output": words[i + 1], "word": words[i]}


def make_repeat_sentence(rng, wide=False):
    sentence = plain_sentence(rng, wide)
    return {"input": sentence, "output": sentence}


def make_count_words(rng, wide=False):
    sentence = plain_sentence(rng, wide)
    return {"input": sentence, "output": str(len(words_of(sentence)))}


def make_last_word(rng, wide=False):
    sentence = plain_sentence(rng, wide)
    return {"input": sentence, "output": words_of(sentence)[-1]}


# ---------------------------------------------------------------------------------------------
# key: value records
# ---------------------------------------------------------------------------------------------


def make_value_of_key(rng, wide=False):
    """One field of the record ({key}: name, city or age), as written in the lines."""
    lines, record = record_lines(rng, wide)
    key = rng.choice(list(record))
    return {"input": lines, "output": record[key], "key": key}


# ---------------------------------------------------------------------------------------------
# the suite's own operations on other tasks' inputs (`reading.OPERATIONS`)
# ---------------------------------------------------------------------------------------------


def dedupe_list(rng, wide=False):
    """A number list with repeats, drawn by `dedupe`'s own generator: "4, 9, 4, 0"."""
    return make_dedupe(rng, wide)["input"]


def word_list(rng, wide=False):
    """2 to 5 words, drawn by `uppercase`'s own generator (as `acronym`'s): "cow sheep noisy"."""
    return make_uppercase(rng, wide)["input"]


def short_text(rng, wide=False):
    """One or two words, drawn by `reverse_word`'s or `count_letter`'s generator: "soup Paris"."""
    return rng.choice([make_reverse_word, make_count_letter])(rng, wide)["input"]


def _on_other_inputs(task: str, draw_input):
    """`make` for the suite's task `task` asked on inputs drawn by `draw_input`: the answer is
    the task's operation; `count_letter` also draws its letter (one the text has, in lower case
    only)."""

    def make(rng, wide=False):
        while True:
            text = draw_input(rng, wide)
            slots = {}
            if task == "count_letter":
                slots["letter"] = letter_to_count(rng, text)
                if slots["letter"] is None:
                    continue
            return {"input": text, "output": OPERATIONS[task](text, slots), **slots}

    return make


# the generator of each cluster's shared input (tests check that its families draw it first)
SHARED_INPUTS = {
    "list_reading": lambda rng, wide=False: show(number_list(rng, wide)),
    "sentence_reading": plain_sentence,
    "record_reading": lambda rng, wide=False: record_lines(rng, wide)[0],
    "repeat_lists": dedupe_list,
    "word_lists": word_list,
    "short_texts": short_text,
}

# (the suite's task, the cluster whose inputs it is asked on): never an operation on the input
# kind of a held-out composition that reuses it (acronym on sentences, upper case on French,
# duplicates dropped from words: `reading.COMPOSITIONS`, a test checks)
CROSS = (
    ("sort_numbers", "repeat_lists"),
    ("list_max", "repeat_lists"),
    ("dedupe", "list_reading"),
    ("uppercase", "short_texts"),
    ("uppercase", "sentence_reading"),
    ("acronym", "short_texts"),
    ("reverse_word", "word_lists"),
    ("count_letter", "word_lists"),
    ("count_letter", "sentence_reading"),
)

FAMILIES = [
    dict(
        name="list_min",
        cluster="list_reading",
        make=make_list_min,
        phrasings=(
            "What is the smallest number in the list?",
            "Find the minimum of these numbers.",
            "Which number is the lowest?",
            "Smallest of: {input}",
            "Give the least value in the list.",
        ),
    ),
    dict(
        name="list_first",
        cluster="list_reading",
        make=make_list_first,
        phrasings=(
            "What is the first number in the list?",
            "Which number comes first?",
            "Give the number at the start of the list.",
            "First number of: {input}",
            "Read the list and say its first number.",
        ),
    ),
    dict(
        name="list_last",
        cluster="list_reading",
        make=make_list_last,
        phrasings=(
            "What is the last number in the list?",
            "Which number comes at the end of the list?",
            "Give the final number of the list.",
            "Last number of: {input}",
            "Read the list and say its last number.",
        ),
    ),
    dict(
        name="list_length",
        cluster="list_reading",
        make=make_list_length,
        phrasings=(
            "How many numbers are in the list?",
            "Count the numbers in the list.",
            "Give the length of the list.",
            "How many numbers are there in {input}?",
            "Say how many values the list holds.",
        ),
    ),
    dict(
        name="list_sum",
        cluster="list_reading",
        make=make_list_sum,
        phrasings=(
            "What is the sum of the numbers in the list?",
            "Add up all the numbers in the list.",
            "Give the total of these numbers.",
            "Sum of: {input}",
            "Compute the sum of the list.",
        ),
    ),
    dict(
        name="list_reverse",
        cluster="list_reading",
        make=make_list_reverse,
        phrasings=(
            "Write the list in reverse order.",
            "Reverse the order of the numbers.",
            "List the numbers from last to first.",
            "Reverse the list: {input}",
            "Give the numbers backwards, the last one first.",
        ),
    ),
    dict(
        name="nth_word",
        cluster="sentence_reading",
        make=make_nth_word,
        phrasings=(
            "What is word number {n} of the sentence?",
            "Give the {ordinal} word of the sentence.",
            "Which word is in position {n}?",
            "Sentence: {input}\nWord number {n}:",
            "Counting from the start, what is the {ordinal} word?",
        ),
    ),
    dict(
        name="word_after",
        cluster="sentence_reading",
        make=make_word_after,
        phrasings=(
            'Which word comes right after "{word}" in the sentence?',
            'What is the word that follows "{word}"?',
            'Give the next word after "{word}".',
            'Sentence: {input}\nThe word after "{word}":',
            'Find "{word}" in the sentence and say the word that comes after it.',
        ),
    ),
    dict(
        name="repeat_sentence",
        cluster="sentence_reading",
        make=make_repeat_sentence,
        phrasings=(
            "Repeat the sentence exactly.",
            "Copy this sentence word for word.",
            "Write the sentence again, unchanged.",
            "Repeat after me: {input}",
            "Say the same sentence back.",
        ),
    ),
    dict(
        name="count_words",
        cluster="sentence_reading",
        make=make_count_words,
        phrasings=(
            "How many words are in the sentence?",
            "Count the words in this sentence.",
            "Give the number of words in the text.",
            'How many words are there in "{input}"?',
            "Say how many words the sentence has.",
        ),
    ),
    dict(
        name="last_word",
        cluster="sentence_reading",
        make=make_last_word,
        phrasings=(
            "What is the last word of the sentence?",
            "Which word ends the sentence?",
            "Give the final word of the sentence, without the full stop.",
            "Last word of: {input}",
            "Read the sentence and say its last word.",
        ),
    ),
    dict(
        name="value_of_key",
        cluster="record_reading",
        make=make_value_of_key,
        phrasings=(
            "What is the {key}?",
            'Give the value of the field "{key}".',
            "Read the record and say its {key}.",
            "{input}\nWhat is the {key}?",
            "Which {key} does the record give?",
        ),
    ),
]


def _cross_family(task: str, cluster: str) -> dict:
    """The suite's `task`, its trained phrasings (never its held-out one), on `cluster`'s inputs."""
    (spec,) = [f for f in SYMBOLIC if f["name"] == task]
    return dict(
        name=f"{task}_on_{cluster}",
        cluster=cluster,
        make=_on_other_inputs(task, SHARED_INPUTS[cluster]),
        phrasings=spec["phrasings"][:-1],
    )


FAMILIES += [_cross_family(task, cluster) for task, cluster in CROSS]
