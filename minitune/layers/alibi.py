"""ALiBi, attention with linear biases (Press et al. 2022): a fixed penalty for distance.

No position vectors, no learned parameters: each head h subtracts from its attention scores a
penalty proportional to how far the key is from the query,

    score[h, i, j] = q_i · k_j − m_h · |i − j|

with one slope m_h per head, a geometric sequence: for H heads (H a power of two)
m_h = 2^(−8(h+1)/H), h = 0 .. H−1, so some heads look far and others near. For other H, the
paper takes the slopes of the power of two below H and fills up with every other slope of twice
that. Because the penalty only depends on distance, models trained with ALiBi read sequences
longer than those they were trained on. (The paper uses the causal form i − j; the encoder here
uses the same penalty both ways.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from minitune.layers.positions import PositionScheme

if TYPE_CHECKING:
    from minitune.config import ModelConfig


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """The slope m_h of each head. Example: 4 heads -> [1/4, 1/16, 1/64, 1/256]."""

    def power_of_two_slopes(n: int) -> list[float]:
        return [2 ** (-8 * (h + 1) / n) for h in range(n)]

    below = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two_slopes(below)
    slopes += power_of_two_slopes(2 * below)[0::2][: n_heads - below]
    return torch.tensor(slopes)


class ALiBi(PositionScheme):
    """ALiBi: `position_bias` returns −m_h·|i − j| as a (1, H, T_q, T_k) additive attention bias."""

    def __init__(self, cfg: ModelConfig, causal: bool = False):
        super().__init__(cfg, causal)
        self.register_buffer("slopes", alibi_slopes(cfg.n_heads), persistent=False)  # (H,)

    def position_bias(self, q_len: int, k_len: int, offset: int = 0) -> torch.Tensor:
        device = self.slopes.device
        query_pos = torch.arange(offset, offset + q_len, device=device)[:, None]  # (T_q, 1)
        key_pos = torch.arange(k_len, device=device)[None, :]  # (1, T_k)
        distance = (key_pos - query_pos).abs().float()  # |i − j|, (T_q, T_k)
        return -(self.slopes[:, None, None] * distance).unsqueeze(0)  # (1, H, T_q, T_k)
