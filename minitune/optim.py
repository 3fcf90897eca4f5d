"""Optimisers and learning-rate schedules for the training loop.

- AdamW with weight decay only on weight matrices: never on norms, biases or embeddings
  (decaying a norm's gain or an embedding towards 0 only hurts).
- Adafactor (Shazeer & Stern 2018), T5's optimiser: for a matrix it keeps the second moment as
  a row vector and a column vector instead of a full matrix, so its state is tiny.
- Schedules: linear warm-up, then cosine decay (to 10% of the peak), inverse square root
  (T5's), or constant. `lr_factor(step)` is the multiplier of the peak learning rate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minitune.config import TrainConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices of Linear layers (decayed), everything else (not decayed)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_matrix = isinstance(module, nn.Linear) and name == "weight"
            (decay if is_matrix else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Adafactor(torch.optim.Optimizer):
    """Adafactor without momentum, with update clipping (d = 1) and a fixed learning rate.

    For a matrix gradient G (n × m), the running mean of G² is approximated by the outer
    product of its row means R (n) and column means C (m), divided by their overall mean:
        V ≈ R Cᵀ / mean(R)
    update = G / sqrt(V), then scaled down if its RMS exceeds 1; decay β2_t = 1 - t^-0.8.
    """

    def __init__(self, params, lr: float = 1e-3, eps: float = 1e-30, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                beta2 = 1.0 - state["step"] ** -0.8
                g2 = g * g + group["eps"]
                if g.dim() >= 2:  # factored second moment: a row and a column statistic
                    if "row" not in state:
                        state["row"] = torch.zeros(g.shape[:-1], device=g.device)
                        state["col"] = torch.zeros(g.shape[:-2] + g.shape[-1:], device=g.device)
                    state["row"].lerp_(g2.mean(dim=-1), 1 - beta2)
                    state["col"].lerp_(g2.mean(dim=-2), 1 - beta2)
                    row = state["row"] / state["row"].mean(dim=-1, keepdim=True)
                    v = row.unsqueeze(-1) * state["col"].unsqueeze(-2)
                else:
                    if "v" not in state:
                        state["v"] = torch.zeros_like(g)
                    state["v"].lerp_(g2, 1 - beta2)
                    v = state["v"]
                update = g * torch.rsqrt(v)
                update /= max(1.0, update.pow(2).mean().sqrt().item())  # clip RMS to 1
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-group["lr"])


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adafactor":
        return Adafactor(groups, lr=cfg.lr)
    # the same update computed three ways: parameter by parameter, all parameters per operation
    # (foreach: fewer, larger calls), or one fused kernel; "auto" lets PyTorch choose (foreach)
    kernel = {
        "auto": {},
        "for-loop": {"foreach": False},
        "foreach": {"foreach": True},
        "fused": {"fused": True},
    }[cfg.adamw_impl]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, **kernel)


def lr_factor(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based).

    `time_fraction` is the share of the wall-clock budget (`max_minutes`) already spent. The
    cosine follows whichever runs out first, steps or minutes, so a run cut by the clock still
    ends with a decayed learning rate (on a slower machine it simply takes fewer steps):
    progress = max((step - warmup) / (max_steps - warmup), time_fraction).
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps  # linear warm-up
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "inverse_sqrt":
        return math.sqrt(max(cfg.warmup_steps, 1) / (step + 1))
    # cosine from 1 at the end of warm-up to 0.1 at max_steps (or at max_minutes)
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    progress = max(progress, time_fraction)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
