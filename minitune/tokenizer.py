"""Text <-> token ids: a thin wrapper around a SentencePiece model, and how to train one.

    tok = Tokenizer("tokenizer/minitune.model")
    ids = tok.encode("Translate to French: the cat")      # list[int], no EOS
    text = tok.decode(ids)                               # the same string back
    batch = tok.encode_batch(["a", "longer text"], max_length=16)   # padded tensors + EOS

minitune's tokenizers keep text exactly: no Unicode normalisation, no whitespace folding, newlines
and tabs kept, and any character missing from the vocabulary spelled as its UTF-8 bytes
("byte fallback"), so `decode(encode(s)) == s` for every string — unlike the original T5
vocabulary, which loses newlines, `{`, repeated spaces and most non-Latin scripts.

Fixed ids: pad 0, eos 1, unk 2; then the 100 sentinels `<extra_id_0>` … `<extra_id_99>` (ids
3 … 102) that span corruption uses for "a span was removed here".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import sentencepiece as spm
import torch

N_SENTINELS = 100


def sentinel_piece(i: int) -> str:
    """The text of sentinel i: `<extra_id_i>`."""
    return f"<extra_id_{i}>"


class EncodedBatch(NamedTuple):
    """A padded batch: ids and mask are (B, L) int64; `truncated` counts rows that were cut."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    truncated: int


class Tokenizer:
    """A SentencePiece model with minitune's conventions (see the module docstring)."""

    def __init__(self, model_file: str | Path):
        path = Path(model_file)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {path}")
        self.path = path
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.pad_id = self.sp.pad_id()
        self.eos_id = self.sp.eos_id()
        self.unk_id = self.sp.unk_id()
        if self.pad_id < 0 or self.eos_id < 0:
            raise ValueError(f"{path}: the tokenizer has no pad or no eos token")
        self.sentinel_ids = [self.sp.piece_to_id(sentinel_piece(i)) for i in range(N_SENTINELS)]
        self.has_sentinels = self.sentinel_ids[0] != self.unk_id
        if not self.has_sentinels:
            # Google's T5 spiece.model has no sentinel pieces: T5 puts <extra_id_i> just above
            # the SentencePiece vocabulary, counting down (32000 pieces: <extra_id_0> = 32099).
            top = self.sp.get_piece_size() + N_SENTINELS - 1
            self.sentinel_ids = [top - i for i in range(N_SENTINELS)]

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def sentinel_id(self, i: int) -> int:
        """Id of `<extra_id_i>` (ours: 3 + i; Google's T5 vocabulary: 32099 - i)."""
        return self.sentinel_ids[i]

    def fingerprint(self) -> str:
        """A short hash of the model file, to tell tokenizers apart (stored in checkpoints)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    def piece(self, i: int) -> str:
        """The piece of id i, as SentencePiece writes it ("▁" marks a space), for labels."""
        if i in self.sentinel_ids:
            return sentinel_piece(self.sentinel_ids.index(i))
        return self.sp.id_to_piece(i) if 0 <= i < self.vocab_size else f"<id {i}>"

    def encode(self, text: str, add_eos: bool = False) -> list[int]:
        """Token ids of `text` (optionally followed by EOS)."""
        ids = self.sp.encode(text)
        return [*ids, self.eos_id] if add_eos else ids

    def decode(self, ids: list[int] | torch.Tensor, skip_special: bool = True) -> str:
        """Text of `ids`. Stops at the first EOS; pad is dropped (with skip_special)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if skip_special:
            if self.eos_id in ids:
                ids = ids[: ids.index(self.eos_id)]
            ids = [i for i in ids if i != self.pad_id]
        return self.sp.decode(ids)

    def encode_batch(
        self, texts: list[str], max_length: int | None = None, add_eos: bool = True
    ) -> EncodedBatch:
        """Encode, truncate to `max_length` (keeping the EOS), and right-pad to the longest row."""
        rows, truncated = [], 0
        for text in texts:
            ids = self.encode(text)
            if max_length is not None and len(ids) + add_eos > max_length:
                ids = ids[: max_length - add_eos]
                truncated += 1
            rows.append([*ids, self.eos_id] if add_eos else ids)
        width = max((len(r) for r in rows), default=0)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):
            input_ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[b, : len(row)] = 1
        return EncodedBatch(input_ids, attention_mask, truncated)


def train_tokenizer(
    input_files: list[str | Path],
    model_prefix: str | Path,
    vocab_size: int = 4000,
    model_type: str = "unigram",
    seed_sentencepiece_size: int = 200_000,
) -> Path:
    """Train a SentencePiece model with minitune's conventions; returns the `.model` path.

    input_files: text files, one sentence or paragraph per line. model_type: "unigram"
    (default, as T5) or "bpe". The result has pad 0, eos 1, unk 2, sentinels 3..102, newline
    and tab as single tokens, byte fallback, digits split one per token, and no normalisation.
    Training is single-threaded, so the same files and options give the same model.
    """
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
    for f in input_files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"tokenizer training file not found: {f}")
    # pad, eos, unk, the sentinels, newline, tab and the 256 byte pieces come before any word
    reserved = 3 + N_SENTINELS + 2 + 256
    if vocab_size <= reserved:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: {reserved} ids are reserved (specials, "
            "sentinels, newline, tab, 256 bytes) before the corpus's own characters and pieces"
        )
    Path(model_prefix).parent.mkdir(parents=True, exist_ok=True)
    try:
        _train(input_files, model_prefix, vocab_size, model_type, seed_sentencepiece_size)
    except RuntimeError as err:  # SentencePiece reports option problems as RuntimeError
        raise ValueError(f"SentencePiece could not train: {err}") from None
    return Path(f"{model_prefix}.model")


def _train(input_files, model_prefix, vocab_size, model_type, seed_sentencepiece_size) -> None:
    spm.SentencePieceTrainer.train(
        input=",".join(str(f) for f in input_files),
        model_prefix=str(model_prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,  # T5 has no beginning-of-sequence token
        user_defined_symbols=[sentinel_piece(i) for i in range(N_SENTINELS)] + ["\n", "\t"],
        byte_fallback=True,  # unknown characters become their UTF-8 bytes, never <unk>
        normalization_rule_name="identity",  # keep the text as it is (no NFKC)
        remove_extra_whitespaces=False,  # keep repeated and trailing spaces
        add_dummy_prefix=False,  # do not invent a space before the first word
        allow_whitespace_only_pieces=True,  # runs of spaces (code indentation) as pieces
        split_digits=True,  # one token per digit: arithmetic sees every digit
        character_coverage=1.0,  # every character of the corpus gets a piece (é, î, ç, ...)
        seed_sentencepiece_size=seed_sentencepiece_size,
        hard_vocab_limit=False,  # a small corpus may support fewer pieces than asked
        num_threads=1,
        minloglevel=2,
    )
