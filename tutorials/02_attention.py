# %% [markdown]
# # 2. Attention from scratch
#
# Attention lets every position read from every other position, weighting them by how well a
# *query* matches each *key*:
#
#     Attention(Q, K, V) = softmax(Q Kᵀ / √D + bias) V
#
# We compute it by hand, then compare with what `Attention.attend` in
# `minitune/layers/attention.py` runs: `attention_reference` (the same steps, written out) or,
# with its fused switch on, PyTorch's fused `scaled_dot_product_attention`.

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

from minitune import ModelConfig
from minitune.kit.tutorial import show
from minitune.layers.attention import (
    Attention,
    attention_reference,
    make_attention_bias,
    make_attention_mask,
    make_segment_mask,
    segment_positions,
)

torch.manual_seed(0)

# %% [markdown]
# ## One head, by hand
#
# Four tokens, each a vector of D = 8 numbers. Queries, keys and values are linear maps of the
# tokens (here random). Scores say how much query i likes key j; softmax turns each row into
# weights that sum to 1; the output of position i is the weighted average of the values.

# %%
T, D = 4, 8
q, k, v = torch.randn(T, D), torch.randn(T, D), torch.randn(T, D)
scores = q @ k.T / D**0.5  # (T, T): row i = query i against every key
weights = torch.softmax(scores, dim=-1)  # each row sums to 1
out = weights @ v  # (T, D)
print(weights.round(decimals=2))
print("rows sum to", weights.sum(-1))

# %% [markdown]
# Why divide by √D? The dot product of two random D-dimensional vectors has variance D; without
# the scaling, scores grow with D, the softmax saturates (one weight ≈ 1) and gradients vanish.
# (T5 leaves the scaling out and folds it into the initialisation of W_q instead.)

# %% [markdown]
# ## Masks
#
# Two kinds of positions must not be read:
# - **padding** (batches are padded to the longest row): masked in the encoder and in
#   cross-attention;
# - **the future** in the decoder: when predicting token t it must not see tokens after t
#   (*causal* mask).
#
# `make_attention_mask` builds a boolean mask, True = may attend; `make_attention_bias` turns it
# into an additive bias: 0 where allowed, the most negative float where not, so softmax gives
# exactly 0 there.

# %%
padding = torch.tensor([[1, 1, 1, 1, 0, 0]])  # a row of 4 tokens padded to 6
masks = {
    "padding (encoder)": make_attention_mask(padding, 6, 6, causal=False)[0, 0].expand(6, 6),
    "causal (decoder)": make_attention_mask(None, 6, 6, causal=True)[0, 0],
    "padding + causal": make_attention_mask(padding, 6, 6, causal=True)[0, 0],
}
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, (title, mask) in zip(axes, masks.items(), strict=True):
    ax.imshow(mask.float(), cmap="gray", vmin=0, vmax=1)
    ax.set(title=f"{title}\nwhite = may attend", xlabel="key", ylabel="query")
show(fig, "02_masks")

# %%
bias = make_attention_bias(make_attention_mask(None, T, T, causal=True), None)[0, 0]
causal_weights = torch.softmax(scores + bias, dim=-1)
print(causal_weights.round(decimals=2))  # upper triangle exactly 0
assert torch.all(causal_weights.triu(diagonal=1) == 0)

# %% [markdown]
# ## Packed rows: several examples in one row
#
# Padding wastes compute: a batch of a 40-token prompt and a 10-token one pads the second to 40.
# Training can instead *pack* examples one after another in fixed-length rows
# (`train.packing`, minitune/data/packing.py) and label each token with its example's number,
# its *segment* (0 = padding). The padding mask is then the case of one segment per row, and
# `make_segment_mask` the general one: a query attends only keys of its own segment (a
# block-diagonal mask), and in the decoder only those before it. Positions, too, count from each
# example's first token (`segment_positions`), so a packed example computes exactly what it
# would alone (tests/test_packing.py proves it for every position scheme).

# %%
segments = torch.tensor([[1, 1, 1, 2, 2, 0]])  # two examples (3 and 2 tokens), then padding
packed = {
    "packed (encoder)": make_segment_mask(segments, segments, causal=False)[0, 0],
    "packed + causal (decoder)": make_segment_mask(segments, segments, causal=True)[0, 0],
}
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
for ax, (title, mask) in zip(axes, packed.items(), strict=True):
    ax.imshow(mask.float(), cmap="gray", vmin=0, vmax=1)
    ax.set(title=f"{title}\nwhite = may attend", xlabel="key", ylabel="query")
show(fig, "02_packed")
print("positions within each example:", segment_positions(segments).tolist())
assert not packed["packed (encoder)"][:3, 3:].any()  # example 1 never sees example 2

# %% [markdown]
# ## Many heads
#
# A single head averages with one set of weights. Multi-head attention runs H heads in parallel
# on D = C / H channels each, and concatenates their outputs. In minitune each head is a slice of
# the projections: `split_heads` reshapes (B, T, H·D) to (B, H, T, D).

# %%
cfg = ModelConfig.preset("tiny")  # d_model 32, 4 heads of 8
attention = Attention(cfg).eval()
x = torch.randn(2, 5, cfg.d_model)  # (B, T, C)
causal = make_attention_bias(make_attention_mask(None, 5, 5, causal=True), None)
y = attention(x, x, attn_bias=causal)  # self-attention: keys and values from x too
print(x.shape, "->", y.shape)

# %% [markdown]
# ## The explicit steps and the fused kernel compute the same thing
#
# `attention_reference` is the four lines above, batched over heads; it also returns the weights
# (for pictures). `Attention.attend` has one branch beside it: while `self.fused` is True it calls
# PyTorch's fused kernel, which never stores the (T, T) weights and is faster on a GPU and on long
# sequences. Every command runs this one class, so a breakpoint in `attend` fires under
# `minitune train`; a new layer runs the explicit steps, `model.use_fused_kernels()` switches
# every layer, and the commands' `--fused-kernels auto` turns the branch on with CUDA only
# (benchmarks/README.md, "One path"). A test (`tests/test_layers.py`) proves the two agree; here
# is the check once.

# %%
qh, kh, vh = (torch.randn(2, 4, 6, 8) for _ in range(3))  # (B, H, T, D)
bias = make_attention_bias(
    make_attention_mask(torch.tensor([[1] * 6, [1] * 4 + [0] * 2]), 6, 6, causal=True), None
)
ref, w = attention_reference(qh, kh, vh, bias, scale=8**-0.5)
layer = Attention(ModelConfig.preset("tiny", n_heads=4, d_head=8, scale_attention=True))
assert not layer.fused and layer.scale == 8**-0.5  # a new layer: the explicit steps
layer.fused = True
fused = layer.attend(qh, kh, vh, bias)  # the fused kernel
print("largest difference:", (ref - fused).abs().max().item())
assert torch.allclose(ref, fused, atol=1e-5), "both should compute the same attention"
assert torch.all(w[1, :, :, 4:] == 0)  # row 1's two padding keys get exactly no weight
fig, axes = plt.subplots(1, 4, figsize=(11, 3))
for h, ax in enumerate(axes):
    ax.imshow(w[1, h], vmin=0, vmax=1)
    ax.set_title(f"head {h} (row 1: 2 pads)")
show(fig, "02_heads")

# %% [markdown]
# **Exercises.** (1) Remove the mask from the causal example and show that a later token now
# changes an earlier output. (2) Replace the most negative float by -1e4 and scale the scores by
# 1e5: what leaks? (This is why minitune uses `torch.finfo(float32).min`.)
