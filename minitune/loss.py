"""The instruction-tuning loss: token-level cross entropy with padding ignored.

For N (prompt x_i, target y_i) pairs, instruction tuning minimises

    L(θ) = -Σ_i log p(y_i | x_i, θ)

The decoder factorises each target's probability over its tokens (teacher forcing: the decoder
sees the true earlier tokens y_i,<t),

    log p(y_i | x_i, θ) = Σ_t log p(y_i,t | y_i,<t, x_i, θ)

so L is a sum of per-token cross entropies, -log softmax(logits)[true token]. Padding positions
carry the label -100 and are left out. Dividing the sum by the number of target tokens gives the
mean per token, the usual training loss; for gradient accumulation, sum over micro-batches first
and divide once by the total count (`token_nll_sum`), so that 4 micro-batches of 2 give the same
gradient as one batch of 8.

Shapes: logits (B, T, V), labels (B, T) with -100 where there is no target token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label value of positions that do not count (padding)


def token_nll_sum(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over target tokens of -log p(token), and the number of target tokens.

    With label smoothing ε the target distribution is (1-ε)·one_hot + ε/V, which discourages
    over-confident logits. Returns (loss_sum: float32 scalar, n_tokens: int64 scalar).

    Example: one position with probabilities (0.5, 0.25, 0.25) and true token 0 gives
    -log 0.5 = 0.693; a second position labelled -100 adds nothing and is not counted.
    """
    V = logits.shape[-1]
    loss_sum = F.cross_entropy(
        logits.reshape(-1, V).float(),  # (B·T, V); float32 so the log-sum-exp is exact enough
        labels.reshape(-1),  # (B·T,)
        ignore_index=IGNORE_INDEX,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    n_tokens = (labels != IGNORE_INDEX).sum()
    return loss_sum, n_tokens


def cross_entropy_loss(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean of -log p(token) over the target tokens of the batch (padding ignored)."""
    loss_sum, n_tokens = token_nll_sum(logits, labels, label_smoothing)
    return loss_sum / n_tokens.clamp(min=1)
