# %% [markdown]
# # 4. The loss
#
# Instruction tuning trains the model to make the target likely given the prompt. For pairs
# (xᵢ, yᵢ) it minimises
#
#     L(θ) = − Σᵢ log p(yᵢ | xᵢ, θ) = − Σᵢ Σₜ log p(yᵢ,ₜ | yᵢ,<ₜ, xᵢ, θ)
#
# a sum over target tokens: the probability of a sequence is the product of its next-token
# probabilities. `minitune/loss.py` computes it (`token_nll_sum`, `cross_entropy_loss`).

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
import math

import torch
import torch.nn.functional as F

from minitune import ModelConfig, Seq2SeqTransformer, cross_entropy_loss, shift_right, token_nll_sum
from minitune.kit.tutorial import SHIPPED

torch.manual_seed(0)

# %% [markdown]
# ## A worked example
#
# One position, three-word vocabulary, probabilities (0.5, 0.25, 0.25), true word 0: the loss is
# −log 0.5 ≈ 0.693. A label −100 marks a padding position: ignored, not counted.

# %%
logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]]))  # (B=1, T=2, V=3)
labels = torch.tensor([[0, -100]])
total, count = token_nll_sum(logits, labels)
print(total.item(), count.item(), -math.log(0.5))
assert count.item() == 1 and math.isclose(total.item(), -math.log(0.5), rel_tol=1e-6)

# %% [markdown]
# ## Teacher forcing
#
# In training the decoder does not read its own guesses: it reads the *true* previous tokens, the
# target shifted right behind a start token (`shift_right`). All positions are then predicted in
# one forward pass, and the causal mask keeps each from seeing its own answer.

# %%
target = torch.tensor([[7, 8, 9, 1]])  # "a b c <eos>"
print("decoder reads  ", shift_right(target, start_id=0, pad_id=0).tolist())
print("and must write ", target.tolist())
assert shift_right(target, start_id=0, pad_id=0).tolist() == [[0, 7, 8, 9]]

# %% [markdown]
# ## One real example, as the training loop sees it
#
# Two records from the shipped suite go through `encode_records` (tokenize, add EOS) and
# `collate` (pad to the longest in the batch), the exact path of `minitune train`. Printed token
# by token: the prompt goes to the **encoder**; the **labels** are the answer, −100 where the
# shorter answer is padded; the **decoder input** is `shift_right(labels)`, so at position t the
# decoder reads label t−1 and must write label t; the **loss** counts the positions whose label
# is not −100.

# %%
from minitune import Tokenizer
from minitune.data.batching import collate, encode_records
from minitune.data.formats import read_records

tok = Tokenizer(SHIPPED / "tokenizer" / "minitune.model")
suite = read_records(SHIPPED / "data" / "train.jsonl")
pair = [next(r for r in suite if r.meta["task"] == task) for task in ("date_format", "uppercase")]
examples, _ = encode_records(pair, tok, max_source_length=64, max_target_length=32)
batch = collate(examples, tok.pad_id)  # input_ids, attention_mask (B, S); labels (B, T)
decoder_inputs = shift_right(batch["labels"], start_id=0, pad_id=tok.pad_id)  # (B, T)


def piece(i: int) -> str:
    """A token as text: its piece, or -100 for an ignored label."""
    return "-100" if i == -100 else tok.piece(i).replace("\n", "\\n")


