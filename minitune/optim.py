"""Optimisers and learning-rate schedules for the training loop.

- AdamW with weight decay only on weight matrices: never on norms, biases or embeddings
  (decaying a norm's gain or an embedding towards 0 only hurts).
- Adafactor (Shazeer & Stern 2018), T5's optimiser: for a matrix it keeps the second moment as
  a row vector and a column vector instead of a full matrix, so its state is tiny.
- Muon (Jordan et al. 2024) for the hidden matrices, AdamW for the rest, in one optimizer. A
  matrix's update is its Nesterov momentum made (nearly) orthogonal by a few Newton–Schulz
  steps: every direction of the update gets about the same size, instead of a few large ones
  dominating, as they do in a raw gradient. Only the nn.Linear weights inside encoder and
  decoder blocks take it (`hidden_matrices`); embeddings, the output head, the copy head, norms
  and biases stay on AdamW. Its own peak rate `muon_lr` follows the same schedule as `lr`.
  One process or DDP (whole matrices, all-reduced gradients); the config refuses FSDP and LoRA.
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


def newton_schulz(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """A matrix near the orthogonal factor of G: for G = U S Vᵀ (its SVD), about U Vᵀ, the
    nearest matrix whose singular values are all 1. Computed with matmuls only, in float32.

    Each step maps every singular value s of X to a s + b s³ + c s⁵ (the singular vectors stay):
        A = X Xᵀ,   B = b A + c A²,   X <- a X + B X
    The coefficients (3.4445, -4.7750, 2.0315) push small values up fast rather than converge
    exactly: after 5 steps they lie in about [0.68, 1.14], not at 1, which Muon does not need.
    Dividing by the Frobenius norm first puts every singular value in (0, 1], where this works.
    A tall G is handled as its transpose, so that X Xᵀ is the smaller of the two Gram matrices.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.float() / (G.norm() + 1e-7)  # every singular value now in (0, 1]
    tall = G.shape[0] > G.shape[1]
    if tall:
        X = X.t()  # (cols, rows): wide
    for _ in range(steps):
        A = X @ X.t()
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.t() if tall else X


class Muon(torch.optim.Optimizer):
    """Muon on the param groups flagged "muon": True (2-D matrices only), AdamW on the others.

    For a matrix W (rows × cols) with gradient G, momentum β (0.95) and learning rate η:
        M <- β M + G                                   momentum buffer
        U = G + β M                                    Nesterov's look-ahead
        O = newton_schulz(U)                           ≈ the orthogonal factor of U
        W <- W (1 - η λ) - η · max(1, rows/cols)^½ · O    decoupled weight decay λ, then the step
    The factor max(1, rows/cols)^½ gives tall matrices (a feed-forward's W_i) an update of
    about the same RMS per entry as square ones. The other groups take AdamW's update, as
    torch.optim.AdamW computes it (its state names too: exp_avg, exp_avg_sq).

    One optimizer for both, so the loop, GradScaler and --resume see one state_dict. Under DDP
    it works unchanged: every process steps with the same all-reduced gradient. Under FSDP each
    process would hold only a shard of a matrix, which cannot be orthogonalised on its own: the
    config refuses that (and LoRA).
    """

    def __init__(
        self,
        params,
        lr: float = 0.02,
        momentum: float = 0.95,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        defaults = dict(
            lr=lr, momentum=momentum, betas=betas, eps=eps, weight_decay=weight_decay, muon=True
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["muon"] and any(p.dim() != 2 for p in group["params"]):
                raise ValueError("Muon: a group with muon=True may hold only 2-D matrices")

    @torch.no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient: decoupled weight decay, then Muon's step
        (groups flagged "muon") or AdamW's (the others), each at its group's lr."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = self._muon(p, group) if group["muon"] else self._adamw(p, group)
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-group["lr"])

    def _muon(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        """The orthogonalised Nesterov momentum of one matrix, scaled by max(1, rows/cols)^½."""
        g, beta = p.grad.float(), group["momentum"]
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(g)
        m = state["momentum_buffer"]
        m.mul_(beta).add_(g)  # M <- β M + G
        rows, cols = p.shape
        return newton_schulz(g + beta * m) * max(1.0, rows / cols) ** 0.5

    def _adamw(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        """AdamW's step direction m̂ / (sqrt(v̂) + ε), with bias-corrected moments m̂ and v̂."""
        g, (beta1, beta2) = p.grad.float(), group["betas"]
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(g), torch.zeros_like(g)
        state["step"] += 1
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m.lerp_(g, 1 - beta1)  # m <- β1 m + (1 - β1) g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v <- β2 v + (1 - β2) g²
        denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])  # sqrt(v̂) + ε
        return m / (1 - beta1**t) / denominator  # m̂ / (sqrt(v̂) + ε)


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The matrices Muon trains: the weight of every nn.Linear inside an encoder or decoder block
    (attention's W_q, W_k, W_v, W_o; the feed-forward's W_i, W_i1, W_o), trainable ones only.

    Everything else stays on AdamW: the embedding and the output head (lm_head, or the tied
    embedding) map token ids to vectors and back, a lookup table rather than a transformation
    of the hidden state; the copy head and the position tables sit outside the blocks too; norms
    and biases are vectors, with nothing to orthogonalise."""
    stacks = [model.encoder.layers, model.decoder.layers]
    linears = [m for layers in stacks for m in layers.modules() if isinstance(m, nn.Linear)]
    return [m.weight for m in linears if m.weight.requires_grad]


def muon_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Muon's param groups: the hidden matrices at muon_lr, then AdamW's two groups (as in
    `parameter_groups`) without them at lr. "lr_scale" is a group's peak rate over cfg.lr: the
    loop sets group["lr"] = schedule's lr × lr_scale, so both follow one schedule."""
    matrices = hidden_matrices(model)
    taken = {id(p) for p in matrices}
    groups = [
        {
            "params": matrices,
            "muon": True,
            "lr": cfg.muon_lr,
            "lr_scale": cfg.muon_lr / cfg.lr,
            "weight_decay": cfg.weight_decay,
        }
    ]
    for group in parameter_groups(model, cfg.weight_decay):
        params = [p for p in group["params"] if id(p) not in taken]
        groups.append({**group, "params": params, "muon": False, "lr": cfg.lr, "lr_scale": 1.0})
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer that `cfg.optimizer` names, over the trainable parameters of `model`."""
    if cfg.optimizer == "muon":
        return Muon(muon_groups(model, cfg), betas=(cfg.beta1, cfg.beta2), eps=1e-8)
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
