"""The production shell: fast twins of the teaching layers and the fast decoding step.

Every piece computes what a piece of the teaching core (minitune/layers/, model.py) computes,
from the same weights, with fewer or fused operations, and a test proves the two equal:

    fused.py        stacked_linear: Linear layers that read one input, as one matmul
    attention.py    FastAttention: stacked q/k/v, `scaled_dot_product_attention` (attention_fast)
    feedforward.py  FastFeedForward: a gated layer's two input projections as one matmul
    twins.py        FAST_TWINS (teaching class -> twin) and use_impl, the class switch
    decode.py       FastDecodeStep: generate's decoding step from stacked weights

A model built in Python runs the teaching core and `model.decode`; `model.set_impl("fast")`
switches a live model to this shell (and `generate` to FastDecodeStep), as the command line's
jobs do; `--impl reference` keeps a job on the teaching core.
"""

from minitune.fast.attention import FastAttention, attention_fast
from minitune.fast.decode import FastDecodeStep, unsupported_reason
from minitune.fast.feedforward import FastFeedForward
from minitune.fast.fused import stacked_linear
from minitune.fast.twins import FAST_TWINS, use_impl

__all__ = [
    "FAST_TWINS",
    "FastAttention",
    "FastDecodeStep",
    "FastFeedForward",
    "attention_fast",
    "path_note",
    "stacked_linear",
    "unsupported_reason",
    "use_impl",
]


def path_note(impl: str) -> str:
    """The line a command-line job starts with: which path runs, and how to choose the other."""
    if impl == "fast":
        return (
            "path: fast, the production shell (minitune/fast/: fused attention and "
            "feed-forward, the fast decoding step); --impl reference runs the teaching "
            "classes and model.decode (the same numbers)"
        )
    return (
        "path: reference, the teaching classes (minitune/layers/) and model.decode; "
        "--impl fast runs the production shell (the same numbers, faster)"
    )
