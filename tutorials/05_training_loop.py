# %% [markdown]
# # 5. The training loop, step by step
#
# `minitune/train.py` reads top to bottom: set up the device and seeds, build the model, read the
# data, build the optimizer, then loop. One optimizer step (`train_step`) is:
#
# 1. take `grad_accum` micro-batches, count their target tokens N;
# 2. forward, loss and backward of each, its summed loss divided by N;
# 3. clip the gradient norm, set the learning rate from the schedule, step, zero the gradients.
#
# Here we write that loop by hand on a tiny model (and check it against the library's
# `train_step`), plot the schedules, and run the real loop.

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
import copy
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from minitune import ModelConfig, Seq2SeqTransformer, Tokenizer
from minitune.config import TrainConfig
from minitune.data.batching import collate, encode_records
from minitune.data.formats import read_records
from minitune.kit.tutorial import QUICK, SHIPPED, show
from minitune.model import shift_right
from minitune.optim import build_optimizer, lr_factor
from minitune.run.settings import load_run_config
from minitune.train import StepSetup, forward_backward, train, train_step

torch.manual_seed(0)

# %% [markdown]
# ## Real data, one batch
#
# Records from the shipped suite -> tokenized examples -> a padded batch (labels −100 on padding).

# %%
tok = Tokenizer(SHIPPED / "tokenizer" / "minitune.model")
records = read_records(SHIPPED / "data" / "train.jsonl")[::500][:8]
examples, report = encode_records(records, tok, max_source_length=64, max_target_length=32)
batch = collate(examples, tok.pad_id)
print(report)
print({k: tuple(v.shape) for k, v in batch.items()})

# %% [markdown]
# ## Overfit one batch, with a loop written by hand
#
# The first test of any training code: a model must be able to memorise a single batch. If the
# loss does not go to ~0, something is broken (masks, labels, learning rate...). The loop is
# the whole of training: forward, loss, backward, clip, step.

# %%
model = Seq2SeqTransformer(ModelConfig.preset("tiny", vocab_size=tok.vocab_size)).train()
same_model = copy.deepcopy(model)  # for the library's train_step, below
cfg = TrainConfig(lr=3e-3, warmup_steps=10, max_steps=60 if QUICK else 150, schedule="constant")
optimizer = build_optimizer(model, cfg)  # AdamW, no weight decay on norms and biases
x, mask, y = batch["input_ids"], batch["attention_mask"], batch["labels"]  # y: -100 on padding
losses = []
for step in range(cfg.max_steps):
    torch.manual_seed(step)  # the same dropout masks as the library's run below
    logits = model(x, shift_right(y, model.config.decoder_start_id, tok.pad_id), mask)  # (B, T, V)
    # mean over target tokens of -log p(y_t); padding (-100) ignored
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
    loss.backward()  # the gradient of the loss, in each parameter's .grad
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)  # ||g|| <= clip_grad
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * lr_factor(step, cfg)  # the schedule's learning rate
    optimizer.step()  # θ <- θ - lr · update(g)
    optimizer.zero_grad(set_to_none=True)  # and forget the gradient
    losses.append(loss.item())
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses)
ax.set(xlabel="step", ylabel="loss", yscale="log", title="one batch, memorised")
show(fig, "05_overfit")
print(f"loss {losses[0]:.2f} -> {losses[-1]:.3f}")
assert losses[-1] < 0.5 * losses[0], "one batch should be memorised: the loss falls a lot"

# %% [markdown]
# The library's `train_step(model, optimizer, micro_batches, lr, setup)` (what `train()` calls
# every step) does the same, plus what a real run needs: micro-batches, the NaN guard, and, in
# `setup` (a `StepSetup`, made once per run), the device, the precision and fp16's GradScaler,
# clipping and the distributed processes. Same model, same batch, same dropout: the same losses.

