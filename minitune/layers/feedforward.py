"""Position-wise feed-forward layers, chosen by name (`ModelConfig.ffn`).

Shapes: x is (B, T, C) with C = d_model; the hidden layer has width F = d_ff.

    relu        FF(x) = W_o · relu(W_i x)                    (2017 paper, T5 v1.0)
    gelu        FF(x) = W_o · gelu(W_i x)                    (exact, erf-based GELU)
    gated-gelu  FF(x) = W_o · (gelu_tanh(W_i0 x) ⊙ W_i1 x)   (T5 v1.1 / Flan-T5; tanh GELU)
    swiglu      FF(x) = W_o · (silu(W_i0 x) ⊙ W_i1 x)        (Shazeer 2020, LLaMA)

The gated variants have a third matrix; at equal d_ff they have 1.5× the parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from minitune.layers.base import Layer

if TYPE_CHECKING:
    from minitune.config import ModelConfig


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


# name -> (activation, gated?)
ACTIVATIONS = {
    "relu": (F.relu, False),
    "gelu": (F.gelu, False),
    "gated-gelu": (_gelu_tanh, True),
    "swiglu": (F.silu, True),
}


class FeedForward(Layer):
    """One feed-forward sub-layer: expand to d_ff, activate (and gate), project back to d_model."""

    kind: str | None = None  # the activation; None: cfg.ffn. A subclass may fix it ("relu").

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        kind = self.kind or cfg.ffn
        if kind not in ACTIVATIONS:
            allowed = ", ".join(ACTIVATIONS)
            raise ValueError(f"unknown feed-forward activation {kind!r}; allowed: {allowed}")
        self.kind = kind
        self.activation, self.gated = ACTIVATIONS[kind]
        C, F_, bias = cfg.d_model, cfg.d_ff, cfg.bias
        self.wi = nn.Linear(C, F_, bias=bias)  # W_i (W_i0 when gated)
        self.wi_gate = nn.Linear(C, F_, bias=bias) if self.gated else None  # W_i1
        self.wo = nn.Linear(F_, C, bias=bias)  # W_o
        self.dropout = nn.Dropout(cfg.dropout)

    def init_weights(self) -> None:
        """T5's init: each matrix ~ N(0, 1/fan_in)."""
        for linear in (self.wi, self.wi_gate, self.wo):
            if linear is not None:
                nn.init.normal_(linear.weight, std=linear.in_features**-0.5)
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """FF(x) = W_o · (act(W_i x) ⊙ W_i1 x), the gate only in gated variants; (B, T, C)."""
        h = self.activation(self.wi(x))  # (B, T, F)
        if self.wi_gate is not None:
            h = h * self.wi_gate(x)  # the gate: elementwise product with a second projection
        return self.wo(self.dropout(h))  # (B, T, C)
