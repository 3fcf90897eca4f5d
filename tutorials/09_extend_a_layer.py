# %% [markdown]
# # 9. Extend a layer: write a variant, check it, train it
#
# minitune's layers are chosen by name (`minitune/layers/registry.py`); a new variant is one file
# plus one line — or just a "module:Class" path in the config. The conformance kit
# (`minitune/kit/conformance.py`) checks it against everything the model relies on. We build
# **ALiBi-with-a-learned-slope** here: ALiBi's linear distance penalty
# (`minitune/layers/alibi.py`), but each head *learns* its slope. (`docs/extending.md` walks through an attention variant the same way.)

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
import json
import tempfile
from pathlib import Path

import torch
from torch import nn

from minitune import ModelConfig, Seq2SeqTransformer
from minitune.kit import conformance
from minitune.kit.tutorial import QUICK, SHIPPED
from minitune.layers import registry
from minitune.layers.alibi import alibi_slopes
from minitune.layers.positions import PositionScheme
from minitune.run.settings import load_run_config
from minitune.train import train

# %% [markdown]
# ## Write it
#
# A position scheme may act in three places: `embed` (add to the tokens), `bias` (add to the
# attention scores) or `rotate` (turn queries and keys). Ours is a bias: a function of the
# distance between query i and key j, and of nothing else. `offset` is the position of the first
# query. The model itself asks a bias only for whole square tables from position 0 (a cached
# decoder builds its table once and takes one row per step: `Decoder` in `minitune/model.py`,
# `DecoderCache` in `minitune/layers/kv_cache.py`), but the contract is general:
# `position_bias(q_len, k_len, offset)` is rows offset..offset+q_len-1 of the table, and the kit
# holds every scheme to it.


# %%
class LearnedALiBi(PositionScheme):
    """score[h, i, j] += −softplus(s_h)·|i − j|, with s_h learned (initialised as ALiBi)."""

    def __init__(self, cfg, causal=False):
        super().__init__(cfg, causal)
        initial = alibi_slopes(cfg.n_heads)
        self.raw_slopes = nn.Parameter(torch.log(torch.expm1(initial)))  # softplus⁻¹

    def position_bias(self, q_len, k_len, offset=0):
        device = self.raw_slopes.device  # build on the parameters' device (CPU or GPU)
        query_pos = torch.arange(offset, offset + q_len, device=device)[:, None]  # (T_q, 1)
        key_pos = torch.arange(k_len, device=device)[None, :]  # (1, T_k)
        distance = (key_pos - query_pos).abs().float()  # (T_q, T_k)
        slopes = nn.functional.softplus(self.raw_slopes)  # > 0
        return -(slopes[:, None, None] * distance).unsqueeze(0)  # (1, H, T_q, T_k)


# %% [markdown]
# ## Check it
#
# `check_position` runs shapes, offset consistency (for `embed` and `rotate` it is what cached
# decoding needs; for a bias, the contract above), float64 gradcheck, and the model-level checks
# (causal decoder, padding invariance, cache == no cache, a tiny model fits a batch). In a pytest
# file: `check_position(LearnedALiBi).raise_if_failed()`.

# %%
report = conformance.check_position(LearnedALiBi)
print(report)
assert report.ok

# %% [markdown]
# What a mistake looks like: a bias that depends on the length of the sequence, not only on the
# distance. Dividing the distance by the number of keys looks harmless ("long inputs should not be
# penalised more"), but in the model the encoder's length is the batch's longest row, padding
# included: a row's answer would change with the other rows of its batch. The per-scheme checks
# all pass; the model-level one that adds padding catches it.


# %%
class PerLength(LearnedALiBi):
    def position_bias(self, q_len, k_len, offset=0):
        return super().position_bias(q_len, k_len, offset) / k_len  # depends on k_len: a bug


mistake = conformance.check_position(PerLength)
print(mistake)
failed = [r.name for r in mistake.results if r.status == "FAIL"]
assert failed == ["model: source padding changes nothing"], failed

# %% [markdown]
# ## Register it and train it
#
# For a lasting variant, add one line to `POSITIONS` in `minitune/layers/registry.py`. In a
# notebook, `registry.register` does the same for this session only: a checkpoint that names
# "learned-alibi" then loads only where the name is registered again (or put the class in a file
# and name it by its path, "my_positions:LearnedALiBi", which any process can import).

# %%
registry.register("position", "learned-alibi", LearnedALiBi)
model = Seq2SeqTransformer(ModelConfig.preset("tiny", position="learned-alibi"))
print(
    type(model.encoder.position).__name__, [n for n, _ in model.named_parameters() if "slope" in n]
)

out = tempfile.mkdtemp(prefix="minitune-alibi-")
overrides = {
    "model": {"position": "learned-alibi"},
    "train": {
        "out": out,
        "max_steps": 20 if QUICK else 300,
        "eval_every": 10 if QUICK else 100,
        "data": [str(SHIPPED / "data" / "train.jsonl")],
        "valid_data": str(SHIPPED / "data" / "valid.jsonl"),
        "tokenizer": str(SHIPPED / "tokenizer" / "minitune.model"),
    },
}
summary = train(*load_run_config(SHIPPED / "configs" / "tiny.toml", overrides), progress=False)
rows = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]
valid = [r["valid_loss"] for r in rows if "valid_loss" in r]
print(f"validation loss {' -> '.join(f'{v:.3f}' for v in valid)}: it learns")
assert valid[-1] < valid[0] and summary["best_valid_loss"] == min(valid)

# %% [markdown]
# ## Compare
#
# Train the baseline with the same budget (`"position": "alibi"` or T5's `"relative"`) and compare
# validation losses; then look at the learned slopes — did the heads move away from ALiBi's?
# `tutorials/exercises.md` has more variants to build this way.

# %%
from minitune.run.checkpoint import load_model

best, _ = load_model(f"{out}/best")
print("learned slopes:", nn.functional.softplus(best.encoder.position.raw_slopes).tolist())
print("ALiBi's:       ", alibi_slopes(4).tolist())
