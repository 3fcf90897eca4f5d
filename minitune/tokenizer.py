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

Segmentation conventions (`Segmentation`): how a text is cut into pieces is free as long as
decoding gives the same string back, and two choices make copying and spelling learnable:

- `line_space`: every line is encoded as if a space stood before it, so a word is the same piece
  at the start of an answer or a line as inside a sentence (`Lucia` -> `▁Lucia` everywhere, the
  piece the copy head can point at in `name: Lucia`); decoding removes that one space again;
- `spell_capitals`: a run of two or more capital letters is one token per letter
  (`FBL` -> `F` `B` `L`, ` CLEVER` -> `▁` `C` `L` `E` `V` `E` `R`), so upper-casing and initials
  are letter-by-letter work with the same 26 tokens everywhere.

    tok.encode("FBL")  -> ids of ["▁", "F", "B", "L"]   (copyable conventions)
    tok.decode(tok.encode(s)) == s                      (for every string, either way)

A tokenizer's conventions live beside its model file (`minitune.model` ->
`minitune.segmentation.json`) and travel with it into every checkpoint, so `train`, `eval`,
`generate` and `chat` cut and join text the same way. A model file without that file (Google's
T5 `spiece.model`, checkpoints written before the conventions) uses plain SentencePiece.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import sentencepiece as spm
import torch

N_SENTINELS = 100


def sentinel_piece(i: int) -> str:
    """The text of sentinel i: `<extra_id_i>`."""
    return f"<extra_id_{i}>"


@dataclass(frozen=True)
class Segmentation:
    """How a text is cut into pieces beyond SentencePiece itself (see the module docstring)."""

    line_space: bool = False  # a space before every line, removed again when decoding
    spell_capitals: bool = False  # runs of 2+ capital letters: one token per letter

    @classmethod
    def read(cls, path: Path) -> Segmentation:
        """The conventions stored in `path` (a JSON object of the fields above)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable segmentation file ({err})") from None
        known = set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or set(data) - known:
            extra = sorted(set(data) - known) if isinstance(data, dict) else data
            raise ValueError(f"{path}: unknown field(s) {extra}; allowed: {sorted(known)}")
        for name, value in data.items():
            if not isinstance(value, bool):
                raise ValueError(f"{path}: field {name!r} must be true or false, got {value!r}")
        return cls(**data)

    def write(self, path: Path) -> None:
        """Store the conventions as JSON (sorted keys: the same conventions, the same bytes)."""
        path.write_text(json.dumps(asdict(self), sort_keys=True) + "\n", encoding="utf-8")

    @property
    def plain(self) -> bool:
        return not (self.line_space or self.spell_capitals)


# minitune's own tokenizers: what copying and spelling need (tokenizer/README.md measures it)
COPYABLE = Segmentation(line_space=True, spell_capitals=True)
NEW_LINE = re.compile(r"\n(?=.)", re.DOTALL)  # a newline that another line follows
CAPITAL_RUN = re.compile(r"([A-ZÀ-ÖØ-Þ]{2,})")  # 2+ capitals (Latin-1 included)


def segmentation_file(model_file: str | Path) -> Path:
    """Where the conventions of `model_file` live: `X.model` -> `X.segmentation.json`."""
    return Path(model_file).with_suffix(".segmentation.json")


class EncodedBatch(NamedTuple):
    """A padded batch: ids and mask are (B, L) int64; `truncated` counts rows that were cut."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    truncated: int


