"""Normalisation layers: LayerNorm and RMSNorm, chosen by name (`ModelConfig.norm`).

Shapes: x is (..., C) with C = d_model; the statistics are taken over the last axis only.
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019), the norm of T5.

        y = x / sqrt(mean(x²) + eps) · g

    No mean is subtracted and there is no bias. The mean of squares is computed in float32 even
    when x is bf16/fp16 (as T5 does), because squaring small-format numbers loses precision.
    """

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))  # g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean(x²) over the channel axis, in float32
        variance = x.float().pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        y = x.float() * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            y = y.to(self.weight.dtype)  # a half-precision model stays in half precision
        return self.weight * y


class LayerNorm(nn.LayerNorm):
    """LayerNorm (Ba et al. 2016): y = (x - mean(x)) / sqrt(var(x) + eps) · g + b.

    PyTorch's own, with the bias made optional (`ModelConfig.bias`).
    """

    def __init__(self, d_model: int, eps: float = 1e-6, bias: bool = True):
        super().__init__(d_model, eps=eps, elementwise_affine=True, bias=bias)


def build_norm(name: str, d_model: int, eps: float, bias: bool) -> nn.Module:
    """The norm called `name` ("rms" or "layer")."""
    if name == "rms":
        return RMSNorm(d_model, eps)
    if name == "layer":
        return LayerNorm(d_model, eps, bias=bias)
    raise ValueError(f"unknown norm {name!r}; allowed: 'rms', 'layer'")
