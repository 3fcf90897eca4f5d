"""The production twin of `Attention` (minitune/layers/attention.py): fused kernels, the same
numbers.

Notation: B batch, H heads, D head width, T_q query length, T_k key length.

`FastAttention` is `Attention` with two of its steps replaced; everything else (the masks, the
KV cache, grouped-query heads, the output projection) is the teaching code itself:

- `project`: self-attention's q, k and v (its context is x) as one matmul with the stacked
  weight [W_q; W_k; W_v] (one read of x, one larger matmul; fast/fused.py keeps the stacked
  weight while decoding);
- `attend`: `attention_fast`, PyTorch's `F.scaled_dot_product_attention`, which fuses scores,
  softmax and the weighted sum (on CUDA a flash or memory-efficient kernel) and never stores
  the (T_q, T_k) weights.

It adds no parameters, buffers or state, so `Seq2SeqTransformer.set_impl` switches a live layer
between the two classes (fast/twins.py). tests/test_layers.py and tests/test_paths.py prove the
two equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minitune.fast.fused import stacked_linear
from minitune.layers.attention import Attention


def attention_fast(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_bias: torch.Tensor | None,
    scale: float,
    dropout: float = 0.0,
) -> torch.Tensor:
    """`attention_reference` (layers/attention.py) through PyTorch's fused kernel:
    softmax(scale · q kᵀ + attn_bias) v, (B, H, T_q, D), without the weights."""
    if attn_bias is not None and attn_bias.dtype != q.dtype:
        attn_bias = attn_bias.to(q.dtype)  # under autocast q is bf16/fp16: one dtype for SDPA
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_bias, dropout_p=dropout, scale=scale
    )


class FastAttention(Attention):
    """`Attention` on the production path: the same parameters and the same numbers, with
    `project` (one stacked matmul for self-attention) and `attend` (the fused kernel) replaced."""

    def project(
        self, x: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        if context is not x:  # cross-attention: keys and values come from another tensor
            return super().project(x, context)
        qkv = stacked_linear(x, [self.q, self.k, self.v])  # (B, T, H·D + 2·H_kv·D)
        if qkv is None:  # a projection is not a plain Linear (LoRA): one by one
            return super().project(x, context)
        kv_width = self.n_kv_heads * self.d_head
        q, k, v = qkv.split([self.n_heads * self.d_head, kv_width, kv_width], dim=-1)
        q = self.split_heads(q, self.n_heads)  # (B, H, T_q, D)
        return q, self.split_heads(k, self.n_kv_heads), self.split_heads(v, self.n_kv_heads)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_bias: torch.Tensor | None
    ) -> torch.Tensor:
        if self.record_weights:  # pictures need the weights, which the fused kernel never makes
            return super().attend(q, k, v, attn_bias)
        dropout = self.dropout if self.training else 0.0
        return attention_fast(q, k, v, attn_bias, self.scale, dropout)  # (B, H, T_q, D)
