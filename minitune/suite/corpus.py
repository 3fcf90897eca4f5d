"""The pretraining corpus: plain text for span corruption, generated from the suite's grammar.

Documents are news paragraphs, short stories, short biographies, conversations, runs of English
and of French sentences from the translation grammar, and small Python functions. They come from
the same generators as the instruction suite but from a separate random stream, and they carry
no instructions: pretraining teaches the language of the domain, instruction tuning the tasks.

The file format is the one `minitune pretrain` reads from users too (`minitune.data.documents`):
UTF-8 text, documents separated by a blank line (newlines inside a document are kept). The base
model's corpus, written like web text from a general word list, is `world.py`'s
(`data/world.txt.gz`); this one is narrower, the suite's own domain.
"""

from __future__ import annotations

import random
from pathlib import Path

from minitune.suite import families_code as code_families
from minitune.suite import families_language as lang


def _document(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return lang.make_news(rng)["input"]
    if kind == 1:
        return lang.make_story(rng)["input"]
    if kind == 2:
        return lang.biography(rng)["context"]
    if kind == 3:
        sample = rng.choice([lang.make_dialogue_recall, lang.make_dialogue_booking])(rng)
        return f"{sample['input']}\nAssistant: {sample['output']}"
    if kind in (4, 5):
        pairs = [lang.sentence_pair(rng) for _ in range(rng.randint(3, 6))]
        return " ".join(p[kind - 4] for p in pairs)  # all English, or all French
    make = rng.choice([code_families.make_code_numbers, code_families.make_code_strings])
    sample = make(rng)
    return f"# {sample['input'].splitlines()[1].removeprefix('What it does: ')}\n{sample['output']}"


def generate_corpus(seed: int = 0, n_documents: int = 4000) -> list[str]:
    """`n_documents` documents, deterministic from the seed; a document that holds an
    evaluation string of the suite of `seed` (`world.LeakFilter`: an evaluation input or prompt,
    or an answer of several words) is left out and another drawn."""
    from minitune.suite.world import LeakFilter

    rng = random.Random(f"minitune-corpus-{seed}")
    leaks = LeakFilter(seed)
    documents: list[str] = []
    while len(documents) < n_documents:
        document = _document(rng)
        if not leaks.leaks(document):
            documents.append(document)
    return documents


def write_corpus(path: str | Path, seed: int = 0, n_documents: int = 4000) -> int:
    """Write the corpus to `path`; returns the number of documents."""
    documents = generate_corpus(seed, n_documents)
    Path(path).write_text("\n\n".join(documents) + "\n", encoding="utf-8", newline="\n")
    return len(documents)
