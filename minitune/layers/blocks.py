"""Encoder and decoder blocks: attention and feed-forward sub-layers with residual connections.

Shapes: x is (B, T, C) decoder or (B, S, C) encoder; `memory` is the encoder output (B, S, C).

The attention, feed-forward and norm of each sub-layer are the variants the config names
(`build("attention", cfg)` looks the name up in layers/registry.py).

Every sub-layer f (attention or feed-forward) is wrapped the same way, in one of two orders:

    pre-norm  (T5, GPT-2):   x = x + dropout(f(norm(x)))     a final norm follows the last block
    post-norm (2017 paper):  x = norm(x + dropout(f(x)))
"""

from __future__ import annotations

import torch
from torch import nn

from minitune.config import ModelConfig
from minitune.layers.attention import KVCache
from minitune.layers.positions import PositionScheme
from minitune.layers.registry import build


class Residual(nn.Module):
    """A sub-layer with its norm, dropout and residual connection, in pre- or post-norm order."""

    def __init__(self, cfg: ModelConfig, sublayer: nn.Module):
        super().__init__()
        self.sublayer = sublayer
        self.norm = build("norm", cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.pre_norm = cfg.norm_position == "pre"

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.pre_norm:
            out = x + self.dropout(self.sublayer(self.norm(x), **kwargs))
        else:
            out = self.norm(x + self.dropout(self.sublayer(x, **kwargs)))
        return clamp_fp16(out)


def clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """In a float16 model, keep activations inside float16's range (max 65504).

    T5's residual stream grows large (no 1/sqrt(D) scaling, unscaled feed-forward outputs) and
    overflows float16 to inf; T5 clamps it in the same way. No-op for any other dtype. Training
    T5 in fp16 autocast is refused instead (`minitune.train`): use bf16.
    """
    if x.dtype != torch.float16:
        return x
    limit = torch.finfo(torch.float16).max - 1000
    return x.clamp(min=-limit, max=limit)


class EncoderLayer(nn.Module):
    """Bidirectional self-attention, then feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Residual(cfg, build("attention", cfg))
        self.ff = Residual(cfg, build("ffn", cfg))

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None, position: PositionScheme | None = None
    ) -> torch.Tensor:
        x = self.self_attn(x, bias=bias, position=position)  # (B, S, C)
        return self.ff(x)  # (B, S, C)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, then feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Residual(cfg, build("attention", cfg))
        self.cross_attn = Residual(cfg, build("attention", cfg, is_cross=True))
        self.ff = Residual(cfg, build("ffn", cfg))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_bias: torch.Tensor | None,
        cross_bias: torch.Tensor | None,
        self_cache: KVCache | None = None,
        cross_cache: KVCache | None = None,
        position: PositionScheme | None = None,
    ) -> torch.Tensor:
        x = self.self_attn(x, bias=self_bias, cache=self_cache, position=position)  # (B, T, C)
        x = self.cross_attn(x, memory=memory, bias=cross_bias, cache=cross_cache)  # (B, T, C)
        return self.ff(x)  # (B, T, C)