class Tokenizer:
    """A SentencePiece model with minitune's conventions (see the module docstring)."""

    def __init__(self, model_file: str | Path, segmentation: Segmentation | None = None):
        path = Path(model_file)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {path}")
        self.path = path
        if segmentation is None:  # the conventions stored beside the model, if any
            side = segmentation_file(path)
            segmentation = Segmentation.read(side) if side.is_file() else Segmentation()
        self.segmentation = segmentation
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
        self.space_id = self.sp.piece_to_id("▁")
        # the single-character piece of each character (byte fallback where there is none)
        self._char_ids: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def sentinel_id(self, i: int) -> int:
        """Id of `<extra_id_i>` (ours: 3 + i; Google's T5 vocabulary: 32099 - i)."""
        return self.sentinel_ids[i]

    def fingerprint(self) -> str:
        """A short hash of the model file and its conventions, to tell tokenizers apart (stored
        in checkpoints). Plain conventions hash the file alone, as before they existed."""
        digest = hashlib.sha256(self.path.read_bytes())
        if not self.segmentation.plain:
            digest.update(json.dumps(asdict(self.segmentation), sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def piece(self, i: int) -> str:
        """The piece of id i, as SentencePiece writes it ("▁" marks a space), for labels."""
        if i in self.sentinel_ids:
            return sentinel_piece(self.sentinel_ids.index(i))
        return self.sp.id_to_piece(i) if 0 <= i < self.vocab_size else f"<id {i}>"

    def encode(self, text: str, add_eos: bool = False) -> list[int]:
        """Token ids of `text` (optionally followed by EOS), with the tokenizer's conventions."""
        seg = self.segmentation
        if seg.line_space and text:  # a space before each line (not after a final newline)
            text = " " + NEW_LINE.sub("\n ", text)
        if not seg.spell_capitals:
            ids = self.sp.encode(text)
        else:  # split out capital runs: odd parts are runs, spelled one letter per token
            ids = []
            for k, part in enumerate(CAPITAL_RUN.split(text)):
                ids += self.spell(part) if k % 2 else self.sp.encode(part) if part else []
        return [*ids, self.eos_id] if add_eos else ids

    def spell(self, text: str) -> list[int]:
        """One token per character: `" dog"` -> `▁` `d` `o` `g` (a character without a piece of
        its own is spelled as its UTF-8 bytes)."""
        ids = []
        for char in text:
            if char not in self._char_ids:
                single = self.sp.piece_to_id("▁" if char == " " else char)
                self._char_ids[char] = [single] if single != self.unk_id else self.sp.encode(char)
            ids += self._char_ids[char]
        return ids

    def encode_spelled(self, text: str, rate: float, rng: random.Random) -> list[int]:
        """`encode(text)`, with each piece longer than one character spelled out letter by letter
        with probability `rate` (a subword regularisation for training prompts: the model sees
        the letters inside words it otherwise reads whole). Decodes to the same text."""
        ids = self.encode(text)
        if rate <= 0:
            return ids
        out = []
        for i in ids:
            piece = self.sp.id_to_piece(i)
            if (
                len(piece) > 1
                and not self.sp.is_control(i)
                and not self.sp.is_byte(i)
                and i not in self.sentinel_ids
                and rng.random() < rate
            ):
                out += self.spell(piece.replace("▁", " "))
            else:
                out.append(i)
        return out

    def decode(self, ids: list[int] | torch.Tensor, skip_special: bool = True) -> str:
        """Text of `ids`. Stops at the first EOS; pad is dropped (with skip_special)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if skip_special:
            if self.eos_id in ids:
                ids = ids[: ids.index(self.eos_id)]
            ids = [i for i in ids if i != self.pad_id]
        # a model may have more output rows than the tokenizer has pieces (a preset sized for a
        # larger tokenizer): an id past the last piece stands for no text
        text = self.sp.decode([i for i in ids if 0 <= i < self.vocab_size])
        if self.segmentation.line_space:  # the space encode put before every line
            text = text.removeprefix(" ").replace("\n ", "\n")
        return text

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
    segmentation: Segmentation = COPYABLE,
) -> Path:
    """Train a SentencePiece model with minitune's conventions; returns the `.model` path.

    input_files: text files, one sentence or paragraph per line. model_type: "unigram"
    (default, as T5) or "bpe". The result has pad 0, eos 1, unk 2, sentinels 3..102, newline
    and tab as single tokens, byte fallback, digits split one per token, and no normalisation.
    Training is single-threaded, so the same files and options give the same model.
    `segmentation`: the conventions written beside the model (`X.segmentation.json`; none
    for plain SentencePiece), which every `Tokenizer(X.model)` then applies.
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
    # SentencePiece learns its pieces from the text as `encode` will hand it over: each line
    # after a space, capital runs cut out (they are spelled). A fixed name: SentencePiece
    # records its input's path in the model, and the same inputs must give the same bytes.
    view = Path(f"{model_prefix}.segmented.txt")
    if not segmentation.plain:
        with open(view, "w", encoding="utf-8") as out:
            for f in input_files:
                out.write(segmented_view(Path(f).read_text(encoding="utf-8"), segmentation))
        input_files = [view]
    try:
        _train(input_files, model_prefix, vocab_size, model_type, seed_sentencepiece_size)
    except RuntimeError as err:  # SentencePiece reports option problems as RuntimeError
        raise ValueError(f"SentencePiece could not train: {err}") from None
    finally:
        view.unlink(missing_ok=True)
    model = Path(f"{model_prefix}.model")
    side = segmentation_file(model)
    if segmentation.plain:
        side.unlink(missing_ok=True)  # no stale conventions from an earlier model of that name
    else:
        segmentation.write(side)
    return model


def segmented_view(text: str, segmentation: Segmentation) -> str:
    """`text` as `Tokenizer.encode` gives it to SentencePiece, one line per piece of text it
    encodes alone: "Say ABC.\nOk" -> " Say \n.\n Ok" (line_space, spell_capitals)."""
    lines = text.split("\n")
    if segmentation.line_space:
        lines = [" " + line if line else line for line in lines]
    if segmentation.spell_capitals:
        lines = [CAPITAL_RUN.sub("\n", line) for line in lines]
    return "\n".join(lines) + "\n"


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
