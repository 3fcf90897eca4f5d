"""What a layer variant implements: the base class of every layer, and the attention contract.

Every layer of the model derives from `Layer`, which adds one thing to `nn.Module`: the hook
`init_weights()`, called once when the model is built (`Seq2SeqTransformer.reset_parameters`), so
that each layer initialises its own parameters as T5 does. A variant that does not derive from
`Layer` keeps PyTorch's default initialisation.

Each kind of layer has a contract (the conformance kit, `minitune.testing`, checks it):

    attention  AttentionLayer below; built as cls(cfg, is_cross)
    position   positions.PositionScheme (a base class: override embed, position_bias, rotate)
    ffn        built as cls(cfg); forward(x (B, T, C)) -> (B, T, C), each token on its own
    norm       built as cls(cfg); forward(x (..., C)) -> the same shape and dtype

The simplest way to meet the attention contract is to subclass `attention.Attention` and
override one of its two steps, `project` (queries, keys and values) or `attend` (the per-head
computation): qk_norm.py and docs/extending.md do that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from minitune.layers.attention import KVCache
    from minitune.layers.positions import PositionScheme


class Layer(nn.Module):
    """An `nn.Module` that initialises its own parameters (`init_weights`)."""

    def init_weights(self) -> None:
        """Set the parameters to their initial values; the default keeps PyTorch's."""


class AttentionLayer(Protocol):
    """The contract of an attention variant (self-attention, or cross-attention with is_cross).

    Shapes: x (B, T_q, C); memory (B, T_k, C), the encoder output, for cross-attention;
    attn_bias broadcastable to (B, H, T_q, T_k): the mask (0 where a query may attend a key, very
    negative where not) plus any position bias; returns (B, T_q, C).
    """

    record_weights: bool  # set by `attention_maps`: keep the next call's weights ...
    last_weights: torch.Tensor | None  # ... here, (B, H, T_q, T_k), for pictures

    def __call__(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        rotary: PositionScheme | None = None,
    ) -> torch.Tensor:
        """cache: this layer's KV cache while decoding (new keys appended, or for
        cross-attention filled once and then read); rotary: the stack's position scheme when it
        turns queries and keys (RoPE), with offset = cache.length."""
        ...
