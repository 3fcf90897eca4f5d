"""Position schemes: how the model knows where a token is.

Attention itself is blind to order, so each stack (encoder, decoder) owns one position scheme,
chosen by name (`ModelConfig.position`, see layers/registry.py). A scheme can act in three places:

- `embed(x, positions)`: absolute schemes add a vector to each token embedding (sinusoidal,
  learned);
- `position_bias(q_len, k_len, offset)`: relative schemes return an additive attention bias (T5,
  ALiBi), which the stack folds into the attn_bias of its layers;
- `rotate(x, positions)`: rotary schemes turn each query and key by its position (RoPE), in the
  stack's self-attention layers (cross-attention has no positions: decoder and encoder
  positions are not comparable). Such a scheme sets `rotates = True`; the stacks hand only
  those to their attention layers (bound to the positions, `Rotation`), so a T5 model never
  calls a `rotate` that does nothing.

`positions` is a (B, T) or (1, T) tensor, every token's position: 0 .. T-1 for a whole sequence,
offset .. offset+T-1 when decoding with a KV cache (the decoder sees one new token at a time
after `offset` cached ones; `token_positions(T, offset)` makes both), or, in packed rows
(several examples in one row, minitune/data/packing.py), each token's position within its own
example. `offset` (an int) is where the queries of `position_bias` start: a relative bias
depends only on the distance j - i, which is the same counted from the row's start or from the
example's, and the packing mask hides every pair from two examples.
Schemes that do nothing in a place return their input / None there. Every scheme is built as
`Scheme(cfg, causal)`; causal is True in the decoder.

Shapes: x is (B, T, C); a bias is (1, H, T_q, T_k), added to the attention scores of every layer
of the stack. T5 computes its bias in the first layer and shares it with the others; computing it
once per stack, here, is the same thing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from minitune.layers.base import Layer

if TYPE_CHECKING:
    from minitune.config import ModelConfig


def token_positions(T: int, offset: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """The positions of T tokens that follow `offset` earlier ones: offset .. offset+T-1, (1, T)."""
    return torch.arange(offset, offset + T, device=device)[None]


class PositionScheme(Layer):
    """Base class, and the "none" scheme: no positions at all. Subclasses override `embed`,
    `position_bias` and/or `rotate` (then also set `rotates = True`)."""

    rotates = False  # True: `rotate` turns queries and keys, the stack passes it to attention

    def __init__(self, cfg: ModelConfig | None = None, causal: bool = False):
        super().__init__()
        self.causal = causal

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, T, C) at `positions` (B or 1, T) -> the same with position
        information added."""
        return x

    def position_bias(self, q_len: int, k_len: int, offset: int = 0) -> torch.Tensor | None:
        """Additive attention bias (1, H, q_len, k_len) for queries at offset..offset+q_len-1."""
        return None

    def rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Queries or keys (B, H, T, D) at `positions` (B or 1, T) -> the same, turned."""
        return x


class Rotation:
    """A rotary scheme bound to the positions of the tokens at hand: what a stack hands its
    self-attention layers, which call `rotate(q)` and `rotate(k)` (layers/base.Rotary)."""

    def __init__(self, scheme: PositionScheme, positions: torch.Tensor):
        self.scheme, self.positions = scheme, positions  # positions: (B or 1, T)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        return self.scheme.rotate(x, self.positions)


class SinusoidalPositions(PositionScheme):
    """Fixed sinusoids of the 2017 paper, added to the embeddings; no parameters, no length limit.

    PE[p, 2i]   = sin(p / 10000^(2i/C))
    PE[p, 2i+1] = cos(p / 10000^(2i/C))
    """

    def __init__(self, cfg: ModelConfig, causal: bool = False):
        super().__init__(cfg, causal)
        d_model = cfg.d_model
        # 1 / 10000^(2i/C) for i = 0 .. C/2-1
        inv_freq = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (C/2,)
        self.d_model = d_model

    def table(self, positions: torch.Tensor) -> torch.Tensor:
        """PE rows for the given positions: (..., T) -> (..., T, C)."""
        angles = positions.float()[..., None] * self.inv_freq  # (..., T, C/2)
        pe = torch.zeros(*positions.shape, self.d_model, device=positions.device)
        pe[..., 0::2] = torch.sin(angles)
        pe[..., 1::2] = torch.cos(angles[..., : self.d_model // 2])  # odd C: one cos fewer
        return pe

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + self.table(positions).to(x.dtype)  # (B, T, C) + (B or 1, T, C)


class LearnedPositions(PositionScheme):
    """A learned vector per absolute position (BERT, GPT-2), added to the embeddings."""

    def __init__(self, cfg: ModelConfig, causal: bool = False):
        super().__init__(cfg, causal)
        self.max_position = cfg.max_position
        self.table = nn.Embedding(cfg.max_position, cfg.d_model)

    def init_weights(self) -> None:
        nn.init.normal_(self.table.weight, std=1.0)  # on the scale of the token embeddings

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        last = int(positions.max())  # one number to the host: the check needs it
        if last >= self.max_position:
            raise ValueError(
                f"sequence reaches position {last}, but learned positions stop at "
                f"max_position - 1 = {self.max_position - 1}; raise ModelConfig.max_position"
            )
        return x + self.table(positions)  # (B, T, C) + (B or 1, T, C)


def relative_position_bucket(
    relative_position: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Map key-minus-query distances to T5's buckets (Raffel et al. 2020, §2.1).

    Small distances get a bucket each; larger ones share logarithmically wider buckets up to
    `max_distance`, beyond which all fall in the last bucket. Bidirectional (encoder): half the
    buckets for keys after the query, half for keys before. Causal (decoder): keys after the query
    are masked anyway, so all buckets go to distances into the past.

    Example with num_buckets=8, max_distance=16, causal: distances 0, -1, -2, -3 -> buckets
    0, 1, 2, 3 (exact); -4, -5 -> 4; -6, -7 -> 5; -8 .. -11 -> 6; -12 and beyond -> 7.
    """
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket += (relative_position > 0).long() * num_buckets  # keys to the right: upper half
        distance = relative_position.abs()
    else:
        distance = -torch.clamp(relative_position, max=0)  # how far into the past, >= 0
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log-spaced buckets from max_exact up to max_distance (clamp(min=1) only avoids log(0) in
    # entries that is_small selects away)
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(
        max_distance / max_exact
    )
    if_large = max_exact + (log_ratio * (num_buckets - max_exact)).to(torch.long)
    if_large = torch.clamp(if_large, max=num_buckets - 1)
    return bucket + torch.where(is_small, distance, if_large)


class RelativePositionBias(PositionScheme):
    """T5's relative position bias: one learned scalar per (bucket, head), added to the scores.

    score[h, i, j] = q_i · k_j + b[h, bucket(j - i)]
    """

    def __init__(self, cfg: ModelConfig, causal: bool = False):
        super().__init__(cfg, causal)
        self.num_buckets = cfg.relative_buckets
        self.max_distance = cfg.relative_max_distance
        self.bidirectional = not causal  # the encoder looks both ways
        self.d_model = cfg.d_model
        self.bias_table = nn.Embedding(cfg.relative_buckets, cfg.n_heads)  # b: (buckets, H)

    def init_weights(self) -> None:
        nn.init.normal_(self.bias_table.weight, std=self.d_model**-0.5)  # as T5

    def position_bias(self, q_len: int, k_len: int, offset: int = 0) -> torch.Tensor:
        device = self.bias_table.weight.device
        query_pos = torch.arange(offset, offset + q_len, device=device)[:, None]  # (T_q, 1)
        key_pos = torch.arange(k_len, device=device)[None, :]  # (1, T_k)
        buckets = relative_position_bucket(
            key_pos - query_pos, self.bidirectional, self.num_buckets, self.max_distance
        )  # (T_q, T_k)
        values = self.bias_table(buckets)  # (T_q, T_k, H)
        return values.permute(2, 0, 1).unsqueeze(0)  # (1, H, T_q, T_k)


class RelativeBiasAndSinusoids(RelativePositionBias):
    """T5's relative bias in the attention scores AND sinusoids added to the embeddings.

    The relative bias tells a query how far away each key is; it says nothing about where a token
    sits in the whole sequence, and cross-attention (which has no positions) sees encoder outputs
    that carry position only indirectly. The absolute sinusoids give every encoder output its
    place, which a decoder that copies the input in order can follow (benchmarks/learning.md:
    copying is learned several times faster at the laptop scale).
    """

    def __init__(self, cfg: ModelConfig, causal: bool = False):
        super().__init__(cfg, causal)
        self.sinusoids = SinusoidalPositions(cfg, causal)  # no parameters

    def embed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.sinusoids.embed(x, positions)
