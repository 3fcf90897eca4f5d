# %% [markdown]
# # 8. A real Flan-T5: load it, tune it further, adapt it with LoRA
#
# minitune reads Hugging Face-layout T5 and Flan-T5 folders with its own code
# (`minitune/interop/t5.py`: `config.json` mapped onto `ModelConfig`, tensor names mapped onto ours) —
# no `transformers` at run time. The parity tests show the logits equal the reference's.
#
# Put a local copy of a checkpoint (e.g. `flan-t5-small`: `config.json`, `model.safetensors`,
# `spiece.model`) in a folder and set `FLAN_T5=path/to/it`. Without one, this tutorial builds a
# **small random T5 in the same layout** (with minitune's own tokenizer as `spiece.model`) and
# says so: every step runs the same, only the answers are nonsense.

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
import os
import tempfile
from pathlib import Path

import torch

import minitune
from minitune.kit.tutorial import QUICK, SHIPPED
from minitune.lora import add_lora, count_parameters, merge_lora
from minitune.run.checkpoint import load_model
from minitune.run.settings import load_run_config
from minitune.train import train

folder = os.environ.get("FLAN_T5")
if folder and (Path(folder) / "config.json").is_file():
    print(f"using the checkpoint in {folder}")
else:
    folder = tempfile.mkdtemp(prefix="random-t5-")
    torch.manual_seed(0)
    cfg = minitune.ModelConfig.preset(
        "t5-v1_1-small",
        vocab_size=3000,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_ff=128,
        n_encoder_layers=2,
        n_decoder_layers=2,
    )
    minitune.export_t5(
        minitune.Seq2SeqTransformer(cfg),
        folder,
        tokenizer_file=SHIPPED / "tokenizer" / "minitune.model",
    )
    print(f"no FLAN_T5 folder: built a small RANDOM T5 (v1.1 layout) in {folder}")
print(sorted(p.name for p in Path(folder).iterdir()))
print(json.loads((Path(folder) / "config.json").read_text())["feed_forward_proj"])
assert (Path(folder) / "spiece.model").is_file() and (Path(folder) / "config.json").is_file()

# %% [markdown]
# ## Load and generate
#
# `load_t5` returns a `Seq2SeqTransformer` in eval mode; the tokenizer is the folder's
# `spiece.model`. Flan-T5 was instruction-tuned by Google on 1,800+ tasks, so a real one answers
# plain instructions.

# %%
model = minitune.load_t5(folder)
tok = minitune.Tokenizer(Path(folder) / "spiece.model")
print(model.config.ffn, model.config.scale_attention, model.config.tie_embeddings)
assert model.config.ffn == "gated-gelu" and not model.config.scale_attention  # T5 v1.1's switches
prompt = "Translate to French: The cat sleeps."
batch = tok.encode_batch([prompt])
print(tok.decode(model.generate(batch.input_ids, batch.attention_mask, max_new_tokens=16)[0]))

# %% [markdown]
# ## Instruction-tune it further
#
# `--init FOLDER` starts training from the checkpoint (its own config and tokenizer); everything
# else is the usual loop: `minitune train --init path/to/flan-t5-small --data my.jsonl`.

# %%
runs = Path(tempfile.mkdtemp(prefix="minitune-t5-tune-"))
common = {
    "data": [str(SHIPPED / "data" / "train.jsonl")],
    "valid_data": None,
    "valid_fraction": 0,
    "init": folder,
    "max_steps": 30 if QUICK else 200,
    "batch_size": 8,
    "lr": 3e-4,
    "warmup_steps": 2,
}
model_cfg, train_cfg = load_run_config(
    SHIPPED / "configs" / "tiny.toml", {"train": {**common, "out": str(runs / "full")}}
)
train(model_cfg, train_cfg, progress=False)
tuned, info = load_model(runs / "full" / "last")


def losses_of(run: Path) -> list[float]:
    """The training losses a run logged in its metrics.jsonl (one row every log_every steps)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


full_losses = losses_of(runs / "full")
print(
    f"fine-tuned for {info['step']} steps, all {tuned.num_parameters():,} parameters trained: "
    f"loss {full_losses[0]:.2f} -> {full_losses[-1]:.2f}"
)
assert full_losses[-1] < full_losses[0], "further tuning should lower the loss"
assert info["step"] == train_cfg.max_steps

# %% [markdown]
# ## LoRA: train 1% of the parameters
#
# LoRA (`minitune/lora.py`) freezes every weight W and learns a low-rank update B·A next to the
# chosen projections (default: q and v of every attention layer): y = W x + (α/r)·B A x. B starts
# at zero, so training starts exactly from the checkpoint. Checkpoints hold only A and B.

# %%
probe = minitune.load_t5(folder)
add_lora(probe, rank=4)
trainable, total = count_parameters(probe)
print(f"LoRA rank 4: {trainable:,} trainable of {total:,} ({100 * trainable / total:.1f}%)")
assert 0 < trainable < 0.1 * total  # a few adapters, the rest frozen

model_cfg, train_cfg = load_run_config(
    SHIPPED / "configs" / "tiny.toml",
    {"train": {**common, "out": str(runs / "lora"), "lora_rank": 4, "lr": 1e-3}},
)
train(model_cfg, train_cfg, progress=False)
print(sorted(p.name for p in (runs / "lora" / "last").iterdir()))  # adapter.safetensors, no model
lora_losses = losses_of(runs / "lora")
print(f"LoRA: loss {lora_losses[0]:.2f} -> {lora_losses[-1]:.2f}, 1% of the weights moving")
saved = {p.name for p in (runs / "lora" / "last").iterdir()}
assert "adapter.safetensors" in saved and "model.safetensors" not in saved

# %% [markdown]
# Loading an adapter checkpoint rebuilds the base (checked by a hash of its weights) and adds the
# adapters; merging folds them into the weights, W' = W + (α/r)·B A: as fast as the base.

# %%
adapted, info = load_model(runs / "lora" / "last")
x = batch.input_ids
start = torch.zeros(1, 1, dtype=torch.long)
before = adapted(x, start)
merge_lora(adapted)
print("merged == unmerged:", torch.allclose(adapted(x, start), before, atol=1e-5))
assert torch.allclose(adapted(x, start), before, atol=1e-5), "merging must not change the answer"

# %% [markdown]
# **Exercise.** With a real Flan-T5, compare full fine-tuning and LoRA ranks 4 and 16 on your own
# instruction file: quality, minutes, and checkpoint size.
