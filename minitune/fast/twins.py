"""The twin table and the switch: each teaching class (minitune/layers/) -> its production twin
(minitune/fast/), and `use_impl`, which moves a live model between them.

A twin subclasses its teaching class and replaces steps with fused kernels; it adds no
parameters, buffers or state. So a layer changes path by changing its class: its weights, LoRA
adapters, device and any DDP/FSDP wrapper around the model stay as they are.

    FAST_TWINS[Attention] is FastAttention
    use_impl(model, "fast")        # every layer that has a twin now runs it
    use_impl(model, "reference")   # back to the teaching classes

`Seq2SeqTransformer.set_impl` is the switch to call on a model (it also picks generate's
decoding step). A variant with a fast twin of its own adds one line to `FAST_TWINS`; the
conformance kit (`minitune check`) then compares the two.
"""

from __future__ import annotations

from torch import nn

from minitune.config import IMPLS
from minitune.fast.attention import FastAttention
from minitune.fast.feedforward import FastFeedForward
from minitune.layers.attention import Attention
from minitune.layers.feedforward import FeedForward

# teaching class -> production twin (the same parameters, fused kernels)
FAST_TWINS: dict[type, type] = {
    Attention: FastAttention,
    FeedForward: FastFeedForward,
}


def use_impl(module: nn.Module, impl: str) -> None:
    """Put every layer of `module` that has a twin on the "fast" or the "reference" path, in
    place (the class of each such layer becomes the twin, or the teaching class again)."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    for layer in module.modules():
        for teaching, fast in FAST_TWINS.items():
            if type(layer) in (teaching, fast):
                layer.__class__ = fast if impl == "fast" else teaching
