# %% [markdown]
# # 1. Tokens: from text to ids and back
#
# A Transformer reads integers, not characters. The tokenizer cuts text into *pieces* from a fixed
# vocabulary and gives each an id. minitune uses SentencePiece (a unigram language model over
# pieces, as T5 does), wrapped in `minitune/tokenizer.py` (`Tokenizer`, `train_tokenizer`).
#
# This tutorial trains a small tokenizer, looks at what it does to text, and explains three
# details that matter for instruction tuning: special ids, byte fallback, and sentinels.
#
# Open it as a notebook (`tutorials/notebooks/01_tokens.ipynb`, in Jupyter, VS Code or Colab:
# `tutorials/README.md` says how), or run it: `python tutorials/01_tokens.py`.
# `MINITUNE_QUICK=1` makes every tutorial quick.

# %%
# Colab, or any Python without minitune: install it first (tutorials/README.md says from where).
import importlib.util
import os
import subprocess
import sys

MINITUNE_SOURCE = os.environ.get("MINITUNE_SOURCE", "git+https://github.com/<owner>/minitune")
if importlib.util.find_spec("minitune") is None:
    if "<owner>" in MINITUNE_SOURCE:
        raise RuntimeError(
            "minitune is not installed: set MINITUNE_SOURCE to a git URL or a folder"
        )
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", MINITUNE_SOURCE], check=True)

# %%
import tempfile
from pathlib import Path

from minitune import Tokenizer
from minitune.kit.tutorial import QUICK, SHIPPED
from minitune.tokenizer import train_tokenizer

# %% [markdown]
# ## The shipped tokenizer
#
# `tokenizer/minitune.model` has 3,000 pieces, trained on the shipped instruction data and
# pretraining text (`tokenizer/README.md` has the command). Encoding gives ids; `piece` shows what
# each id stands for ("▁" marks a space before the piece).

# %%
tok = Tokenizer(SHIPPED / "tokenizer" / "minitune.model")
text = "Translate to French:\nThe small dog sees the red ball."
ids = tok.encode(text)
print(len(text), "characters ->", len(ids), "tokens")
print([tok.piece(i) for i in ids])
assert tok.decode(ids) == text  # exact round trip: no normalisation, spaces and newlines kept

# %% [markdown]
# ## Segmentation conventions: the same word is the same piece
#
# How a text is cut into pieces is free, as long as decoding gives it back. Two choices, stored
# beside the model (`tokenizer/minitune.segmentation.json`) and carried into every checkpoint,
# make copying and spelling learnable (`tokenizer/README.md` measures them):
#
# - **a space before every line**: plain SentencePiece cuts `Lucia` at the start of an answer
#   into another piece than ` Lucia` inside a prompt, so a model that copies the name from the
#   prompt would have to learn the pair name by name. With the convention both are `▁Lucia`.
# - **capital runs one letter per token**: `FBL` is `F` `B` `L`, not `F` + `BL`, so upper-casing
#   and initials work letter by letter with 26 tokens that mean the same everywhere.

# %%
from minitune.tokenizer import Segmentation

plain = Tokenizer(SHIPPED / "tokenizer" / "minitune.model", Segmentation())  # no conventions
print(tok.segmentation)
for sample in ["Lucia", "name: Lucia", "FBL"]:
    print(f"{sample!r:14} plain {[plain.piece(i) for i in plain.encode(sample)]}")
    print(f"{'':14} ours  {[tok.piece(i) for i in tok.encode(sample)]}")
assert tok.encode("Lucia")[-1] == tok.encode("name: Lucia")[-1]  # the piece the prompt holds
assert plain.encode("Lucia")[-1] != plain.encode("name: Lucia")[-1]
assert [tok.piece(i) for i in tok.encode("FBL")] == ["▁", "F", "B", "L"]
assert tok.decode(tok.encode("FBL\nLucia")) == "FBL\nLucia"  # still an exact round trip

# %% [markdown]
# While training, `train.spell_prompts` (0.1 in the laptop config) spells a share of prompt
# pieces letter by letter, so the model also sees the letters inside words it reads whole
# (a subword regularisation, like BPE-dropout); evaluation and inference never do.

# %%
import random

spelled = tok.encode_spelled("the clever dog", 0.5, random.Random(3))
print([tok.piece(i) for i in spelled])
assert tok.decode(spelled) == "the clever dog"

# %% [markdown]
# ## Special ids
#
# Three ids have fixed jobs: **pad** (0) fills short rows of a batch, **eos** (1) ends every
# sequence, **unk** (2) would stand for unknown text (it never appears: see byte fallback).
# The decoder also *starts* from pad, as in T5. `encode_batch` adds EOS and pads.

# %%
print("pad", tok.pad_id, "eos", tok.eos_id, "unk", tok.unk_id)
batch = tok.encode_batch(["What is 2 + 3?", "Hello"])
print(batch.input_ids)
print(batch.attention_mask)  # 1 = real token, 0 = padding

# %% [markdown]
# ## Byte fallback: no text is unknown
#
# Characters the tokenizer never saw (Chinese, emoji) are not mapped to unk: they fall back to
# their UTF-8 bytes, one piece per byte (`<0xE7>` ...). So decode(encode(x)) == x for any text.

# %%
rare = "温度 is 20°C 🙂"
rare_ids = tok.encode(rare)
print([tok.piece(i) for i in rare_ids])
assert tok.decode(rare_ids) == rare

# %% [markdown]
# ## Sentinels: the pretraining vocabulary
#
# T5 pretrains by *span corruption*: drop spans of the input, replace each by a sentinel
# `<extra_id_0>`, `<extra_id_1>`, ..., and train the model to write the dropped spans after the
# same sentinels (`minitune/data/span_corruption.py`). Our sentinels are ids 3..102.

# %%
from minitune.data.span_corruption import reconstruct, span_corrupt

doc = tok.encode("The city council announced on Monday that it will build a new library.")
inputs, targets = span_corrupt(doc, tok.sentinel_ids, random.Random(0), noise_density=0.3)
print("input :", tok.decode(inputs, skip_special=False))
print("target:", tok.decode(targets, skip_special=False))
assert reconstruct(inputs, targets, tok.sentinel_ids) == doc

# %% [markdown]
# ## Train your own
#
# `train_tokenizer` (or `minitune tokenizer train`) trains on text files with the same
# conventions. A smaller vocabulary gives longer sequences; a larger one, more parameters in the
# embedding and fewer tokens per text. Try `vocab_size` values and watch the token counts.

# %%
corpus = (SHIPPED / "data" / "pretrain.txt").read_text(encoding="utf-8")
with tempfile.TemporaryDirectory() as folder:
    source = Path(folder) / "text.txt"
    source.write_text(corpus[: 60_000 if QUICK else 400_000], encoding="utf-8")
    counts = []
    for size in (500, 1000) if QUICK else (500, 1000, 2000):
        small = Tokenizer(train_tokenizer([source], Path(folder) / f"tok{size}", vocab_size=size))
        counts.append(len(small.encode(text)))
        print(f"vocabulary {size:5d}: {counts[-1]:3d} tokens for the sentence")
        print(f"                  {[small.piece(i) for i in small.encode(text)]}")
    assert counts == sorted(counts, reverse=True) and counts[-1] < counts[0]  # bigger: fewer

# %% [markdown]
# **Exercise.** Encode a line of Python code from `data/train.jsonl` (a code task). How are
# indentation and newlines represented? Why does it matter that the tokenizer keeps them exactly?
