"""The KV cache of one attention layer: its keys and values, kept between decoding steps.

Notation: B batch, H heads (H_kv with grouped-query attention), D head width, t new positions.

While generating, the decoder sees one new token per step. Its self-attention would recompute
the keys and values of every earlier token at every step; instead each layer keeps them here and
appends the new ones. Cross-attention's keys and values (of the encoder output, which does not
change) are computed once, when the decoder's cache is filled (`model.DecoderCache`), and then
only read. Attention uses one call for both: `cache.update(k, v)` appends what is new (nothing
for cross-attention) and returns every key and value the queries may attend.
"""

from __future__ import annotations

import torch


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
