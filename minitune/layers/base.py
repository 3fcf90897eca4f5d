"""What a layer variant implements: the base class of every layer, and the attention contract.

Every layer of the model derives from `Layer`, which adds one thing to `nn.Module`: the hook
`init_weights()`, called once when the model is built (`Seq2SeqTransformer.reset_parameters`), so
that each layer initialises its own parameters as T5 does. A variant that does not derive from
`Layer` keeps PyTorch's default initialisation.

Each kind of layer has a contract (the conformance kit, `minitune.kit.conformance`, checks it):

    attention  AttentionLayer below; built as cls(cfg)
    position   positions.PositionScheme (a base class: override embed, position_bias, rotate)
    ffn        built as cls(cfg); forward(x (B, T, C)) -> (B, T, C), each token on its own
    norm       built as cls(cfg); forward(x (..., C)) -> the same shape and dtype

The simplest way to meet the attention contract is to subclass `attention.Attention` and
override one of its two steps, `project` (queries, keys and values) or `attend` (the per-head
computation): qk_norm.py and docs/extending.md do that.

This file imports no other layer (the cache it names lives in kv_cache.py, which imports none
either), so every layer file may import it.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from minitune.layers.kv_cache import KVCache


class Layer(nn.Module):
    """An `nn.Module` that initialises its own parameters (`init_weights`)."""

    def init_weights(self) -> None:
        """Set the parameters to their initial values; the default keeps PyTorch's."""


class Rotary(Protocol):
    """What a stack hands its self-attention layers as `rotary`: something that turns queries
    and keys (B, H, T, D) by the positions of the tokens at hand (RoPE):
    `positions.Rotation`, a rotary scheme bound to them (after a KV cache's, when decoding)."""

    def rotate(self, x: torch.Tensor) -> torch.Tensor: ...


class AttentionLayer(Protocol):
    """The contract of an attention variant. One class serves encoder self-attention, decoder
    causal self-attention and cross-attention: the caller says where keys and values come from.

    Shapes: x (B, T_q, C), where the queries come from; context (B, T_k, C), where the keys and
    values come from: x itself for self-attention, the encoder output for cross-attention;
    attn_bias broadcastable to (B, H, T_q, T_k): the mask (0 where a query may attend a key, very
    negative where not) plus any position bias; returns (B, T_q, C).
    """

    record_weights: bool  # set by `attention_maps`: keep the next call's weights ...
    last_weights: torch.Tensor | None  # ... here, (B, H, T_q, T_k), for pictures

    def __call__(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None,
        attn_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        rotary: Rotary | None = None,
    ) -> torch.Tensor:
        """cache: this layer's KV cache while decoding: the keys and values of `context` join
        it (`cache.update(k, v)`), and the queries attend all it holds. context is None when the
        cache already holds every key and value (cross-attention: filled once, by
        `keys_values`). rotary: the stack's position scheme, bound to the new tokens' positions,
        when it turns queries and keys (RoPE; self-attention only)."""
        ...

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values of `context` (B, T_k, C) alone, each (B, H_kv, T_k, D), exactly
        as a call computes them: the decoder cache fills cross-attention's cache with them."""
        ...
