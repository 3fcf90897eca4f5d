"""Fused projections for the fast path: several Linear layers that read the same input, as one
matmul.

Attention projects x three times (W_q x, W_k x, W_v x) and a gated feed-forward twice (W_i0 x,
W_i1 x). Stacking the weights, W = [W_q; W_k; W_v], gives the same numbers with one matrix
multiplication: one read of x, one kernel launch, a larger and more efficient matmul. The model
keeps the separate Linear layers (their names are T5's, LoRA adapts them one by one), and the
teaching path (minitune/layers/) uses them one by one; only the fast path (`FastAttention` in
fast/attention.py, `FastFeedForward` in fast/feedforward.py) calls `stacked_linear`.

In training (and validation) the stacked weight is rebuilt at every forward (torch.cat is
differentiable, and it costs one copy of the weights, small next to the matmuls of a batch).
When decoding (inference mode) it is built once and kept until a weight changes: PyTorch bumps a
tensor's `_version` at every in-place update, as an optimizer step or load_state_dict does. The
kept weights live in a table keyed weakly by the first Linear, so they go when the model goes and
the layers themselves hold no extra state.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

# first Linear -> (key of the weights it was built from, stacked weight, stacked bias)
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stacked_linear(x: torch.Tensor, linears: list[nn.Module]) -> torch.Tensor | None:
    """x projected by all `linears` at once, (..., sum of out_features); None when one of them is
    not a plain nn.Linear (e.g. carries a LoRA adapter): project one by one then.

    Example: linears W_q (C -> 64), W_k (C -> 64), W_v (C -> 64) -> one (C -> 192) matmul, whose
    output columns 0..63 are W_q x, 64..127 W_k x, 128..191 W_v x."""
    if not all(type(lin) is nn.Linear for lin in linears):
        return None
    weights = [lin.weight for lin in linears]
    biases = [lin.bias for lin in linears if lin.bias is not None]
    if not torch.is_inference_mode_enabled():  # rebuilt each forward; gradients flow back
        weight = torch.cat(weights)  # (Σ out_features, in_features)
        bias = torch.cat(biases) if biases else None
        return F.linear(x, weight, bias)
    key = tuple((t.data_ptr(), t._version) for t in weights + biases)
    kept = _KEPT.get(linears[0])
    if kept is None or kept[0] != key:  # first use, or a weight changed since
        kept = (key, torch.cat(weights), torch.cat(biases) if biases else None)
        _KEPT[linears[0]] = kept
    return F.linear(x, kept[1], kept[2])
