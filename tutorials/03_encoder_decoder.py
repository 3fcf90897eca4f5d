# %% [markdown]
# # 3. The encoder–decoder
#
# T5 is an encoder–decoder: the **encoder** reads the prompt with bidirectional self-attention;
# the **decoder** writes the answer one token at a time, with causal self-attention over what it
# wrote and *cross-attention* to the encoder's output. This tutorial follows one batch through
# `minitune/model.py` (`Encoder`, `Decoder`, `Seq2SeqTransformer`) and looks at the ways a model
# can know where a token is (`minitune/layers/positions.py`, `rotary.py`, `alibi.py`).

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
import matplotlib.pyplot as plt
import torch

from minitune import ModelConfig, Seq2SeqTransformer
from minitune.kit.tutorial import show
from minitune.layers.positions import (
    LearnedPositions,
    RelativePositionBias,
    SinusoidalPositions,
    relative_position_bucket,
    token_positions,
)

torch.manual_seed(0)
cfg = ModelConfig.preset("tiny")
model = Seq2SeqTransformer(cfg).eval()
print(model.encoder.layers[0])

# %% [markdown]
# ## Shapes, step by step
#
# Ids -> embeddings (one table, shared by encoder and decoder) -> encoder blocks -> memory;
# target ids -> embeddings -> decoder blocks (reading memory) -> logits over the vocabulary.

# %%
source = torch.randint(3, cfg.vocab_size, (2, 7))  # (B, S)
target = torch.randint(3, cfg.vocab_size, (2, 4))  # (B, T)
embedded = model.embed(source)  # (B, S, C)
memory = model.encoder(embedded)  # (B, S, C)
logits = model.decode(target, memory)  # (B, T, V)
print(
    "source",
    tuple(source.shape),
    "-> memory",
    tuple(memory.shape),
    "-> logits",
    tuple(logits.shape),
)
assert memory.shape == (2, 7, cfg.d_model) and logits.shape == (2, 4, cfg.vocab_size)

# %% [markdown]
# The decoder may not see the future: its causal mask hides later target tokens. Change the
# last target token, and the logits of every earlier position stay exactly as they were; only
# the last position (which reads that token) changes.

# %%
changed = target.clone()
changed[:, -1] = (target[:, -1] + 1) % cfg.vocab_size  # (B, T): another last token
changed_logits = model.decode(changed, memory)  # (B, T, V)
assert torch.allclose(changed_logits[:, :-1], logits[:, :-1], atol=1e-6), (
    "the decoder saw the future"
)
assert not torch.allclose(changed_logits[:, -1], logits[:, -1])
print("earlier positions unchanged; the last one changed")

# %% [markdown]
# Each block is a residual stream with sub-layers, each wrapped as
# `x = x + f(norm(x))` (pre-norm, T5) — see `minitune/layers/blocks.py`. Encoder block: self-attention,
# feed-forward. Decoder block: causal self-attention, cross-attention, feed-forward.

# %% [markdown]
# ## Where is a token? Three classic answers
#
# Attention is order-blind: permute the keys and the output does not change. So position must be
# added somewhere:
# - **sinusoidal** (2017): add fixed sines and cosines of different frequencies to the embeddings;
# - **learned** (BERT, GPT-2): add a learned vector per position (no length beyond the table);
# - **T5 relative bias**: add to each attention score a learned number per head for the
#   *distance* between query and key, distances grouped into log-spaced buckets.

# %%
sinus = SinusoidalPositions(cfg).table(torch.arange(64))  # (64, C)
fig, ax = plt.subplots(figsize=(6, 3))
ax.imshow(sinus.T, aspect="auto", cmap="coolwarm")
ax.set(xlabel="position", ylabel="channel", title="sinusoidal position table")
show(fig, "03_sinusoidal")

# %%
distances = torch.arange(-40, 41)
fig, ax = plt.subplots(figsize=(6, 3))
for bidirectional in (True, False):
    buckets = relative_position_bucket(distances, bidirectional, num_buckets=32, max_distance=128)
    ax.plot(
        distances, buckets, ".", label="encoder (both ways)" if bidirectional else "decoder (past)"
    )
ax.set(xlabel="key position − query position", ylabel="bucket", title="T5 relative buckets")
future = distances[distances > 0]
assert (relative_position_bucket(future, False, num_buckets=32, max_distance=128) == 0).all()
assert len(set(relative_position_bucket(future, True, 32, 128).tolist())) > 1  # encoder: both ways
ax.legend()
show(fig, "03_buckets")

# %% [markdown]
# Small distances get their own bucket; larger ones share log-spaced buckets; all beyond
# `max_distance` share the last. The bias table has one learned value per (bucket, head):

# %%
relative = RelativePositionBias(cfg, causal=False)
torch.nn.init.normal_(relative.bias_table.weight, std=0.5)  # as if trained
bias = relative.position_bias(24, 24)  # (1, H, 24, 24)
fig, axes = plt.subplots(1, cfg.n_heads, figsize=(11, 3))
for h, ax in enumerate(axes):
    ax.imshow(bias[0, h].detach(), cmap="coolwarm")
    ax.set_title(f"head {h}")
show(fig, "03_relative_bias")

# %% [markdown]
# Learned absolute positions stop at their table's end — a real limit that relative schemes,
# RoPE and ALiBi do not have:

# %%
learned = LearnedPositions(cfg)
try:
    learned.embed(
        torch.zeros(1, cfg.max_position + 1, cfg.d_model), token_positions(cfg.max_position + 1)
    )
except ValueError as err:
    print("ValueError:", err)
else:
    raise AssertionError("a position beyond the learned table should be refused")

# %% [markdown]
# ## Every scheme, the same model
#
# The scheme is a name in the config (`layers/registry.py`). The tests check for every scheme
# that the decoder is causal, padding changes nothing and cached decoding equals uncached.
# Count the parameters each one adds:

# %%
for position in ("relative", "sinusoidal", "learned", "rotary", "alibi", "none"):
    m = Seq2SeqTransformer(ModelConfig.preset("tiny", position=position))
    extra = sum(p.numel() for n, p in m.named_parameters() if "position" in n)
    print(f"{position:10s} {extra:6d} position parameters")
    assert (extra > 0) == (position in ("relative", "learned")), position  # the others: formulas

# %% [markdown]
# **Exercise.** Swap the encoder's token order (permute `source`) with `position="none"` and
# compare the memory rows: what does the encoder output become? Then try `"relative"`.
