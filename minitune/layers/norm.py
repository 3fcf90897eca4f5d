"""Normalisation layers: LayerNorm and RMSNorm, chosen by name (`ModelConfig.norm`).

Shapes: x is (..., C) with C = d_model; the statistics are taken over the last axis only.
Both are built from the config, `RMSNorm(cfg)`, as the registry (layers/registry.py) expects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from minitune.layers.base import Layer

if TYPE_CHECKING:
    from minitune.config import ModelConfig


class RMSNorm(Layer):
    """Root-mean-square norm (Zhang & Sennrich 2019), the norm of T5.

        y = x / sqrt(mean(x²) + eps) · g

    No mean is subtracted and there is no bias. The mean of squares is computed in float32 even
    when x is bf16/fp16 (as T5 does), because squaring small-format numbers loses precision.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.eps = cfg.norm_eps
        self.weight = nn.Parameter(torch.ones(cfg.d_model))  # g

    def init_weights(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_normalize(x, self.weight, self.eps)


def rms_normalize(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """y = x / sqrt(mean(x²) + eps) · weight over the last axis, the statistics in at least fp32.

    A half-precision weight (a bf16/fp16 model) gives a half-precision result; otherwise the
    result has the wider of the two dtypes."""
    wide = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 for float64 input
    variance = x.to(wide).pow(2).mean(dim=-1, keepdim=True)  # mean(x²), (..., 1)
    y = x.to(wide) * torch.rsqrt(variance + eps)
    if weight.dtype in (torch.float16, torch.bfloat16):
        y = y.to(weight.dtype)  # a half-precision model stays in half precision
    return weight * y


class LayerNorm(nn.LayerNorm, Layer):
    """LayerNorm (Ba et al. 2016): y = (x - mean(x)) / sqrt(var(x) + eps) · g + b.

    PyTorch's own, with the bias made optional (`ModelConfig.bias`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg.d_model, eps=cfg.norm_eps, elementwise_affine=True, bias=cfg.bias)

    def init_weights(self) -> None:
        self.reset_parameters()  # g = 1, b = 0
