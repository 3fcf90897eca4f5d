"""Multi-head attention: one module for encoder self-, decoder causal self- and cross-attention.

Notation: B batch, H heads, D head width, C model width, T_q query length, T_k key length.

    Attention(Q, K, V) = softmax(s · Q Kᵀ + attn_bias) V      s = 1/sqrt(D), or 1 in T5

`attn_bias` carries everything that is not content: the position bias (T5) and the mask, as 0
where a query may attend a key and a very negative number where it may not. `make_attention_bias`
builds it once per stack; every layer of the stack reuses it.

`Attention` is the computation written out (project, split heads, positions and the KV cache,
scores + attn_bias, softmax, weighted sum, merge heads), to read and step through; every command
runs it. One step has a fused branch: while `fused` is True, `attend` calls PyTorch's
`scaled_dot_product_attention`, which computes the four steps of `attention_reference` in one
kernel and never stores the weights. A new layer runs the explicit steps;
`model.use_fused_kernels()` switches every layer, and the commands' `--fused-kernels auto` turns
the branch on with CUDA only (benchmarks/README.md, "One path"). A test proves the branch equal
to the explicit arithmetic (tests/test_layers.py); with the switch off, an edit to the explicit
arithmetic takes effect everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from minitune.layers.base import Layer, Rotary
from minitune.layers.kv_cache import KVCache

if TYPE_CHECKING:
    from minitune.config import ModelConfig


def make_attention_mask(
    attention_mask: torch.Tensor | None,
    q_len: int,
    k_len: int,
    causal: bool,
    offset: int = 0,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Which keys each query may attend: a boolean mask, True = may attend.

    attention_mask: (B, T_k), 1 for real source tokens and 0 for padding (the model's
    `attention_mask`). Only source tokens are ever padded keys: the encoder's self-attention and
    cross-attention attend the source; the decoder's own padding comes after its real tokens,
    where the causal mask already hides it (pass None there).
    causal: query i (at absolute position offset + i) may attend only keys j <= offset + i.
    Returns (B or 1, 1, T_q, T_k), or None when every query may attend every key (as for the
    one new token of a cached decoding step, which comes after all the keys).

    Example: q_len=k_len=3, causal, no padding ->
        [[1, 0, 0],
         [1, 1, 0],
         [1, 1, 1]]
    """
    mask = None
    if attention_mask is not None:
        mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T_k)
    if causal and k_len - 1 > offset:  # else the last key is not after the first query: no-op
        query_pos = torch.arange(offset, offset + q_len, device=device)[:, None]  # (T_q, 1)
        key_pos = torch.arange(k_len, device=device)[None, :]  # (1, T_k)
        causal_mask = (key_pos <= query_pos)[None, None]  # (1, 1, T_q, T_k)
        mask = causal_mask if mask is None else mask & causal_mask
    return mask


def make_segment_mask(
    query_segments: torch.Tensor, key_segments: torch.Tensor, causal: bool
) -> torch.Tensor:
    """Packed rows: which keys each query may attend when one row holds several examples.

    query_segments (B, T_q), key_segments (B, T_k): the example each token belongs to (1, 2, ...
    along the row; 0 = padding). A query attends only keys of its own example (a block-diagonal
    mask), and with `causal` only those at or before it. Returns (B, 1, T_q, T_k), True = may
    attend. A padding mask is the case of one example per row: segments = attention_mask.

    Example: segments [1, 1, 2, 0] against themselves, not causal ->
        [[1, 1, 0, 0],
         [1, 1, 0, 0],
         [0, 0, 1, 0],
         [0, 0, 0, 1]]     (padding sees only padding: its outputs are never used)
    """
    mask = query_segments[:, :, None] == key_segments[:, None, :]  # (B, T_q, T_k)
    if causal:  # segments are contiguous, so "at or before me in the row" is within my example
        T_q, T_k = mask.shape[1:]
        mask = mask & torch.ones(T_q, T_k, dtype=torch.bool, device=mask.device).tril()
    return mask[:, None]  # (B, 1, T_q, T_k)


