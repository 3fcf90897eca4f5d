"""The fast decoder: one generation step of a T5-style decoder with as few operations as possible.

Notation: B batch rows (beams included), S source length, L decoder layers, H heads, D head width,
C = d_model, F = d_ff, V vocabulary, M = max_length (decoder positions), t the current position.

`model.decode` (model.py) is the readable decoder: each layer builds its masks, projects, updates
its own cache and calls its sub-layers through modules. At one token per step, the arithmetic of a
small model is a few matrix-vector products, and much of the time goes to running ~280 small
operators per step (bench-tiny; each costs microseconds of dispatch, whatever its size). This file
computes the same step from the same weights with 138 operators:

- per sub-layer one matmul: [W_q; W_k; W_v] for self-attention, W_q for cross-attention (its keys
  and values are the encoder output's, computed once for all layers in one matmul), [W_i0; W_i1]
  for a gated feed-forward; the weights are stacked once per model and reused until one changes;
- weights are stored transposed, (in, out) contiguous: x @ Wᵀ is then a plain matrix-vector
  product for one row (measured 1.4x faster than F.linear's, whose weight is read across rows);
- the position bias of all M positions is one table (built once); the causal mask is not needed
  (the new token comes after every cached key) and the padding bias is built once;
- the self-attention cache of all layers is one preallocated tensor (L, B, 2, H, M, D); a step
  writes its keys and values with one in-place copy per layer, and beam search reorders all
  layers with one index_select into a spare buffer.

The step reads weights only through `model.state_dict()` names (a public contract: checkpoints
use them), never through module attributes, so it does not depend on how layers are written.

`generate` uses it for a model on the fast path (`model.set_impl("fast")`, as the command
line's jobs do) or when asked (`fast_decode=True`), if it supports the model
(`unsupported_reason` says why not otherwise; generate then uses `model.decode`): T5-style
models: multi-head attention with n_kv_heads = n_heads, position "relative" or "none", RMSNorm,
pre-norm, no linear biases, any feed-forward (relu, gelu, gated-gelu, swiglu), tied or untied
head, with or without the copy head; float32 weights, no LoRA. Tests (tests/test_fast_decode.py,
tests/test_paths.py) prove the tokens equal to `model.decode`'s.

    step = FastDecodeStep(model, memory, source_mask, source_ids, max_length=32)
    logits = step(tokens)           # tokens (B, t + 1), start token included -> (B, V) float32
    step.reorder(rows)              # beam search: row i continues from row rows[i]
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from minitune.layers.feedforward import ACTIVATIONS
from minitune.layers.positions import relative_position_bucket


def unsupported_reason(model) -> str | None:
    """Why the fast decoder cannot run `model` (a sentence), or None if it can."""
    cfg = model.config
    checks = [
        (cfg.attention == "multi-head", f"attention {cfg.attention!r}"),
        (cfg.n_kv_heads == cfg.n_heads, "grouped-query attention (n_kv_heads < n_heads)"),
        (cfg.position in ("relative", "none"), f"position {cfg.position!r}"),
        (cfg.norm == "rms" and cfg.norm_position == "pre", "a norm other than pre-norm RMSNorm"),
        (not cfg.bias, "linear biases"),
        (cfg.ffn in ACTIVATIONS, f"feed-forward {cfg.ffn!r}"),
        (getattr(model, "lora", None) is None, "LoRA adapters"),
        (cfg.n_decoder_layers > 0, "no decoder layers"),
    ]
    for ok, what in checks:
        if not ok:
            return f"not supported by the fast decoder: {what}"
    state = model.state_dict()
    missing = [name for name in _expected_names(cfg) if name not in state]
    if missing:
        return f"not supported by the fast decoder: no weight {missing[0]!r}"
    if any(state[name].dtype != torch.float32 for name in _expected_names(cfg)):
        return "not supported by the fast decoder: weights are not float32"
    return None


def _expected_names(cfg) -> list[str]:
    """The state_dict names the fast decoder reads."""
    names = ["embed.weight", "decoder.final_norm.weight"]
    if not cfg.tie_embeddings:
        names.append("lm_head.weight")
    if cfg.position == "relative":
        names.append("decoder.position.bias_table.weight")
    for i in range(cfg.n_decoder_layers):
        p = f"decoder.layers.{i}."
        for part in ("self_attn", "cross_attn"):
            names.append(p + part + ".norm.weight")
            names += [p + f"{part}.sublayer.{w}.weight" for w in "qkvo"]
        names.append(p + "ff.norm.weight")
        ffs = ("wi", "wi_gate", "wo") if ACTIVATIONS[cfg.ffn][1] else ("wi", "wo")
        names += [p + f"ff.sublayer.{w}.weight" for w in ffs]
    if cfg.copy_head:
        names += ["copy_head.q.weight", "copy_head.k.weight"]
        names += ["copy_head.gate.weight", "copy_head.gate.bias"]
    return names


class DecoderWeights:
    """The decoder's weights, stacked as the fast step multiplies them (built once per model).

    Per layer i: norms g (C,), self-attention [W_q; W_k; W_v] (3·H·D, C) and W_o, cross-attention
    W_q and W_o, feed-forward [W_i0; W_i1] (2F, C) or W_i (F, C), and W_o; for all layers at once
    the cross-attention [W_k; W_v] of every layer (L·2·H·D, C), applied once to the encoder output.
    """

    def __init__(self, model):
        cfg = model.config
        s = {name: t.detach() for name, t in model.state_dict().items()}
        L = cfg.n_decoder_layers
        layer = [f"decoder.layers.{i}." for i in range(L)]

        def stack_t(*names: str) -> torch.Tensor:
            """[W_1; W_2; ...]ᵀ, contiguous (in_features, Σ out_features): x @ it = x [W_1; ...]ᵀ"""
            return torch.cat([s[name] for name in names]).t().contiguous()

        self.config = cfg
        self.embed = s["embed.weight"]  # (V, C)
        self.head_t = stack_t("embed.weight" if cfg.tie_embeddings else "lm_head.weight")  # (C, V)
        self.final_norm = s["decoder.final_norm.weight"]
        self.self_norm = [s[p + "self_attn.norm.weight"] for p in layer]
        self.self_qkv_t = [
            stack_t(*[p + f"self_attn.sublayer.{w}.weight" for w in "qkv"]) for p in layer
        ]  # (C, 3·H·D) each
        self.self_o_t = [stack_t(p + "self_attn.sublayer.o.weight") for p in layer]  # (H·D, C)
        self.cross_norm = [s[p + "cross_attn.norm.weight"] for p in layer]
        self.cross_q_t = [stack_t(p + "cross_attn.sublayer.q.weight") for p in layer]  # (C, H·D)
        self.cross_o_t = [stack_t(p + "cross_attn.sublayer.o.weight") for p in layer]  # (H·D, C)
        self.cross_kv = torch.cat(
            [s[p + f"cross_attn.sublayer.{w}.weight"] for p in layer for w in "kv"]
        )  # (L·2·H·D, C): layer 0's W_k, layer 0's W_v, layer 1's W_k, ...
        self.activation, gated = ACTIVATIONS[cfg.ffn]
        self.ff_norm = [s[p + "ff.norm.weight"] for p in layer]
        ins = ("wi", "wi_gate") if gated else ("wi",)
        self.ff_in_t = [stack_t(*[p + f"ff.sublayer.{w}.weight" for w in ins]) for p in layer]
        self.ff_out_t = [stack_t(p + "ff.sublayer.wo.weight") for p in layer]  # (F, C)
        self.gated = gated
        self.bias_table = s.get("decoder.position.bias_table.weight")  # (buckets, H) or None
        self.copy = None
        if cfg.copy_head:
            self.copy = {
                name: s[f"copy_head.{name}"]
                for name in ("q.weight", "k.weight", "gate.weight", "gate.bias")
            }

    def position_bias(self, M: int) -> torch.Tensor | None:
        """T5's decoder position bias for M positions: (H, M, M), row t for the query at t.

        bias[h, t, j] = b[bucket(j - t), h]; only j <= t is ever read (the keys so far)."""
        if self.bias_table is None:
            return None
        cfg = self.config
        pos = torch.arange(M, device=self.bias_table.device)
        buckets = relative_position_bucket(
            pos[None, :] - pos[:, None], False, cfg.relative_buckets, cfg.relative_max_distance
        )  # (M, M), key minus query
        return self.bias_table[buckets].permute(2, 0, 1).contiguous()  # (H, M, M)


# Stacked weights are built once per model and reused while no weight changes (an optimizer
# step or load_state_dict bumps a tensor's _version; a new tensor has a new data_ptr).
_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoder_weights(model) -> DecoderWeights:
    """The model's DecoderWeights, rebuilt only when a weight changed since the last call."""
    key = tuple((t.data_ptr(), t._version) for t in model.state_dict().values())
    cached = _WEIGHTS.get(model)
    if cached is None or cached[0] != key:
        with torch.inference_mode():
            cached = (key, DecoderWeights(model))
        _WEIGHTS[model] = cached
    return cached[1]


