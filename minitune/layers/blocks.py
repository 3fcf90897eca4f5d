"""Encoder and decoder blocks: attention and feed-forward sub-layers with residual connections.

Shapes: x is (B, T, C) decoder or (B, S, C) encoder; `memory` is the encoder output (B, S, C).

Every sub-layer f (attention or feed-forward) is wrapped the same way, in one of two orders:

    pre-norm  (T5, GPT-2):   x = x + dropout(f(norm(x)))     a final norm follows the last block
    post-norm (2017 paper):  x = norm(x + dropout(f(x)))
"""

from __future__ import annotations

import torch
from torch import nn

from minitune.config import ModelConfig
from minitune.layers.attention import Attention, KVCache
from minitune.layers.feedforward import FeedForward
from minitune.layers.norm import build_norm


class Residual(nn.Module):
    """A sub-layer with its norm, dropout and residual connection, in pre- or post-norm order."""

    def __init__(self, cfg: ModelConfig, sublayer: nn.Module):
        super().__init__()
        self.sublayer = sublayer
        self.norm = build_norm(cfg.norm, cfg.d_model, cfg.norm_eps, cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.pre_norm = cfg.norm_position == "pre"

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.pre_norm:
            return x + self.dropout(self.sublayer(self.norm(x), **kwargs))
        return self.norm(x + self.dropout(self.sublayer(x, **kwargs)))


class EncoderLayer(nn.Module):
    """Bidirectional self-attention, then feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Residual(cfg, Attention(cfg))
        self.ff = Residual(cfg, FeedForward(cfg.d_model, cfg.d_ff, cfg.ffn, cfg.dropout, cfg.bias))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn(x, bias=bias)  # (B, S, C)
        return self.ff(x)  # (B, S, C)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, then feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Residual(cfg, Attention(cfg))
        self.cross_attn = Residual(cfg, Attention(cfg, is_cross=True))
        self.ff = Residual(cfg, FeedForward(cfg.d_model, cfg.d_ff, cfg.ffn, cfg.dropout, cfg.bias))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_bias: torch.Tensor | None,
        cross_bias: torch.Tensor | None,
        self_cache: KVCache | None = None,
        cross_cache: KVCache | None = None,
    ) -> torch.Tensor:
        x = self.self_attn(x, bias=self_bias, cache=self_cache)  # (B, T, C)
        x = self.cross_attn(x, memory=memory, bias=cross_bias, cache=cross_cache)  # (B, T, C)
        return self.ff(x)  # (B, T, C)
