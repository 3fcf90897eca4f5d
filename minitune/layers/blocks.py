"""Encoder and decoder blocks: attention and feed-forward sub-layers with residual connections.

Shapes: x is (B, T, C) decoder or (B, S, C) encoder; `memory` is the encoder output (B, S, C).

A block is built from T5's own layers, constructed directly below: `Attention` (attention.py),
`FeedForward` (feedforward.py) and `RMSNorm` (norm.py); a config that names another variant gets
it from layers/registry.py. (`model.set_impl("fast")` later swaps attention and feed-forward for
their production twins in minitune/fast/: the same parameters and numbers, fused kernels.)

Every sub-layer f (attention or feed-forward) is wrapped the same way, in one of two orders:

    pre-norm  (T5, GPT-2):   x = x + dropout(f(norm(x)))     a final norm follows the last block
    post-norm (2017 paper):  x = norm(x + dropout(f(x)))
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute_in_backward

from minitune.layers import registry
from minitune.layers.attention import Attention, KVCache
from minitune.layers.norm import RMSNorm
from minitune.layers.positions import PositionScheme

if TYPE_CHECKING:
    from minitune.config import ModelConfig


def make_attention(cfg: ModelConfig, is_cross: bool = False) -> nn.Module:
    """T5's multi-head `Attention`, or the variant `cfg.attention` names."""
    if cfg.attention == "multi-head":
        return Attention(cfg, is_cross)
    return registry.resolve("attention", cfg.attention)(cfg, is_cross)


def make_feed_forward(cfg: ModelConfig) -> nn.Module:
    """The feed-forward layer `cfg.ffn` names (`FeedForward` for the built-in activations)."""
    return registry.build("ffn", cfg)


def make_norm(cfg: ModelConfig) -> nn.Module:
    """T5's RMSNorm, or the variant `cfg.norm` names."""
    return RMSNorm(cfg) if cfg.norm == "rms" else registry.build("norm", cfg)


class Residual(nn.Module):
    """A sub-layer with its norm, dropout and residual connection, in pre- or post-norm order."""

    def __init__(self, cfg: ModelConfig, sublayer: nn.Module):
        super().__init__()
        self.sublayer = sublayer
        self.norm = make_norm(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.pre_norm = cfg.norm_position == "pre"

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.pre_norm:
            out = x + self.dropout(self.sublayer(self.norm(x), **kwargs))
        else:
            out = self.norm(x + self.dropout(self.sublayer(x, **kwargs)))
        if out.dtype == torch.float16:  # only a model cast with .half(): see clamp_fp16
            out = clamp_fp16(out)
        return out


def clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """In a float16 model, keep activations inside float16's range (max 65504).

    T5's residual stream grows large (no 1/sqrt(D) scaling, unscaled feed-forward outputs) and
    overflows float16 to inf; T5 clamps it in the same way. Training T5 in fp16 autocast is
    refused instead (`minitune.train`): use bf16.
    """
    limit = torch.finfo(torch.float16).max - 1000
    return x.clamp(min=-limit, max=limit)


class EncoderLayer(nn.Module):
    """Bidirectional self-attention, then feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Residual(cfg, make_attention(cfg))
        self.ff = Residual(cfg, make_feed_forward(cfg))

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: torch.Tensor | None,
        rotary: PositionScheme | None = None,
    ) -> torch.Tensor:
        x = self.self_attn(x, attn_bias=attn_bias, rotary=rotary)  # (B, S, C)
        return self.ff(x)  # (B, S, C)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, then feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Residual(cfg, make_attention(cfg))
        self.cross_attn = Residual(cfg, make_attention(cfg, is_cross=True))
        self.ff = Residual(cfg, make_feed_forward(cfg))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_attn_bias: torch.Tensor | None,
        cross_attn_bias: torch.Tensor | None,
        self_cache: KVCache | None = None,
        cross_cache: KVCache | None = None,
        rotary: PositionScheme | None = None,
    ) -> torch.Tensor:
        x = self.self_attn(x, attn_bias=self_attn_bias, cache=self_cache, rotary=rotary)
        x = self.cross_attn(x, memory=memory, attn_bias=cross_attn_bias, cache=cross_cache)
        return self.ff(x)  # (B, T, C)


def set_recompute(layer: nn.Module, enabled: bool) -> None:
    """Activation recompute ("activation checkpointing") for one layer, as a wrapper of its
    forward: in training, the layer's inner activations are not kept and backward runs the
    layer again from its inputs (less memory, ~30% more compute, the same gradients:
    tests/test_model.py). The layer's own `forward` is untouched; this sets (or removes) an
    instance attribute that `nn.Module.__call__` finds first."""
    if enabled:
        layer.forward = functools.partial(_forward_recomputed, layer)
    else:
        layer.__dict__.pop("forward", None)


def _forward_recomputed(layer: nn.Module, *args) -> torch.Tensor:
    forward = type(layer).forward
    if not (layer.training and torch.is_grad_enabled()):  # evaluation, decoding: nothing to save
        return forward(layer, *args)
    return recompute_in_backward(forward, layer, *args, use_reentrant=False)
