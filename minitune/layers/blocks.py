"""Encoder and decoder blocks: attention and feed-forward sub-layers with residual connections.

Shapes: x is (B, T, C) decoder or (B, S, C) encoder; `memory` is the encoder output (B, S, C).

Each attention layer is told where its keys and values come from (`context`): the block passes
the (normed) x for self-attention and the encoder output for cross-attention.

Every layer of a block is built by its name in the config, through layers/registry.py (T5's
own are "multi-head" `Attention`, "gated-gelu" or "relu" `FeedForward`, "rms" `RMSNorm`). A
block holds them as plain attributes: `self_attn` and its norm `self_attn_norm`, `cross_attn`
and `cross_attn_norm` (decoder), `ff` and `ff_norm`; their names are the checkpoints' tensor
names (`decoder.layers.0.self_attn.q.weight`).

Every sub-layer f (attention or feed-forward) is wrapped the same way (`Block`), in one of two
orders:

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
from minitune.layers.base import Rotary
from minitune.layers.kv_cache import KVCache

if TYPE_CHECKING:
    from minitune.config import ModelConfig


def clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """In a float16 model, keep activations inside float16's range (max 65504).

    T5's residual stream grows large (no 1/sqrt(D) scaling, unscaled feed-forward outputs) and
    overflows float16 to inf; T5 clamps it in the same way. Training T5 in fp16 autocast is
    refused instead (`minitune.train`): use bf16.
    """
    limit = torch.finfo(torch.float16).max - 1000
    return x.clamp(min=-limit, max=limit)


class Block(nn.Module):
    """What encoder and decoder layers share: the residual connection around each sub-layer f,
    with its norm before f (pre-norm) or after the sum (post-norm), and dropout on f's output.

        h = self.sublayer_input(x, norm)       # norm(x) in pre-norm, x itself in post-norm
        x = self.add(x, f(h, ...), norm)       # x + dropout(f(h)), then norm in post-norm
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout)
        self.pre_norm = cfg.norm_position == "pre"

    def sublayer_input(self, x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """What a sub-layer reads of the residual stream x (B, T, C): norm(x) (pre-norm) or x."""
        return norm(x) if self.pre_norm else x

    def add(self, x: torch.Tensor, sublayer_output: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """The residual connection: x + dropout(f(...)), normed after in post-norm (B, T, C)."""
        out = x + self.dropout(sublayer_output)
        if not self.pre_norm:
            out = norm(out)
        if out.dtype == torch.float16:  # only a model cast with .half(): see clamp_fp16
            out = clamp_fp16(out)
        return out


class EncoderLayer(Block):
    """Bidirectional self-attention, then feed-forward, each with its own norm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.self_attn = registry.build("attention", cfg)
        self.self_attn_norm = registry.build("norm", cfg)
        self.ff = registry.build("ffn", cfg)
        self.ff_norm = registry.build("norm", cfg)

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: torch.Tensor | None,
        rotary: Rotary | None = None,
    ) -> torch.Tensor:
        """x: the source's residual stream (B, S, C); attn_bias: padding mask + position bias."""
        # 1. self-attention: queries, keys and values all from the source tokens
        h = self.sublayer_input(x, self.self_attn_norm)  # (B, S, C)
        attended = self.self_attn(h, context=h, attn_bias=attn_bias, rotary=rotary)
        x = self.add(x, attended, self.self_attn_norm)
        # 2. feed-forward, each token on its own
        h = self.sublayer_input(x, self.ff_norm)
        return self.add(x, self.ff(h), self.ff_norm)  # (B, S, C)


class DecoderLayer(Block):
    """Causal self-attention, cross-attention to the encoder output, then feed-forward, each
    with its own norm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.self_attn = registry.build("attention", cfg)
        self.self_attn_norm = registry.build("norm", cfg)
        self.cross_attn = registry.build("attention", cfg)
        self.cross_attn_norm = registry.build("norm", cfg)
        self.ff = registry.build("ffn", cfg)
        self.ff_norm = registry.build("norm", cfg)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None,
        *,
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
        h = self.sublayer_input(x, self.self_attn_norm)  # (B, T, C)
        attended = self.self_attn(
            h, context=h, attn_bias=self_attn_bias, cache=self_cache, rotary=rotary
        )
        x = self.add(x, attended, self.self_attn_norm)
        # 2. cross-attention: queries from the target, keys and values from the encoder output
        h = self.sublayer_input(x, self.cross_attn_norm)  # (B, T, C)
        attended = self.cross_attn(h, context=memory, attn_bias=cross_attn_bias, cache=cross_cache)
        x = self.add(x, attended, self.cross_attn_norm)
        # 3. feed-forward, each token on its own
        h = self.sublayer_input(x, self.ff_norm)
        return self.add(x, self.ff(h), self.ff_norm)  # (B, T, C)


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


def _forward_checkpointed(layer: nn.Module, *args, **kwargs) -> torch.Tensor:
    forward = type(layer).forward
    if not (layer.training and torch.is_grad_enabled()):  # evaluation, decoding: nothing to save
        return forward(layer, *args, **kwargs)
    return recompute_in_backward(forward, layer, *args, use_reentrant=False, **kwargs)
