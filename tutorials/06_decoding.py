# %% [markdown]
# # 6. Generating text: greedy, sampling, beam search, and the KV cache
#
# A trained model gives, at each step, a distribution over the next token. *Decoding* turns those
# distributions into text. `minitune/generate.py` has greedy search, sampling (temperature,
# top-k, top-p) and beam search; all use a KV cache so that each step only processes the newest
# token.

# %%
import time

import matplotlib.pyplot as plt
import torch
from common import FAST, show

from minitune import ModelConfig, Seq2SeqTransformer
from minitune.generate import top_k_filter, top_p_filter

torch.manual_seed(0)
model = Seq2SeqTransformer(ModelConfig.preset("tiny")).eval()
# sharpen the random model a little, so that its choices are clearer, as a trained model's are
# (much more, and this random model only repeats its start token, pad, whatever the prompt)
with torch.no_grad():
    model.embed.weight.mul_(1.25)
source = torch.randint(3, 128, (1, 10))

# %% [markdown]
# ## Greedy: always the most likely token
#
# Simple and deterministic; it can miss a better sequence whose first token was less likely.

# %%
greedy = model.generate(source, max_new_tokens=12)
print("greedy:", greedy.tolist())
assert torch.equal(greedy, model.generate(source, max_new_tokens=12)), "greedy is deterministic"
assert (greedy != model.config.pad_id).any(), "the model only writes pad: nothing to decode"

# %% [markdown]
# ## Sampling: temperature, top-k, top-p
#
# Divide the logits by a temperature (< 1 sharper, > 1 flatter), keep the k most likely tokens
# (top-k) or the smallest set whose probability reaches p (top-p, "nucleus"), and draw.

# %%
logits = torch.tensor([[2.0, 1.5, 0.5, 0.0, -1.0]])
print("probabilities     ", logits.softmax(-1).round(decimals=3).tolist())
print("top-k 2 keeps     ", top_k_filter(logits, 2).softmax(-1).round(decimals=3).tolist())
print("top-p 0.8 keeps   ", top_p_filter(logits, 0.8).softmax(-1).round(decimals=3).tolist())
assert torch.isfinite(top_k_filter(logits, 2)).sum() == 2
assert torch.isfinite(top_p_filter(logits, 0.8)).tolist() == [[True, True, True, False, False]]
fig, ax = plt.subplots(figsize=(6, 3))
for t in (0.5, 1.0, 2.0):
    ax.plot((logits / t).softmax(-1)[0], "o-", label=f"temperature {t}")
peak = [(logits / t).softmax(-1).max().item() for t in (0.5, 1.0, 2.0)]
assert peak[0] > peak[1] > peak[2]  # a low temperature sharpens, a high one flattens
ax.set(xlabel="token", ylabel="probability")
ax.legend()
show(fig, "06_temperature")

# %%
g = torch.Generator().manual_seed(1)
samples = []
for _ in range(3):
    sample = model.generate(source, max_new_tokens=12, do_sample=True, temperature=1.0, top_p=0.9,
                            generator=g)  # fmt: skip
    print("sample:", sample.tolist())
    samples.append(sample.tolist())
assert len({str(s) for s in samples}) > 1, "sampling should not always give the same answer"

# %% [markdown]
# ## Beam search
#
# Keep the `num_beams` best partial sequences at every step, by summed log-probability; a
# finished one is scored by its log-probability divided by length ** length_penalty.
# With `num_beams=1` it is greedy search (a test checks that).

# %%
for beams in (1, 4):
    out = model.generate(source, max_new_tokens=12, num_beams=beams)
    print(f"{beams} beam(s):", out.tolist())

# %% [markdown]
# ## The KV cache, measured
#
# Without a cache, step t re-runs the decoder over all t tokens: the cost per token grows with the
# length. With the cache, each layer keeps the keys and values of earlier tokens and the step
# processes one token. Both give the same tokens (tested); the time per token differs:

# %%
lengths = (16, 64) if FAST else (16, 64, 256)
timings = {True: [], False: []}
for n in lengths:
    for use_cache in (True, False):
        start = time.perf_counter()
        model.generate(source, max_new_tokens=n, min_new_tokens=n, use_cache=use_cache)
        timings[use_cache].append((time.perf_counter() - start) / n * 1e3)
fig, ax = plt.subplots(figsize=(6, 3))
for use_cache, ms in timings.items():
    ax.plot(lengths, ms, "o-", label="with cache" if use_cache else "without cache")
ax.set(xlabel="new tokens", ylabel="ms per token")
ax.legend()
show(fig, "06_kv_cache")
print({("cache" if k else "no cache"): [round(t, 2) for t in v] for k, v in timings.items()})
# faster, and the same tokens: the cache changes the cost, never the answer
assert torch.equal(model.generate(source, max_new_tokens=16, num_beams=4),
                   model.generate(source, max_new_tokens=16, num_beams=4, use_cache=False))  # fmt: skip

# %% [markdown]
# `benchmarks/bench.py --cache-scaling` measures the same on bigger models (4.9× at 256 tokens for a
# 13.5M-parameter model, 7.9× for t5-small). **Exercise.** With `length_penalty` 0 and 2, does beam search prefer
# shorter or longer answers? Why?