def segment_positions(segments: torch.Tensor) -> torch.Tensor:
    """Each token's position within its own example: (B, L) segment ids -> (B, L) positions.

    Example: segments [1, 1, 1, 2, 2, 0] -> positions [0, 1, 2, 0, 1, 0]."""
    L = segments.shape[1]
    index = torch.arange(L, device=segments.device).expand_as(segments)  # (B, L)
    starts = torch.ones_like(segments, dtype=torch.bool)  # True where an example begins
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    first = torch.where(starts, index, 0).cummax(dim=1).values  # where my example began
    return index - first  # (B, L)


def make_attention_bias(
    mask: torch.Tensor | None, position_bias: torch.Tensor | None
) -> torch.Tensor | None:
    """Fold a boolean mask (True = may attend) and a position bias into one additive attn_bias.

    Allowed entries keep the position bias (or 0); forbidden ones get the most negative float32,
    `torch.finfo(torch.float32).min`, so that softmax gives them weight 0. (Not -1e4 or similar: a
    small constant can be outweighed by large scores and let a model read the future.)
    Returns a float32 tensor broadcastable to (B, H, T_q, T_k), or None if there is nothing to add.
    """
    if mask is None:
        return position_bias
    if position_bias is None:
        position_bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    return position_bias.float().masked_fill(~mask, torch.finfo(torch.float32).min)


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_bias: torch.Tensor | None,
    scale: float,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out step by step. q: (B, H, T_q, D); k, v: (B, H, T_k, D).

    Returns the output (B, H, T_q, D) and the attention weights (B, H, T_q, T_k).
    """
    # 1. similarity of every query with every key
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, T_q, T_k)
    # 2. add position bias and mask (forbidden entries become very negative)
    if attn_bias is not None:
        scores = scores + attn_bias
    # 3. softmax over the keys, in (at least) float32 for stability: each row sums to 1
    wide = torch.promote_types(scores.dtype, torch.float32)
    weights = torch.softmax(scores.to(wide), dim=-1).to(q.dtype)  # (B, H, T_q, T_k)
    # 4. weighted average of the values
    dropped = F.dropout(weights, p=dropout) if dropout > 0 else weights
    return dropped @ v, weights  # (B, H, T_q, D)


class Attention(Layer):
    """Multi-head attention with projections W_q, W_k, W_v, W_o (registry name "multi-head").

    Queries come from x; keys and values from `context`, which the caller chooses: x itself for
    self-attention (encoder, decoder), the encoder output for cross-attention. The module never
    asks which kind it is. Causality and padding come in through `attn_bias`; a rotary position
    scheme through `rotary` (self-attention only); while decoding, earlier keys and values
    through `cache` (a KVCache, kv_cache.py).

    Grouped-query attention (Ainslie et al. 2023): with `n_kv_heads` < `n_heads`, W_k and W_v
    make only n_kv_heads heads, each shared by n_heads / n_kv_heads query heads; n_kv_heads = 1
    is multi-query attention (Shazeer 2019). The KV cache then holds n_kv_heads heads: less
    memory and memory traffic when decoding, for a small loss of quality.

    Variants subclass it and override one step: `project` (as qk_norm.py does) or `attend` (the
    per-head computation, as docs/extending.md's sigmoid attention).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.n_kv_heads = cfg.n_kv_heads
        self.d_head = cfg.d_head
        self.scale = cfg.d_head**-0.5 if cfg.scale_attention else 1.0
        self.dropout = cfg.dropout
        self.q = nn.Linear(cfg.d_model, cfg.inner_dim, bias=cfg.bias)  # W_q
        self.k = nn.Linear(cfg.d_model, cfg.kv_dim, bias=cfg.bias)  # W_k
        self.v = nn.Linear(cfg.d_model, cfg.kv_dim, bias=cfg.bias)  # W_v
        self.o = nn.Linear(cfg.inner_dim, cfg.d_model, bias=cfg.bias)  # W_o
        # T5 folds 1/sqrt(D) into W_q's init when scores are not scaled (see init_weights)
        self.q_init_std = (cfg.d_model * (1 if cfg.scale_attention else cfg.d_head)) ** -0.5
        self.fused = False  # attend's fused branch (model.use_fused_kernels switches it)
        self.record_weights = False  # when True, keep the weights of the next call ...
        self.last_weights: torch.Tensor | None = None  # ... here: (B, H, T_q, T_k)

    def init_weights(self) -> None:
        """T5's init: W_k, W_v ~ N(0, C^-1/2), W_o ~ N(0, (H·D)^-1/2), W_q as q_init_std."""
        nn.init.normal_(self.q.weight, std=self.q_init_std)
        for linear in (self.k, self.v, self.o):
            nn.init.normal_(linear.weight, std=linear.in_features**-0.5)
        for linear in (self.q, self.k, self.v, self.o):
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None,
        attn_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        rotary: Rotary | None = None,
    ) -> torch.Tensor:
        """x: (B, T_q, C), the queries' tokens; context: (B, T_k, C), the keys' and values'
        tokens (x itself, or the encoder output), or None when `cache` already holds them all
        (cross-attention while decoding); returns (B, T_q, C).

        attn_bias: the additive mask and position bias, broadcastable to (B, H, T_q, T_k).
        cache: this layer's keys and values of earlier decoding steps (updated in place).
        rotary: the stack's position scheme bound to x's positions, when it turns queries and
        keys (RoPE)."""
        B, T, _ = x.shape
        # 1. project: q = x W_q, k = context W_k, v = context W_v; split into heads
        q, k, v = self.project(x, context)  # q (B, H, T_q, D); k, v (B, H_kv, T_k, D) or None
        # 2. rotary positions turn the new queries and keys (by their place after the cache's)
        if rotary is not None:
            q, k = rotary.rotate(q), rotary.rotate(k)
        # 3. decoding: the new keys and values (if any) join the cached ones; attend them all
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H_kv, T_k, D), T_k = every position cached
        # 4. grouped K/V heads: each serves n_heads / n_kv_heads query heads
        if self.n_kv_heads != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)  # (B, H, T_k, D)
            v = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
        # 5. in each head: softmax(s · q kᵀ + attn_bias) v
        out = self.attend(q, k, v, attn_bias)  # (B, H, T_q, D)
        # 6. concatenate the heads and project back to the model width
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.d_head)  # (B, T_q, H·D)
        return self.o(out)  # (B, T_q, C)

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values of `context` (B, T_k, C) alone, (B, H_kv, T_k, D) each, made by
        `project` itself (so a variant's own projection is kept): the decoder cache fills
        cross-attention's cache with the encoder output's, once (kv_cache.DecoderCache)."""
        no_queries = context[:, :0]  # (B, 0, C): project's queries are not wanted here
        _, k, v = self.project(no_queries, context)
        return k, v

    def split_heads(self, x: torch.Tensor, n_heads: int) -> torch.Tensor:
        """(B, T, heads·D) -> (B, heads, T, D)."""
        B, T, _ = x.shape
        return x.view(B, T, n_heads, self.d_head).transpose(1, 2)  # (B, heads, T, D)

    def project(
        self, x: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Queries from x, keys and values from `context` (None: they are all in the cache).

        Returns q (B, H, T_q, D) and k, v (B, H_kv, T_k, D), or None, None."""
        q = self.split_heads(self.q(x), self.n_heads)  # (B, H, T_q, D)
        if context is None:
            return q, None, None
        k = self.split_heads(self.k(context), self.n_kv_heads)  # (B, H_kv, T_k, D)
        v = self.split_heads(self.v(context), self.n_kv_heads)  # (B, H_kv, T_k, D)
        return q, k, v

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_bias: torch.Tensor | None
    ) -> torch.Tensor:
        """softmax(s · q kᵀ + attn_bias) v in every head: (B, H, T_q, D) from q (B, H, T_q, D)
        and k, v (B, H, T_k, D); the four steps are `attention_reference`."""
        dropout = self.dropout if self.training else 0.0
        # the four steps in one kernel, which never makes the weights; for a block of queries
        # (a decoding step's single query takes the steps below: benchmarks/README.md, "One path")
        if self.fused and q.shape[-2] > 1 and not self.record_weights:
            if attn_bias is not None:
                attn_bias = attn_bias.to(q.dtype)  # under autocast q is bf16: one dtype
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_bias, dropout_p=dropout, scale=self.scale
            )  # (B, H, T_q, D)
        out, weights = attention_reference(q, k, v, attn_bias, self.scale, dropout)
        if self.record_weights:
            self.last_weights = weights.detach()  # (B, H, T_q, T_k)
        return out