def rms_norm(x: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    """g · x / sqrt(mean(x²) + eps) over the last axis: layers/norm.py's RMSNorm as one operator
    (the same numbers in float32)."""
    return F.rms_norm(x, g.shape, g, eps)


class FastDecodeStep:
    """One decoding step at a time for B rows of one generation (see the module docstring).

    Built once per generation: it computes the cross-attention keys/values of `memory` for all
    layers, the padding bias and the position-bias table, and allocates the self-attention cache.
    Each call feeds the newest token of every row and returns next-token logits (B, V), float32
    (log-probabilities with a copy head, as `model.decode`).
    """

    def __init__(
        self,
        model,
        memory: torch.Tensor,
        source_mask: torch.Tensor | None,
        source_ids: torch.Tensor,
        max_length: int,
    ):
        w = self.w = decoder_weights(model)
        cfg = model.config
        B, S, C = memory.shape
        L, H, D = cfg.n_decoder_layers, cfg.n_heads, cfg.d_head
        self.B, self.H, self.D, self.eps = B, H, D, cfg.norm_eps
        self.scale = D**-0.5 if cfg.scale_attention else 1.0
        self.out_scale = C**-0.5 if cfg.scale_output else None
        self.t = 0  # position of the next token
        # cross-attention keys and values of every layer: one matmul, (L, 2, B, H, S, D)
        kv = F.linear(memory, w.cross_kv).view(B, S, L, 2, H, D)
        self.cross_kv = kv.permute(2, 3, 0, 4, 1, 5).contiguous()
        # padding: 0 where a source token is real, the most negative float where it is padding
        self.cross_bias = None  # (B, 1, 1, S)
        if source_mask is not None and not bool(source_mask.bool().all()):
            hidden = source_mask[:, None, None, :] == 0
            self.cross_bias = torch.zeros(hidden.shape, device=memory.device).masked_fill(
                hidden, torch.finfo(torch.float32).min
            )
        position_bias = w.position_bias(max_length)  # (H, M, M) or None
        self.position_bias = None if position_bias is None else position_bias[None]
        # self-attention keys and values of every layer, preallocated: (L, B, 2, H, M, D)
        self.self_kv = memory.new_empty(L, B, 2, H, max_length, D)
        self.spare = None  # a second buffer for beam search's reorder
        self.copy = None
        if w.copy is not None:  # pointer keys of the source, (B, C, S), and the padding mask
            keys = F.linear(memory, w.copy["k.weight"]).transpose(1, 2)
            pad = None if source_mask is None else source_mask == 0  # (B, S)
            self.copy = (keys, pad, source_ids, C**-0.5)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, t + 1), the start token first -> logits (B, V) of the token after the last."""
        w, B, H, D, t = self.w, self.B, self.H, self.D, self.t
        x = F.embedding(tokens[:, -1], w.embed)  # (B, C)
        bias = None if self.position_bias is None else self.position_bias[:, :, t : t + 1, : t + 1]
        for i in range(len(w.self_qkv_t)):
            # 1. causal self-attention: q, k, v = norm(x) [W_q; W_k; W_v]ᵀ; k, v join the cache
            qkv = self.project(self.norm(x, w.self_norm[i]), w.self_qkv_t[i])  # (B, 3·H·D)
            q, kv = qkv[:, : H * D], qkv[:, H * D :]
            cache = self.self_kv[i]  # (B, 2, H, M, D)
            cache[:, :, :, t] = kv.view(B, 2, H, D)  # written in place at position t
            k, v = cache[:, 0, :, : t + 1], cache[:, 1, :, : t + 1]  # (B, H, t + 1, D)
            # softmax(s · q kᵀ + position bias) v; no mask: the keys are positions 0..t
            out = self.attend(q.view(B, H, 1, D), k, v, bias)  # (B, H, 1, D)
            x = x + self.project(out.view(B, H * D), w.self_o_t[i])  # (B, C)
            # 2. cross-attention to the encoder output (keys and values computed once)
            q = self.project(self.norm(x, w.cross_norm[i]), w.cross_q_t[i])  # (B, H·D)
            k, v = self.cross_kv[i]  # (B, H, S, D) each
            out = self.attend(q.view(B, H, 1, D), k, v, self.cross_bias)  # (B, H, 1, D)
            x = x + self.project(out.view(B, H * D), w.cross_o_t[i])  # (B, C)
            # 3. feed-forward: W_o · (act(W_i0 h) ⊙ W_i1 h), h = norm(x); no gate if not gated
            h = self.project(self.norm(x, w.ff_norm[i]), w.ff_in_t[i])  # (B, 2F) or (B, F)
            if w.gated:
                a, gate = h.chunk(2, dim=-1)
                h = w.activation(a) * gate  # (B, F)
            else:
                h = w.activation(h)
            x = x + self.project(h, w.ff_out_t[i])  # (B, C)
        self.t = t + 1
        h = self.norm(x, w.final_norm)  # (B, C)
        out = h * self.out_scale if self.out_scale is not None else h
        logits = self.project(out, w.head_t)  # (B, V)
        if self.copy is None:
            return logits
        return self.copy_head(h, logits)

    # The three operations a step is made of; benchmarks/decode_levers.py overrides them to
    # measure alternatives (F.linear, explicit attention, a hand-written norm).

    def project(self, x: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        """x (B, in) @ w_t (in, out): a projection by a transposed, stacked weight."""
        return x @ w_t

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """softmax(s · q kᵀ + bias) v for one query per row: q (B, H, 1, D), k, v (B, H, T, D)."""
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)

    def norm(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """RMSNorm of x (B, C) with gain g (C,)."""
        return rms_norm(x, g, self.eps)

    def copy_head(self, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """layers/copy.py for one decoder position: log(g · p_vocab + (1 - g) · pointer), (B, V).

        a = softmax(h W_q · keys / sqrt(C)), never at padding; g = sigmoid(h · w_g + b_g)."""
        keys, pad, source_ids, scale = self.copy
        c = self.w.copy
        q = F.linear(h, c["q.weight"])  # (B, C)
        scores = (q[:, None, :] @ keys).squeeze(1) * scale  # (B, S)
        if pad is not None:
            scores = scores.masked_fill(pad, torch.finfo(scores.dtype).min)
        a = scores.softmax(dim=-1)  # (B, S)
        g = torch.sigmoid(F.linear(h, c["gate.weight"], c["gate.bias"]))  # (B, 1)
        p = (g * logits.softmax(dim=-1)).scatter_add_(-1, source_ids, (1 - g) * a)  # (B, V)
        return p.clamp_min(1e-30).log()

    def reorder(self, rows: torch.Tensor) -> None:
        """Beam search: row i of every layer's cache becomes the old row rows[i] (one copy)."""
        if self.spare is None:
            self.spare = torch.empty_like(self.self_kv)
        torch.index_select(self.self_kv, 1, rows, out=self.spare)
        self.self_kv, self.spare = self.spare, self.self_kv
