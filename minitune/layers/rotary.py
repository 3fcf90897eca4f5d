"""Rotary position embedding, RoPE (Su et al. 2021, "RoFormer"), used by LLaMA and most LLMs.

Instead of adding a position vector to the tokens, RoPE turns each query and key by an angle that
grows with its position. Split a head's D channels into D/2 pairs (x1_i, x2_i) — here channel i
pairs with channel i + D/2 — and rotate pair i at position p by the angle p·θ_i:

    θ_i = base^(-2i/D)                                  i = 0 .. D/2-1, base = 10000
    x1_i' = x1_i · cos(p·θ_i) − x2_i · sin(p·θ_i)
    x2_i' = x2_i · cos(p·θ_i) + x1_i · sin(p·θ_i)

A rotation by a and one by b leave a dot product that depends only on a − b, so q_m · k_n depends on
the token contents and on the distance m − n alone: a relative scheme with no parameters and no
bias tensor. Keys are turned before they go into the KV cache (a key's angle depends only on its
own position), so decoding with a cache needs no extra work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from minitune.layers.positions import PositionScheme

if TYPE_CHECKING:
    from minitune.config import ModelConfig


class RotaryPositions(PositionScheme):
    """RoPE: `rotate` turns queries and keys (B, H, T, D) by their positions; no parameters."""

    rotates = True

    def __init__(self, cfg: ModelConfig, causal: bool = False):
        super().__init__(cfg, causal)
        D = cfg.d_head
        inv_freq = cfg.rotary_base ** (-torch.arange(0, D, 2).float() / D)  # θ_i, (D/2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        angles = positions.float()[..., None] * self.inv_freq  # p·θ_i, (B or 1, T, D/2)
        angles = angles[:, None]  # (B or 1, 1, T, D/2): the same in every head
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., :half], x[..., half:]  # (B, H, T, D/2) each
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)  # (B, H, T, D)
