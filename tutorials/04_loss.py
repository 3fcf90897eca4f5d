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
import math

import torch
import torch.nn.functional as F

from minitune import ModelConfig, Seq2SeqTransformer, cross_entropy_loss, shift_right, token_nll_sum

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
