"""A copy head: the decoder may point at a source token instead of spelling it from the vocabulary.

A plain Transformer writes every output token through its vocabulary softmax. To repeat a name
from the prompt, it must learn, for that name, that "attending to this source token" should raise
"this output logit": a mapping learned value by value. Small models trained for minutes learn it
for frequent values (digits, weekdays) and not for rare ones (names), so they answer "Emma" to
every booking (benchmarks/learning.md). A copy head (the pointer-generator of See et al. 2017,
"Get To The Point") gives the decoder a second way to produce a token: point at a source position
and emit whatever token sits there, whatever that token is.

Shapes: h (B, T, C) is the decoder's final hidden state, memory (B, S, C) the encoder output,
source_ids (B, S) the source tokens, V the vocabulary size.

    a   = softmax(h W_q (memory W_k)^T / sqrt(C))        where to point       (B, T, S)
    g   = sigmoid(h · w_g + b_g)                          generate or copy?    (B, T, 1)
    p(w) = g · softmax(logits)_w + (1 - g) · Σ_{s : x_s = w} a_s

The head returns log p(w): a vector whose softmax is p itself, so the loss, greedy decoding,
beam search and sampling use it exactly like ordinary logits. Nothing else in the model changes;
a model with a copy head is not a T5 architecture (it cannot be exported to the T5 format).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from minitune.layers.base import Layer

if TYPE_CHECKING:
    from minitune.config import ModelConfig


class CopyHead(Layer):
    """Mix the vocabulary distribution with a pointer over the source tokens (see module doc)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C = cfg.d_model
        self.q = nn.Linear(C, C, bias=False)  # W_q: decoder state -> pointer query
        self.k = nn.Linear(C, C, bias=False)  # W_k: encoder output -> pointer key
        self.gate = nn.Linear(C, 1)  # w_g, b_g: probability of generating rather than copying
        self.scale = C**-0.5

    def init_weights(self) -> None:
        """Queries and keys ~ N(0, 1/C); the gate starts at g = 0.5 (bias 0, small weights)."""
        for linear in (self.q, self.k):
            nn.init.normal_(linear.weight, std=linear.in_features**-0.5)
        nn.init.normal_(self.gate.weight, std=0.02)
        nn.init.zeros_(self.gate.bias)

    def forward(
        self,
        h: torch.Tensor,
        logits: torch.Tensor,
        memory: torch.Tensor,
        source_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """h (B, T, C), vocabulary logits (B, T, V), memory (B, S, C), source_ids (B, S),
        attention_mask (B, S) 1 = token / 0 = padding, or, for packed rows, (B, T, S) True where
        target position t may point at source position s (its own example's) -> log p
        (B, T, V), in float32."""
        T = h.shape[1]
        # 1. where to point: one attention head from each decoder position to the source
        scores = (self.q(h) @ self.k(memory).transpose(1, 2)).float() * self.scale  # (B, T, S)
        if attention_mask is not None:  # never point at padding (or at another packed example)
            allowed = (
                attention_mask[:, None, :] != 0 if attention_mask.dim() == 2 else attention_mask
            )
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        a = scores.softmax(dim=-1)  # (B, T, S)
        # 2. generate (g) or copy (1 - g)
        g = torch.sigmoid(self.gate(h).float())  # (B, T, 1)
        # 3. p(w) = g · p_vocab(w) + (1 - g) · Σ_{s: x_s = w} a_s  (scatter-add over the source)
        p = g * logits.float().softmax(dim=-1)  # (B, T, V)
        index = source_ids[:, None, :].expand(-1, T, -1)  # (B, T, S): the token at each s
        p = p.scatter_add(-1, index, (1 - g) * a)
        return p.clamp_min(1e-30).log()  # (B, T, V); softmax(log p) = p
