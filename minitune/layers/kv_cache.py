"""The KV caches of decoding: one attention layer's keys and values (`KVCache`), and everything
the decoder keeps between steps (`DecoderCache`).

Notation: B batch, H heads (H_kv with grouped-query attention), D head width, t new positions,
S source length.

While generating, the decoder sees one new token per step. Its self-attention would recompute
the keys and values of every earlier token at every step; instead each layer keeps them here and
appends the new ones. Cross-attention's keys and values (of the encoder output, which does not
change) are computed once, when the decoder's cache is filled (`DecoderCache`), and then only
read. Attention uses one call for both: `cache.update(k, v)` appends what is new (nothing for
cross-attention) and returns every key and value the queries may attend.
"""

from __future__ import annotations

import torch
from torch import nn


class KVCache:
    """Keys and values of one attention layer, kept between decoding steps.

    Buffers are allocated once, for `max_length` positions, and filled in place, so a step costs
    no copy of the past. Decoder self-attention appends one position per step; cross-attention's
    cache is filled once with the encoder output's keys and values and then only read.
    """

    def __init__(self, max_length: int):
        self.max_length = max_length
        self.length = 0  # positions filled so far
        self.k: torch.Tensor | None = None  # (B, H_kv, max_length, D)
        self.v: torch.Tensor | None = None

    def update(
        self, k: torch.Tensor | None, v: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' k, v (B, H_kv, t, D), or nothing when they are None (a
        filled cross-attention cache); return all keys and values so far (B, H_kv, length, D)."""
        if k is not None:
            self.append(k, v)
        if self.k is None:
            raise ValueError("the KV cache is empty: there are no keys to attend")
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write k, v (B, H_kv, t, D) at positions length .. length + t - 1, in place."""
        B, H, t, D = k.shape
        if self.k is None:
            self.k = k.new_empty(B, H, self.max_length, D)
            self.v = v.new_empty(B, H, self.max_length, D)
        if self.length + t > self.max_length:
            raise ValueError(f"KV cache holds {self.max_length} positions; cannot add {t} more")
        self.k[:, :, self.length : self.length + t] = k
        self.v[:, :, self.length : self.length + t] = v
        self.length += t

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search: each surviving beam takes its parent's past)."""
        if self.k is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)


class DecoderCache:
    """Everything the decoder keeps between generation steps: per layer, a growing self-attention
    KV cache (`max_length` positions) and the cross-attention keys/values of the encoder output,
    which it fills itself on the first step (`fill_cross_attention`) and which are only read
    afterwards: the decoder then gives its cross-attention layers no encoder output at all.

    It also keeps the two parts of attn_bias that do not change from step to step, which the
    decoder builds on the first step (`model.Decoder`): its position bias for all `max_length`
    positions, of which each step takes its rows (`position_bias_rows`), and cross-attention's
    padding bias."""

    def __init__(self, n_layers: int, max_length: int, source_length: int):
        self.max_length = max_length
        self.self_attn = [KVCache(max_length) for _ in range(n_layers)]
        self.cross_attn = [KVCache(source_length) for _ in range(n_layers)]
        self.position_bias: torch.Tensor | None = None  # (1, H, max_length, max_length)
        self.cross_attn_bias: torch.Tensor | None = None  # (B, 1, 1, S)

    @property
    def length(self) -> int:
        """How many decoder positions are cached (= position of the next token)."""
        return self.self_attn[0].length if self.self_attn else 0

    def layer(self, i: int) -> tuple[KVCache, KVCache]:
        """The self- and cross-attention caches of decoder layer i."""
        return self.self_attn[i], self.cross_attn[i]

    def position_bias_rows(self, T: int) -> torch.Tensor | None:
        """The position bias of the T new positions, (1, H, T, length + T): rows
        length..length+T-1 of the table for all max_length positions (None without a table).

        Example: length 2, T 1 -> row 2, keys 0..2: the bias of position 2 to itself and the
        two positions before it."""
        offset, table = self.length, self.position_bias
        return None if table is None else table[:, :, offset : offset + T, : offset + T]

    def fill_cross_attention(self, attentions: list[nn.Module], memory: torch.Tensor) -> None:
        """The keys and values of the encoder output (B, S, C) for every cross-attention layer,
        (B, H_kv, S, D) each, computed once (on the first step; later calls find them there)."""
        for attention, cache in zip(attentions, self.cross_attn, strict=True):
            if cache.length == 0:
                cache.append(*attention.keys_values(memory))

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` of the self-attention caches (beam search).

        The cross-attention caches are not touched: beam search only reorders beams within one
        example, and all beams of an example share the same encoder keys and values.
        """
        for cache in self.self_attn:
            cache.reorder(index)
