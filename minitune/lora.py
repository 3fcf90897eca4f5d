"""LoRA: fine-tune a few low-rank matrices next to frozen weights (Hu et al. 2021).

Full fine-tuning updates every weight W (d_out × d_in). LoRA freezes W and learns a low-rank
change instead, with two small matrices A (r × d_in) and B (d_out × r), r ≪ d:

    y = W x + (α / r) · B A x

B starts at zero, so a fresh adapter changes nothing and training starts exactly from the base
model; A starts random. Only A and B are trained (r · (d_in + d_out) numbers per matrix instead of
d_in · d_out), and only they are saved: an adapter checkpoint is a few hundred kilobytes that
points at its base. After training, `merge_lora` folds B A into W (W' = W + (α/r) B A), which
gives a plain model as fast as the base.

    add_lora(model, rank=8)                    # q and v of every attention layer
    add_lora(model, rank=8, targets=("q", "k", "v", "o"), where=("decoder", "cross"))
    merge_lora(model)                          # back to plain nn.Linear layers

Command line: `minitune train --init runs/laptop/best --lora-rank 8 --out runs/lora`, then
`minitune lora merge --checkpoint runs/lora/best --out runs/lora-merged`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

TARGETS = ("q", "k", "v", "o")  # the projections of an attention layer that may get adapters
PLACES = ("encoder", "decoder", "cross")  # encoder self-, decoder self-, cross-attention


@dataclass
class LoRASettings:
    """Where the adapters are and how big (saved with adapter checkpoints)."""

    rank: int = 8  # r
    alpha: float = 16.0  # α; the update is scaled by α / r
    targets: tuple[str, ...] = ("q", "v")  # projections that get an adapter
    where: tuple[str, ...] = PLACES  # which attention layers
    dropout: float = 0.0  # dropout on the adapter's input

    def __post_init__(self) -> None:
        self.targets, self.where = tuple(self.targets), tuple(self.where)
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRA rank must be a positive integer, got {self.rank!r}")
        for name, values, allowed in (
            ("targets", self.targets, TARGETS),
            ("where", self.where, PLACES),
        ):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise ValueError(f"LoRA {name}={list(values)}: allowed are {', '.join(allowed)}")

    def to_dict(self) -> dict:
        return {**asdict(self), "targets": list(self.targets), "where": list(self.where)}


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update: y = W x + (α/r) · B A x."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)  # W (and its bias) stay as they are
        self.scale = alpha / rank  # α / r
        like = {"device": base.weight.device, "dtype": base.weight.dtype}  # as the base
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **like))  # A: (r, d_in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **like))  # B: (d_out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear's own init
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.dropout(x) @ self.lora_A.t() @ self.lora_B.t()  # B A x, (..., d_out)
        return self.base(x) + self.scale * update

    def merged(self) -> nn.Linear:
        """The base Linear with the update folded in: W' = W + (α/r) · B A."""
        with torch.no_grad():
            self.base.weight += self.scale * (self.lora_B @ self.lora_A).to(self.base.weight)
        self.base.requires_grad_(True)
        return self.base


def _attention_layers(model, where: tuple[str, ...]):
    """(place, attention module) for each attention layer selected by `where`."""
    if "encoder" in where:
        for layer in model.encoder.layers:
            yield "encoder", layer.self_attn
    for layer in model.decoder.layers:
        if "decoder" in where:
            yield "decoder", layer.self_attn
        if "cross" in where:
            yield "cross", layer.cross_attn


def add_lora(model, settings: LoRASettings | None = None, **kwargs) -> LoRASettings:
    """Freeze every weight of `model` and put LoRA adapters on the chosen projections.

    Returns the settings used (kwargs are LoRASettings fields). The model is changed in place.
    """
    settings = settings or LoRASettings(**kwargs)
    model.requires_grad_(False)
    for place, attention in _attention_layers(model, settings.where):
        for target in settings.targets:
            linear = getattr(attention, target, None)
            if not isinstance(linear, nn.Linear):
                raise ValueError(
                    f"LoRA target {target!r}: the {place} attention ({type(attention).__name__}) "
                    f"has no nn.Linear named {target!r}"
                )
            setattr(
                attention,
                target,
                LoRALinear(linear, settings.rank, settings.alpha, settings.dropout),
            )
    model.lora = settings
    return settings


def merge_lora(model) -> None:
    """Fold every adapter into its base weight; the model becomes a plain model again."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merged())
    model.requires_grad_(True)
    model.lora = None


def lora_state_dict(model) -> dict[str, torch.Tensor]:
    """Only the adapter matrices (what an adapter checkpoint stores)."""
    return {k: v for k, v in model.state_dict().items() if ".lora_A" in k or ".lora_B" in k}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = {id(p): p for p in model.parameters()}.values()  # shared ones once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
