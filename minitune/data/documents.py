"""Plain-text documents: the files `minitune pretrain` reads (users' text and the shipped corpora).

A file is UTF-8 text, or gzip of it (a name ending in .gz); documents are separated by a blank
line, and newlines inside a document are kept. `read_documents` gives the list of documents that
pretraining cuts into span-corruption examples (`span_corruption.py`); the shipped corpora are
written in this format by `suite/world.py` and `suite/corpus.py`.
"""

from __future__ import annotations

import gzip
from pathlib import Path


def read_text(path: str | Path) -> str:
    """A UTF-8 text file, or a gzip-compressed one (a name ending in .gz)."""
    path = Path(path)
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")


def read_documents(path: str | Path) -> list[str]:
    """Documents of a text file (.txt, or .txt.gz): blocks separated by blank lines."""
    text = read_text(path)
    blocks = [block.strip("\n") for block in text.replace("\r\n", "\n").split("\n\n")]
    return [block for block in blocks if block.strip()]
