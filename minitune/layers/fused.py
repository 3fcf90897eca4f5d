"""Fused projections for the fast path: several Linear layers that read the same input, as one
matmul.

Attention projects x three times (W_q x, W_k x, W_v x) and a gated feed-forward twice (W_i0 x,
W_i1 x). Stacking the weights, W = [W_q; W_k; W_v], gives the same numbers with one matrix
multiplication: one read of x, one kernel launch, a larger and more efficient matmul. The model
keeps the separate Linear layers (their names are T5's, LoRA adapts them one by one), and the
reference path uses them one by one; only the fast path calls `stacked`.

In training (and validation) the stacked weight is rebuilt at every forward (torch.cat is
differentiable, and it costs one copy of the weights, small next to the matmuls of a batch).
When decoding (inference mode) it is built once and reused until a weight changes (PyTorch bumps
a tensor's `_version` at every in-place update, as an optimizer step or load_state_dict does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Stacked:
    """A cache of the stacked weight (and bias) of some Linear layers of one module."""

    def __init__(self):
        self.key: tuple | None = None
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, linears: list[nn.Module]) -> torch.Tensor | None:
        """x projected by all `linears` at once, (..., sum of out_features); None when one of
        them is not a plain nn.Linear (e.g. carries a LoRA adapter): project one by one then."""
        if not all(type(lin) is nn.Linear for lin in linears):
            return None
        weights = [lin.weight for lin in linears]
        biases = [lin.bias for lin in linears if lin.bias is not None]
        if not torch.is_inference_mode_enabled():  # rebuilt each forward; gradients flow back
            weight = torch.cat(weights)  # (Σ out_features, in_features)
            bias = torch.cat(biases) if biases else None
            return F.linear(x, weight, bias)
        key = tuple((t.data_ptr(), t._version) for t in weights + biases)
        if key != self.key:  # first use, or a weight changed since
            self.weight = torch.cat(weights)  # (Σ out_features, in_features)
            self.bias = torch.cat(biases) if biases else None
            self.key = key
        return F.linear(x, self.weight, self.bias)
