"""The layer registry: which names a `ModelConfig` may use for each kind of layer.

Four kinds of layer are chosen by name, one `ModelConfig` field each:

    attention  ModelConfig.attention   e.g. "multi-head"
    position   ModelConfig.position    e.g. "relative", "rotary", "alibi"
    ffn        ModelConfig.ffn         e.g. "gated-gelu", "swiglu"
    norm       ModelConfig.norm        e.g. "rms", "layer"

Each name maps to "module:attribute", the place of a class (or function) that builds the layer
from the config:

    attention  cls(cfg, is_cross=False)   forward(x, memory=None, bias=None, cache=None,
                                                  position=None) -> (B, T, C)
    position   cls(cfg, causal)           embed(x, offset), bias(q_len, k_len, offset),
                                          rotate(x, offset)   (see positions.PositionScheme)
    ffn        cls(cfg)                   forward(x) -> (B, T, C)
    norm       cls(cfg)                   forward(x) -> same shape

Adding a variant is one new file (the class) plus one line in a table below. A config may also
name a class directly by its path, "my_module:MyAttention", without touching this file (the
module must be importable wherever the model is built or loaded). `docs/extending.md` walks
through both; `minitune.testing` checks a variant against the contract.

The paths are strings, imported on first use, so this file imports no layer code and every
layer file may import `minitune.config` freely.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

from torch import nn

ATTENTIONS = {
    "multi-head": "minitune.layers.attention:Attention",  # MHA; MQA/GQA via n_kv_heads
    "qk-norm": "minitune.layers.qk_norm:QKNormAttention",  # RMS-normalised queries and keys
}
POSITIONS = {
    "relative": "minitune.layers.positions:RelativePositionBias",  # T5
    "relative+sinusoidal": "minitune.layers.positions:RelativeBiasAndSinusoids",  # both
    "sinusoidal": "minitune.layers.positions:SinusoidalPositions",  # 2017 paper
    "learned": "minitune.layers.positions:LearnedPositions",  # BERT, GPT-2
    "rotary": "minitune.layers.rotary:RotaryPositions",  # RoPE (Su et al. 2021)
    "alibi": "minitune.layers.alibi:ALiBi",  # Press et al. 2022
    "none": "minitune.layers.positions:PositionScheme",  # no positions at all
}
FEED_FORWARDS = {
    "relu": "minitune.layers.feedforward:FeedForward",  # T5 v1.0
    "gelu": "minitune.layers.feedforward:FeedForward",
    "gated-gelu": "minitune.layers.feedforward:FeedForward",  # T5 v1.1, Flan-T5
    "swiglu": "minitune.layers.feedforward:FeedForward",  # LLaMA
}
NORMS = {
    "rms": "minitune.layers.norm:RMSNorm",  # T5
    "layer": "minitune.layers.norm:LayerNorm",  # 2017 paper
}

# kind -> its table; the kind is also the ModelConfig field that names the variant
REGISTRY: dict[str, dict[str, str | Callable]] = {
    "attention": ATTENTIONS,
    "position": POSITIONS,
    "ffn": FEED_FORWARDS,
    "norm": NORMS,
}


def names(kind: str) -> list[str]:
    """The registered names of one kind, e.g. names("norm") -> ["rms", "layer"]."""
    return list(_table(kind))


def register(kind: str, name: str, builder: str | Callable) -> None:
    """Add a variant at run time (tests, notebooks): `register("norm", "mine", MyNorm)`.

    For a variant that should last, add its line to the table above instead."""
    _table(kind)[name] = builder


def resolve(kind: str, name: str) -> Callable[..., nn.Module]:
    """The class (or function) that builds variant `name` of `kind`.

    `name` is a registered name or a "module:attribute" path. Raises ValueError saying what is
    allowed, or why the path could not be imported."""
    table = _table(kind)
    target = table.get(name)
    if target is None and ":" in name:
        target = name
    if target is None:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"ModelConfig.{kind}={name!r} is not a registered {kind}; registered: "
            f"{', '.join(map(repr, table))} (or give a class as 'module:Class'){hint}"
        )
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"ModelConfig.{kind}={name!r}: cannot import {module_name!r}: {err}"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(
            f"ModelConfig.{kind}={name!r}: module {module_name!r} has no {attribute!r}"
        ) from None


def build(kind: str, cfg, **kwargs) -> nn.Module:
    """Build the variant the config names for `kind`: build("norm", cfg) -> RMSNorm(cfg)."""
    return resolve(kind, getattr(cfg, kind))(cfg, **kwargs)


def _table(kind: str) -> dict[str, str | Callable]:
    if kind not in REGISTRY:
        raise ValueError(f"unknown layer kind {kind!r}; kinds: {', '.join(REGISTRY)}")
    return REGISTRY[kind]
