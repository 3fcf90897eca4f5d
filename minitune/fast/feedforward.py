"""The production twin of `FeedForward` (minitune/layers/feedforward.py).

Shapes: x is (B, T, C); the hidden layer has width F = d_ff.

A gated layer computes W_i0 x and W_i1 x; `FastFeedForward` computes both with one matmul,
[W_i0; W_i1] x (fast/fused.py), and then runs the teaching code's activation, gate and output
projection. The same numbers, no extra state (so `Seq2SeqTransformer.set_impl` switches a live
layer: fast/twins.py); a layer without a gate has nothing to fuse and runs as `FeedForward`.
"""

from __future__ import annotations

import torch

from minitune.fast.fused import stacked_linear
from minitune.layers.feedforward import FeedForward


class FastFeedForward(FeedForward):
    """`FeedForward` with the gate's two input projections as one matmul."""

    def project_in(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.wi_gate is not None:
            both = stacked_linear(x, [self.wi, self.wi_gate])  # (B, T, 2F); None with LoRA
            if both is not None:
                h, gate = both.chunk(2, dim=-1)  # (B, T, F) each
                return h, gate
        return super().project_in(x)
