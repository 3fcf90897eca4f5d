"""QK-norm attention: RMS-normalise each head's queries and keys before the dot product.

Plain attention scores q · k grow with the size of q and k, and in long or low-precision training
they can grow until the softmax saturates and training diverges ("attention logit growth").
Normalising q and k per head (Dehghani et al. 2023, ViT-22B; OLMo 2 does the same) bounds every
score:

    q' = q / rms(q) · g_q        k' = k / rms(k) · g_k        rms(x) = sqrt(mean(x²) + eps)
    score = s · q' · k'          (|q' · k'| <= D · max|g|², whatever the inputs)

This file is a worked example of a variant that changes one step of `Attention`: it subclasses
it, overrides one step (`project`: normalise what the plain projections give), and is registered
with one line in layers/registry.py ("qk-norm"). Its scores are computed on the reference path
(`Attention.attend`); see docs/extending.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from minitune.layers.attention import Attention
from minitune.layers.norm import rms_normalize

if TYPE_CHECKING:
    from minitune.config import ModelConfig


class QKNormAttention(Attention):
    """`Attention` with RMS-normalised queries and keys (learned gains g_q, g_k of width D)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.eps = cfg.norm_eps
        self.q_gain = nn.Parameter(torch.ones(cfg.d_head))  # g_q
        self.k_gain = nn.Parameter(torch.ones(cfg.d_head))  # g_k

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.ones_(self.q_gain)
        nn.init.ones_(self.k_gain)

    def project(
        self, x: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The plain projections, then q' = q / rms(q) · g_q and k' = k / rms(k) · g_k per head.

        Keys read back from the cache (k None) were normalised when they were stored."""
        q, k, v = super().project(x, context)  # q (B, H, T_q, D); k, v (B, H_kv, T_k, D) or None
        q = rms_normalize(q, self.q_gain, self.eps).to(q.dtype)
        if k is not None:
            k = rms_normalize(k, self.k_gain, self.eps).to(k.dtype)
        return q, k, v