# %%
library_optimizer = build_optimizer(same_model, cfg)
setup = StepSetup("cpu", tok.pad_id, clip_grad=cfg.clip_grad)  # fp32, one process
library_losses = []
for step in range(cfg.max_steps):
    torch.manual_seed(step)
    lr = cfg.lr * lr_factor(step, cfg)
    result = train_step(same_model, library_optimizer, [batch], lr, setup)
    library_losses.append(result.loss)
gap = max(abs(a - b) / a for a, b in zip(losses, library_losses, strict=True))
print(f"largest relative difference of the losses, by hand vs train_step: {gap:.1e}")
assert gap < 1e-4, "the loop by hand and train_step should give the same losses"

# %% [markdown]
# ## Learning-rate schedules
#
# A linear warm-up (large early updates on random weights are unstable), then a decay.
# `lr_factor(step, cfg)` is the multiplier of the peak learning rate.

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for schedule in ("cosine", "inverse_sqrt", "constant"):
    c = TrainConfig(schedule=schedule, warmup_steps=100, max_steps=1000)
    factors = [lr_factor(s, c) for s in range(1000)]
    assert factors[0] == 0.01 and factors[99] == 1.0  # linear warm-up to the peak
    ax.plot(factors, label=schedule)
ax.set(xlabel="step", ylabel="lr / peak lr")
ax.legend()
show(fig, "05_schedules")

# %% [markdown]
# ### A schedule that ends with the clock
#
# The laptop run has a budget in minutes, not steps (`max_minutes = 11`): a slower machine
# takes fewer steps. A cosine over `max_steps` would then be cut off before it decays, so
# `lr_factor` also takes the fraction of the time budget already spent and follows whichever
# runs out first. Here a run planned for 1,000 steps has used 60% of its minutes after 300:

# %%
c = TrainConfig(schedule="cosine", warmup_steps=100, max_steps=1000, max_minutes=11)
by_steps, by_clock = lr_factor(300, c), lr_factor(300, c, time_fraction=0.6)
print(f"at step 300: {by_steps:.2f} of the peak by steps, {by_clock:.2f} by the clock")
assert by_clock < by_steps and lr_factor(300, c, time_fraction=1.0) == 0.1  # the floor at the end

# %% [markdown]
# ## Gradient accumulation
#
# Memory limits the batch; accumulation keeps the *effective* batch: 4 micro-batches of 2 give
# the same gradient as one batch of 8, because every micro-batch is divided by the total N.


# %%
def gradient(micro_batches):
    model.zero_grad()
    forward_backward(model, micro_batches, StepSetup("cpu", tok.pad_id))
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


one = gradient([batch])
four = gradient([collate(examples[i : i + 2], tok.pad_id) for i in range(0, 8, 2)])
print("largest difference, 1×8 vs 4×2:", (one - four).abs().max().item())
assert (one - four).abs().max() < 1e-5 * one.abs().max()

# %% [markdown]
# ## The real loop
#
# `train()` does all of this plus validation, checkpoints (`best/`, `last/`), the metrics log and
# exact resume. `configs/tiny.toml` is a run small enough for a minute.

# %%
with tempfile.TemporaryDirectory() as out:
    model_cfg, train_cfg = load_run_config(
        SHIPPED / "configs" / "tiny.toml",
        {
            "train": {
                "out": out,
                "max_steps": 20 if QUICK else 200,
                "eval_every": 10 if QUICK else 100,
                "data": [str(SHIPPED / "data" / "train.jsonl")],
                "valid_data": str(SHIPPED / "data" / "valid.jsonl"),
                "tokenizer": str(SHIPPED / "tokenizer" / "minitune.model"),
            }
        },
    )
    summary = train(model_cfg, train_cfg, progress=False)
    print(summary)
    rows = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in rows if "loss" in r]
    assert summary["step"] == train_cfg.max_steps and train_losses[-1] < train_losses[0]

# %% [markdown]
# **Exercise.** Set `clip_grad=0` and a learning rate 10× higher in the overfitting cell. What
# happens to the loss curve? Then try `optimizer="adafactor"` (T5's optimizer, `minitune/optim.py`).
