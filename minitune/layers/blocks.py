"""Encoder and decoder blocks: attention and feed-forward sub-layers with residual connections.

Shapes: x is (B, T, C) decoder or (B, S, C) encoder; `memory` is the encoder output (B, S, C).

Each attention layer is told where its keys and values come from (`context`): the block passes
the (normed) x for self-attention and the encoder output for cross-attention.

A block is built from T5's own layers, constructed directly below: `Attention` (attention.py),
`FeedForward` (feedforward.py) and `RMSNorm` (norm.py); a config that names another variant gets
it from layers/registry.py. (`model.set_impl("fast")` later swaps attention and feed-forward for
their production twins in minitune/fast/: the same parameters and numbers, fused kernels.)

Every sub-layer f (attention or feed-forward) is wrapped the same way (`Residual`), in one of
two orders:

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
from minitune.layers.attention import Attention
from minitune.layers.base import Rotary
from minitune.layers.kv_cache import KVCache
from minitune.layers.norm import RMSNorm

if TYPE_CHECKING:
    from minitune.config import ModelConfig


def make_attention(cfg: ModelConfig) -> nn.Module:
    """T5's multi-head `Attention`, or the variant `cfg.attention` names."""
    if cfg.attention == "multi-head":
        return Attention(cfg)
    return registry.resolve("attention", cfg.attention)(cfg)


def make_feed_forward(cfg: ModelConfig) -> nn.Module:
    """The feed-forward layer `cfg.ffn` names (`FeedForward` for the built-in activations)."""
    return registry.build("ffn", cfg)


def make_norm(cfg: ModelConfig) -> nn.Module:
    """T5's RMSNorm, or the variant `cfg.norm` names."""
    return RMSNorm(cfg) if cfg.norm == "rms" else registry.build("norm", cfg)


class Residual(nn.Module):
    """What surrounds every sub-layer f: its norm, dropout and residual connection.

    It holds f as `sublayer` beside its `norm`: a block's `self_attn` is this wrapping, and its
    attention layer is `self_attn.sublayer`. (The names are part of every checkpoint's tensor
    names, `decoder.layers.0.self_attn.sublayer.q.weight`, which T5 import and export map, so
    they stay.) It does not call f itself: the block calls f with the arguments f needs, between
    the two halves of the wrapping, so that the block's forward shows what each sub-layer reads:

        h = residual.sublayer_input(x)        # norm(x) in pre-norm, x itself in post-norm
        x = residual.add(x, f(h, ...))        # x + dropout(f(h)), then norm in post-norm
    """

    def __init__(self, cfg: ModelConfig, sublayer: nn.Module):
        super().__init__()
        self.sublayer = sublayer
        self.norm = make_norm(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.pre_norm = cfg.norm_position == "pre"

    def sublayer_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the sub-layer reads of the residual stream x (B, T, C): norm(x) (pre-norm) or x."""
        return self.norm(x) if self.pre_norm else x

    def add(self, x: torch.Tensor, sublayer_output: torch.Tensor) -> torch.Tensor:
        """The residual connection: x + dropout(f(...)), normed after in post-norm (B, T, C)."""
        out = x + self.dropout(sublayer_output)
        if not self.pre_norm:
            out = self.norm(out)
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
        rotary: Rotary | None = None,
    ) -> torch.Tensor:
        """x: the source's residual stream (B, S, C); attn_bias: padding mask + position bias."""
        # 1. self-attention: queries, keys and values all from the source tokens
        h = self.self_attn.sublayer_input(x)  # (B, S, C)
        attended = self.self_attn.sublayer(h, context=h, attn_bias=attn_bias, rotary=rotary)
        x = self.self_attn.add(x, attended)
        # 2. feed-forward, each token on its own
        h = self.ff.sublayer_input(x)
        return self.ff.add(x, self.ff.sublayer(h))  # (B, S, C)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, then feed-forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Residual(cfg, make_attention(cfg))
        self.cross_attn = Residual(cfg, make_attention(cfg))
        self.ff = Residual(cfg, make_feed_forward(cfg))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None,
        self_attn_bias: torch.Tensor | None,
        cross_attn_bias: torch.Tensor | None,
        self_cache: KVCache | None = None,
        cross_cache: KVCache | None = None,
        rotary: Rotary | None = None,
    ) -> torch.Tensor:
        """x: the target's residual stream (B, T, C); memory: the encoder output (B, S, C), or
        None while decoding, when `cross_cache` already holds its keys and values."""
        # 1. causal self-attention: queries, keys and values from the target tokens (and, while
        # decoding, the keys and values of the earlier ones, in self_cache)
        h = self.self_attn.sublayer_input(x)  # (B, T, C)
        attended = self.self_attn.sublayer(
            h, context=h, attn_bias=self_attn_bias, cache=self_cache, rotary=rotary
        )
        x = self.self_attn.add(x, attended)
        # 2. cross-attention: queries from the target, keys and values from the encoder output
        h = self.cross_attn.sublayer_input(x)  # (B, T, C)
        attended = self.cross_attn.sublayer(
            h, context=memory, attn_bias=cross_attn_bias, cache=cross_cache
        )
        x = self.cross_attn.add(x, attended)
        # 3. feed-forward, each token on its own
        h = self.ff.sublayer_input(x)
        return self.ff.add(x, self.ff.sublayer(h))  # (B, T, C)


def set_activation_checkpointing(layer: nn.Module, enabled: bool) -> None:
    """Activation checkpointing for one layer (`TrainConfig.activation_checkpointing`), as a
    wrapper of its forward: in training, the layer's inner activations are not kept and
    backward runs the layer again from its inputs (less memory, ~30% more compute, the same
    gradients: tests/test_model.py). The layer's own `forward` is untouched; this sets (or
    removes) an instance attribute that `nn.Module.__call__` finds first."""
    if enabled:
        layer.forward = functools.partial(_forward_checkpointed, layer)
    else:
        layer.__dict__.pop("forward", None)


def _forward_checkpointed(layer: nn.Module, *args) -> torch.Tensor:
    forward = type(layer).forward
    if not (layer.training and torch.is_grad_enabled()):  # evaluation, decoding: nothing to save
        return forward(layer, *args)
    return recompute_in_backward(forward, layer, *args, use_reentrant=False)
