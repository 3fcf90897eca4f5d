"""The world corpus (minitune/suite/world.py, data/world.txt.gz): coverage, no leak, determinism;
and no leak in the suite's own corpus (data/pretrain.txt) either.

These read the shipped evaluation files directly (not the generator's own filter), so a leak
that the filter missed, or a corpus regenerated without it, fails here."""

import json
import re
from pathlib import Path

import pytest

from minitune.data.documents import read_documents, read_text
from minitune.data.templates import format_prompt
from minitune.suite.world import (
    KINDS,
    LeakFilter,
    generate_world,
    lexicon_words,
    word_classes,
    write_world,
)

ROOT = Path(__file__).resolve().parent.parent
WORLD = ROOT / "data" / "world.txt.gz"
EVAL_FILES = [
    "valid",
    "test",
    "heldout_phrasings",
    "heldout_tasks",
    "contrast",
    "heldout_compositions",
]
WORD = re.compile(r"[^\W\d_]+")


@pytest.fixture(scope="module")
def corpus() -> str:
    return read_text(WORLD)


def _records(name):
    with open(ROOT / "data" / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_every_word_of_every_shipped_prompt_occurs(corpus):
    words = {w.lower() for w in WORD.findall(corpus)}
    prompt_words = set()
    for name in ["train", *EVAL_FILES]:
        for r in _records(name):
            prompt_words |= {
                w.lower() for w in WORD.findall(format_prompt(r["instruction"], r["input"]))
            }
    missing = sorted(prompt_words - words)
    assert not missing, f"{len(missing)} prompt words never occur in the corpus: {missing[:20]}"
    assert len(words) >= 5000, len(words)
    # the held-out tasks' words, which the tuning data never shows, are read in context
    for word in ("extract", "email", "addresses", "mentioned", "could", "tell", "when", "just"):
        assert len(re.findall(rf"\b{word}\b", corpus, re.IGNORECASE)) >= 5, word
    assert corpus.count("@") > 1000


def _ngrams(words, n):
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@pytest.mark.parametrize("name", ["world.txt.gz", "pretrain.txt"])
def test_no_evaluation_input_prompt_or_answer_occurs(name):
    """Inputs and prompts of 30+ characters and answers of 3+ words of every evaluation file,
    in both pretraining corpora."""
    corpus = read_text(ROOT / "data" / name)
    strings = set()
    for name in EVAL_FILES:
        for r in _records(name):
            for text in (r["input"], format_prompt(r["instruction"], r["input"])):
                if len(text) >= 30:
                    strings.add(text.strip())
            if len(r["output"].split()) >= 3:
                strings.add(r["output"].strip())
    assert len(strings) > 3000
    # a string can only occur if each of its runs of 3 words does: check those first
    corpus_grams = _ngrams(corpus.split(), 3)
    found = [s for s in strings if _ngrams(s.split(), 3) <= corpus_grams and s in corpus]
    assert not found, f"{len(found)} evaluation strings in the corpus, e.g. {found[:3]}"


def test_leak_filter_finds_an_evaluation_answer_inside_a_document():
    record = next(r for r in _records("test") if r["task"] == "translate_en_fr")
    leaks = LeakFilter()
    document = f"Un texte. {record['output']} Et la suite."
    assert record["output"] in leaks.leaks(document)
    assert leaks.leaks("Le chat dort sous la table verte depuis ce matin.") == []


def test_corpus_is_deterministic_and_depends_on_the_seed(tmp_path):
    a, b, c = generate_world(3, 300), generate_world(3, 300), generate_world(4, 300)
    assert a == b and a != c
    assert len(a) >= 300
    write_world(tmp_path / "w.txt.gz", seed=3, n_documents=300)
    write_world(tmp_path / "again.txt.gz", seed=3, n_documents=300)
    assert (tmp_path / "w.txt.gz").read_bytes() == (tmp_path / "again.txt.gz").read_bytes()
    assert read_documents(tmp_path / "w.txt.gz") == a  # no blank line inside a document


def test_shipped_corpus_is_the_generator_output(corpus):
    """`minitune data corpus --out data/world.txt.gz` (datasheet) rebuilds it: compare the start
    (the documents are drawn one after the other, so a prefix is the same) and the size."""
    shipped = read_documents(WORLD)
    assert len(shipped) >= 60000
    assert generate_world(0, 2000)[:1500] == shipped[:1500]


@pytest.mark.slow
def test_shipped_corpus_is_rebuilt_byte_for_byte(tmp_path):
    write_world(tmp_path / "world.txt.gz", seed=0)
    assert (tmp_path / "world.txt.gz").read_bytes() == WORLD.read_bytes()


def test_every_kind_of_document_and_the_word_list():
    classes = word_classes()
    assert len(classes["noun"].lemmas) > 5000 and len(classes["verb"].lemmas) > 1000
    take = classes["verb"].lemmas.index("take")
    assert classes["verb"].forms[take] == ["takes", "took", "taken", "taking"]
    import random

    rng = random.Random(0)
    for kind in KINDS:
        text = kind(rng)
        assert text.strip() and "\n\n" not in text, kind.__name__


def test_lexicon_words_hold_pools_and_every_phrasing():
    words = lexicon_words()
    assert {"hassan", "tokyo", "kenya", "extract", "email", "novatek", "backwards"} <= words