def aligned(rows: dict[str, list[str]]) -> str:
    """Rows of cells, one column per position, each column as wide as its widest cell."""
    names = max(len(name) for name in rows)  # the row names, right-aligned in one column
    cells = list(rows.values())
    widths = [max(len(row[t]) for row in cells) for t in range(len(cells[0]))]
    return "\n".join(
        (
            f"{name:>{names}} " + " ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        ).rstrip()
        for name, row in rows.items()
    )


for b in range(2):
    labels, reads = batch["labels"][b].tolist(), decoder_inputs[b].tolist()
    print(f"--- example {b} ({pair[b].meta['task']}): the prompt, read by the encoder")
    print(tok.decode(batch["input_ids"][b]))
    print(f"--- the decoder's {len(labels)} positions")
    print(
        aligned(
            {
                "position": [str(t) for t in range(len(labels))],
                "decoder reads": ["<start>", *[piece(i) for i in reads[1:]]],
                "label": [piece(i) for i in labels],
                "loss counts": ["yes" if i != -100 else "no" for i in labels],
            }
        )
    )
    print()

labels = batch["labels"]
_, counted = token_nll_sum(torch.zeros(*labels.shape, tok.vocab_size), labels)
answer_tokens = sum(len(e.target) for e in examples)  # every answer token, EOS included
print(f"the loss counts {counted.item()} positions: the {answer_tokens} answer tokens, no padding")
assert counted.item() == (labels != -100).sum().item() == answer_tokens
assert (decoder_inputs[:, 0] == 0).all()  # position 0 reads the start token (pad, as in T5)
real = labels[:, :-1] != -100
assert torch.equal(decoder_inputs[:, 1:][real], labels[:, :-1][real])  # reads label t-1 at t

# %% [markdown]
# **Why no prompt mask?** The prompt is not in the labels at all: it lives in another tensor,
# `input_ids`, read by the encoder, and the decoder's sequence is the answer alone. So every
# label that is not padding is an answer token, and the loss is the answer's −log p by
# construction. A **decoder-only** model (GPT-style fine-tuning) reads one sequence, prompt and
# answer joined, and predicts every next token of it; to train only on the answer, the labels
# of the prompt's positions must be set to −100 by hand (a "prompt mask"). Forget it, and the
# model also learns to write prompts. Here is the same example laid out that way:

# %%
prompt_ids, answer_ids = examples[1].source[:-1], examples[1].target  # prompt without its EOS
joined = prompt_ids + answer_ids
# the next-token labels of a decoder-only model: position t predicts token t+1
unmasked = [*joined[1:], -100]
masked = [*[-100] * (len(prompt_ids) - 1), *answer_ids, -100]
print(
    aligned(
        {
            "sequence": [piece(i) for i in joined],
            "next (no mask)": [piece(i) for i in unmasked],
            "next (masked)": [piece(i) for i in masked],
        }
    )
)
n_masked = sum(i != -100 for i in masked)
n_unmasked = sum(i != -100 for i in unmasked)
print(f"decoder-only: {n_unmasked} loss positions without the prompt mask, {n_masked} with it")
print(f"encoder-decoder: {len(answer_ids)}, with no mask to remember")
assert n_masked == len(answer_ids) < n_unmasked  # the mask removes exactly the prompt's tokens

# %% [markdown]
# ## Padding is ignored, and accumulation is exact
#
# Batches mix short and long targets; padding positions get label −100. The loss of a batch is
# the summed token loss divided by the number of real target tokens N — so splitting a batch into
# micro-batches and dividing each by the *total* N gives exactly the same gradient
# (`minitune.train.forward_backward`; `tests/test_train.py` checks 4×2 == 1×8).

# %%
cfg = ModelConfig.preset("tiny")
model = Seq2SeqTransformer(cfg)
x = torch.randint(3, 128, (4, 6))
y = torch.randint(3, 128, (4, 5))
y[2:, 3:] = -100  # two shorter targets
dec = shift_right(y, 0, 0)


def grads(loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


whole = grads(cross_entropy_loss(model(x, dec), y))
n = (y != -100).sum()
halves = sum(
    token_nll_sum(model(x[i : i + 2], dec[i : i + 2]), y[i : i + 2])[0] / n for i in (0, 2)
)
right_way = (grads(halves) - whole).abs().max().item()
print("largest gradient difference:", right_way)
assert right_way < 1e-6, "dividing by the total token count should give the big batch's gradient"
wrong = sum(
    cross_entropy_loss(model(x[i : i + 2], dec[i : i + 2]), y[i : i + 2]) / 2 for i in (0, 2)
)
wrong_way = (grads(wrong) - whole).abs().max().item()
print("averaging per micro-batch instead:", wrong_way)
assert wrong_way > 100 * right_way  # the short targets' tokens weigh more: another gradient

# %% [markdown]
# ## Label smoothing
#
# With smoothing ε the target is (1 − ε)·one-hot + ε/V: the model is penalised for being
# *certain*, which can help generalisation. The minimum of the loss is then no longer 0:

# %%
confident = torch.tensor([[[20.0, 0.0, 0.0]]])
for eps in (0.0, 0.1):
    print(
        f"ε={eps}: loss of a very confident right answer = "
        f"{cross_entropy_loss(confident, torch.tensor([[0]]), eps).item():.3f}"
    )
print(
    "same as PyTorch's:",
    F.cross_entropy(confident[0], torch.tensor([0]), label_smoothing=0.1).item(),
)
sharp, smoothed = (cross_entropy_loss(confident, torch.tensor([[0]]), e).item() for e in (0.0, 0.1))
assert sharp < 1e-6 and smoothed > 1.0  # smoothing charges for over-confidence
assert math.isclose(
    smoothed,
    F.cross_entropy(confident[0], torch.tensor([0]), label_smoothing=0.1).item(),
    rel_tol=1e-6,
)

# %% [markdown]
# **Exercise.** What is the loss of a model that predicts the uniform distribution over a
# vocabulary of 3,000? (log 3000 ≈ 8.0 — the first value in a training log.)
