# %% [markdown]
# # 9. Extend a layer: write a variant, check it, train it
#
# minitune's layers are chosen by name (`minitune/layers/registry.py`); a new variant is one file
# plus one line — or just a "module:Class" path in the config. The conformance kit
# (`minitune/conformance.py`) checks it against everything the model relies on. We build
# **ALiBi-with-a-learned-slope** here: ALiBi's linear distance penalty
# (`minitune/layers/alibi.py`), but each head *learns* its slope. (`docs/extending.md` walks through an attention variant the same way.)

# %%
import json
import tempfile
from pathlib import Path

import torch
from common import QUICK, ROOT
from torch import nn

from minitune import ModelConfig, Seq2SeqTransformer, conformance
from minitune.layers import registry
from minitune.layers.alibi import alibi_slopes
from minitune.layers.positions import PositionScheme
from minitune.run_config import load_run_config
from minitune.train import train

# %% [markdown]
# ## Write it
#
# A position scheme may act in three places: `embed` (add to the tokens), `bias` (add to the
# attention scores) or `rotate` (turn queries and keys). Ours is a bias. `offset` is the position
# of the first query: when decoding with a cache the decoder sees one token at a time.


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
# `check_position` runs shapes, offset consistency (what cached decoding needs), float64
# gradcheck, and the model-level checks (causal decoder, padding invariance, cache == no cache, a
# tiny model fits a batch). In a pytest file: `check_position(LearnedALiBi).raise_if_failed()`.

# %%
report = conformance.check_position(LearnedALiBi)
print(report)
assert report.ok

# %% [markdown]
# What a mistake looks like: forget the offset (every decoding step thinks it is at position 0).


# %%
class OffsetBlind(LearnedALiBi):
    def position_bias(self, q_len, k_len, offset=0):
        return super().position_bias(q_len, k_len, 0)


print(conformance.check_position(OffsetBlind))

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
        "data": [str(ROOT / "data" / "train.jsonl")],
        "valid_data": str(ROOT / "data" / "valid.jsonl"),
        "tokenizer": str(ROOT / "tokenizer" / "minitune.model"),
    },
}
summary = train(*load_run_config(ROOT / "configs" / "tiny.toml", overrides), progress=False)
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
from minitune.checkpoint import load_model

best, _ = load_model(f"{out}/best")
print("learned slopes:", nn.functional.softplus(best.encoder.position.raw_slopes).tolist())
print("ALiBi's:       ", alibi_slopes(4).tolist())
