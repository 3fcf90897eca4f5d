"""The layer registry: which names a `ModelConfig` may use for each kind of layer.

Four kinds of layer are chosen by name, one `ModelConfig` field each:

    attention  ModelConfig.attention   e.g. "multi-head"
    position   ModelConfig.position    e.g. "relative", "rotary", "alibi"
    ffn        ModelConfig.ffn         e.g. "gated-gelu", "swiglu"
    norm       ModelConfig.norm        e.g. "rms", "layer"

Each name maps to the class that builds the layer from the config; what each class must provide
is written down in layers/base.py (`AttentionLayer`, `positions.PositionScheme`):

    attention  cls(cfg)                   forward(x, context, attn_bias=None, cache=None,
                                                  rotary=None) -> (B, T, C);
                                          keys_values(context) -> k, v (for the decoder cache)
    position   cls(cfg, causal)           embed(x, positions), position_bias(q_len, k_len, offset),
                                          rotate(x, positions)  (see positions.PositionScheme)
    ffn        cls(cfg)                   forward(x) -> (B, T, C)
    norm       cls(cfg)                   forward(x) -> same shape

Every layer of the model is built here, by the name its config gives (`build`), T5's own
("multi-head", "relative", "gated-gelu", "rms") as any other. Adding a
variant is one new file (the class) plus one line in a table below. A config may also name a
class by its path, "my_module:MyAttention", without touching this file (the module must be
importable wherever the model is built or loaded). `docs/extending.md` walks through both;
`minitune.kit.conformance` checks a variant against the contract.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from minitune.config import ConfigError
from minitune.layers.alibi import ALiBi
from minitune.layers.attention import Attention
from minitune.layers.feedforward import FeedForward
from minitune.layers.norm import LayerNorm, RMSNorm
from minitune.layers.positions import (
    LearnedPositions,
    PositionScheme,
    RelativeBiasAndSinusoids,
    RelativePositionBias,
    SinusoidalPositions,
)
from minitune.layers.qk_norm import QKNormAttention
from minitune.layers.rotary import RotaryPositions

if TYPE_CHECKING:
    from minitune.config import ModelConfig

ATTENTIONS = {
    "multi-head": Attention,  # MHA; MQA/GQA via n_kv_heads
    "qk-norm": QKNormAttention,  # RMS-normalised queries and keys
}
POSITIONS = {
    "relative": RelativePositionBias,  # T5
    "relative+sinusoidal": RelativeBiasAndSinusoids,  # both
    "sinusoidal": SinusoidalPositions,  # 2017 paper
    "learned": LearnedPositions,  # BERT, GPT-2
    "rotary": RotaryPositions,  # RoPE (Su et al. 2021)
    "alibi": ALiBi,  # Press et al. 2022
    "none": PositionScheme,  # no positions at all
}
FEED_FORWARDS = {  # one class; the name picks the activation (feedforward.py)
    "relu": FeedForward,  # T5 v1.0
    "gelu": FeedForward,
    "gated-gelu": FeedForward,  # T5 v1.1, Flan-T5
    "swiglu": FeedForward,  # LLaMA
}
NORMS = {
    "rms": RMSNorm,  # T5
    "layer": LayerNorm,  # 2017 paper
}

# kind -> its table; the kind is also the ModelConfig field that names the variant
REGISTRY: dict[str, dict[str, Callable[..., nn.Module]]] = {
    "attention": ATTENTIONS,
    "position": POSITIONS,
    "ffn": FEED_FORWARDS,
    "norm": NORMS,
}


def names(kind: str) -> list[str]:
    """The registered names of one kind, e.g. names("norm") -> ["rms", "layer"]."""
    return list(_table(kind))


def register(kind: str, name: str, cls: Callable[..., nn.Module]) -> None:
    """Add a variant at run time (tests, notebooks): `register("norm", "mine", MyNorm)`.

    For a variant that should last, add its line to the table above instead."""
    _table(kind)[name] = cls


def resolve(kind: str, name: str) -> Callable[..., nn.Module]:
    """The class that builds variant `name` of `kind`.

    `name` is a registered name or a "module:Class" path. Raises ConfigError saying what is
    allowed, or why the path could not be imported."""
    table = _table(kind)
    if name in table:
        return table[name]
    if ":" not in name:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"ModelConfig.{kind}={name!r} is not a registered {kind}; registered: "
            f"{', '.join(map(repr, table))} (or give a class as 'module:Class'){hint}"
        )
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"ModelConfig.{kind}={name!r}: cannot import {module_name!r}: {err}"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(
            f"ModelConfig.{kind}={name!r}: module {module_name!r} has no {attribute!r}"
        ) from None


def check(cfg: ModelConfig) -> None:
    """Raise ConfigError for the first variant name of `cfg` that names no class (what is allowed,
    and a "did you mean"). The model checks its config here before building a layer, so a typo
    fails at once, not deep inside a forward pass. (config.py cannot check names itself: it is
    a leaf that imports no layer, and a name may be registered at run time or be a path.)"""
    for kind in REGISTRY:  # "attention", "position", "ffn", "norm": each a ModelConfig field
        resolve(kind, getattr(cfg, kind))


def build(kind: str, cfg: ModelConfig, **kwargs) -> nn.Module:
    """Build the variant the config names for `kind`: build("norm", cfg) -> RMSNorm(cfg)."""
    return resolve(kind, getattr(cfg, kind))(cfg, **kwargs)


def _table(kind: str) -> dict[str, Callable[..., nn.Module]]:
    if kind not in REGISTRY:
        raise ValueError(f"unknown layer kind {kind!r}; kinds: {', '.join(REGISTRY)}")
    return REGISTRY[kind]
