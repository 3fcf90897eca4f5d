"""The encoder–decoder Transformer: Encoder, Decoder and Seq2SeqTransformer.

Notation: B batch, S source (encoder) length, T target (decoder) length, C = d_model, V = vocab.

    input_ids (B, S)         -embed-> Encoder         -> memory (B, S, C)
    decoder_input_ids (B, T) -embed-> Decoder(memory) -> hidden (B, T, C) -head-> logits (B, T, V)

The encoder reads the prompt with bidirectional self-attention; the decoder writes the answer one
token at a time, attending causally to what it has written and, through cross-attention, to the
whole prompt. Training feeds the decoder the target shifted right by one (`shift_right`, "teacher
forcing"); generation (`minitune.generate`) feeds it its own previous tokens, with a KV cache.

Packed rows (`segments`, minitune/data/packing.py): a row may hold several examples one after
another, sources in input_ids and targets in the decoder's row, each token labelled with its
example's number (`Segments`). Every attention then stays inside its own example
(`make_segment_mask`), and positions count from each example's first token, so a packed batch
gives the same loss and gradients as the same examples padded one per row, with no padding.

Masks: `attention_mask` (B, S), 1 for real source tokens and 0 for padding, is the one padding
mask there is, the source's, under one name from `model(...)` and `model.generate(...)` down to
the layers. The decoder's own padding
comes after its real tokens, where the causal mask already hides it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from minitune.config import ModelConfig
from minitune.generate import generate
from minitune.layers import registry
from minitune.layers.attention import (
    Attention,
    make_attention_bias,
    make_attention_mask,
    make_segment_mask,
    segment_positions,
)
from minitune.layers.base import Layer, Rotary
from minitune.layers.blocks import (
    DecoderLayer,
    EncoderLayer,
    set_activation_checkpointing,
)
from minitune.layers.copy import CopyHead
from minitune.layers.kv_cache import DecoderCache
from minitune.layers.positions import PositionScheme, Rotation, token_positions


class Segments(NamedTuple):
    """Packed rows: which example each token belongs to (1, 2, ... along a row; 0 = padding)."""

    source: torch.Tensor  # (B, S), beside input_ids
    target: torch.Tensor  # (B, T), beside the labels and the decoder inputs


def shift_right(
    labels: torch.Tensor, start_id: int, pad_id: int, target_segments: torch.Tensor | None = None
) -> torch.Tensor:
    """Decoder inputs for teacher forcing: the labels moved one step right behind a start token.

    labels [[a, b, c, eos]] -> decoder inputs [[start, a, b, c]]; so at position t the decoder
    sees y_<t and is trained to predict y_t. Ignored label positions (-100) become padding.
    Packed rows (`target_segments`, Segments.target): every example starts afresh,
    labels [[a, eos, c, eos]] with target_segments [[1, 1, 2, 2]] -> [[start, a, start, c]].
    """
    shifted = labels.new_full(labels.shape, start_id)
    shifted[:, 1:] = labels[:, :-1]
    if target_segments is not None:  # each packed example's first token follows a start token
        segments = target_segments  # (B, T)
        starts = segments != 0
        starts[:, 1:] &= segments[:, 1:] != segments[:, :-1]
        shifted = shifted.masked_fill(starts, start_id).masked_fill(segments == 0, pad_id)
    return shifted.masked_fill(shifted == -100, pad_id)  # (B, T)


def source_padding_bias(
    attention_mask: torch.Tensor | None, S: int, device: torch.device
) -> torch.Tensor | None:
    """attn_bias for cross-attention: 0 for real source tokens, very negative for padding;
    (B, 1, 1, S), one row that serves every target position (None without padding)."""
    mask = make_attention_mask(attention_mask, 1, S, causal=False, device=device)
    return make_attention_bias(mask, None)


def rotation(position: PositionScheme, positions: torch.Tensor) -> Rotary | None:
    """What a stack hands its attention layers to turn queries and keys: a rotary scheme bound
    to the positions (B or 1, T) of the tokens at hand (RoPE), or None."""
    return Rotation(position, positions) if position.rotates else None


class Encoder(nn.Module):
    """A stack of encoder layers over embedded source tokens."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.position = registry.build("position", cfg, causal=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.final_norm = (
            registry.build("norm", cfg) if cfg.norm_position == "pre" else nn.Identity()
        )

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        source_segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: embedded source (B, S, C); attention_mask: (B, S), 1 = token, 0 = pad; or, for
        packed rows, source_segments: (B, S) the example of each token (Segments.source)."""
        S, segments = x.shape[1], source_segments
        if segments is None:
            # every query may attend every real source token
            mask = make_attention_mask(attention_mask, S, S, causal=False, device=x.device)
            positions = token_positions(S, device=x.device)  # (1, S): from the row's start
        else:  # packed: every query attends the tokens of its own example only
            mask = make_segment_mask(segments, segments, causal=False)
            positions = segment_positions(segments)  # (B, S), from each example's first token
        x = self.dropout(self.position.embed(x, positions))
        # plus the position bias (T5): the same for every layer
        attn_bias = make_attention_bias(mask, self.position.position_bias(S, S))
        rotary = rotation(self.position, positions)  # RoPE turns q and k
        for layer in self.layers:
            x = layer(x, attn_bias, rotary)  # (B, S, C)
        return self.dropout(self.final_norm(x))


class Decoder(nn.Module):
    """A stack of decoder layers over embedded target tokens, attending to the encoder output."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.position = registry.build("position", cfg, causal=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        self.final_norm = (
            registry.build("norm", cfg) if cfg.norm_position == "pre" else nn.Identity()
        )

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        cache: DecoderCache | None = None,
        segments: Segments | None = None,
    ) -> torch.Tensor:
        """x: embedded target (B, T, C), the new tokens only when a cache holds the earlier ones;
        memory: the encoder output (B, S, C); attention_mask: (B, S), 1 = token, 0 = pad.
        Packed rows (training): `segments` instead of attention_mask (see Segments)."""
        T, S = x.shape[1], memory.shape[1]
        offset = cache.length if cache is not None else 0  # position of x's first token
        if segments is None:
            # causal self-attention over the past and the new tokens (T_k = offset + T)
            self_mask = make_attention_mask(
                None, T, offset + T, causal=True, offset=offset, device=x.device
            )
            positions = token_positions(T, offset, x.device)  # (1, T): after the cached ones
        else:  # packed: causal within each target's own example; positions from its start
            self_mask = make_segment_mask(segments.target, segments.target, causal=True)
            positions = segment_positions(segments.target)  # (B, T)
        x = self.dropout(self.position.embed(x, positions))
        # cross-attention: every target token may see every real source token (of its example)
        if cache is None:
            position_bias = self.position.position_bias(T, T)
            if segments is None:
                cross_attn_bias = source_padding_bias(attention_mask, S, x.device)  # (B, 1, 1, S)
            else:
                cross_mask = make_segment_mask(segments.target, segments.source, causal=False)
                cross_attn_bias = make_attention_bias(cross_mask, None)  # (B, 1, T, S)
        else:  # decoding: both built on the first step, kept in the cache (kv_cache.py)
            if offset == 0:  # the bias table of all max_length positions; each step takes rows
                M = cache.max_length
                cache.position_bias = self.position.position_bias(M, M)  # (1, H, M, M) or None
                cache.cross_attn_bias = source_padding_bias(attention_mask, S, x.device)
            position_bias = cache.position_bias_rows(T)  # (1, H, T, offset + T) or None
            cross_attn_bias = cache.cross_attn_bias
        self_attn_bias = make_attention_bias(self_mask, position_bias)
        rotary = rotation(self.position, positions)  # RoPE turns q and k
        # cross-attention's keys and values come from the encoder output: every layer projects
        # it, or, decoding, the cache holds them (filled on the first step) and the layers get
        # no encoder output at all
        cross_context = memory
        if cache is not None:
            cache.fill_cross_attention([layer.cross_attn for layer in self.layers], memory)
            cross_context = None
        for i, layer in enumerate(self.layers):
            self_cache, cross_cache = cache.layer(i) if cache is not None else (None, None)
            x = layer(
                x,
                cross_context,
                self_attn_bias=self_attn_bias,
                cross_attn_bias=cross_attn_bias,
                self_cache=self_cache,
                cross_cache=cross_cache,
                rotary=rotary,
            )
        return self.dropout(self.final_norm(x))  # (B, T, C)


class Seq2SeqTransformer(nn.Module):
    """A T5-family encoder–decoder Transformer.

    model = Seq2SeqTransformer(ModelConfig.preset("tiny"))
    logits = model(input_ids, decoder_input_ids, attention_mask)   # (B, T, V)
    new_tokens = model.generate(input_ids, attention_mask, max_new_tokens=20)
    model.use_fused_kernels(True)    # attention's fused kernel, SDPA (same numbers; CUDA)
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        registry.check(cfg)  # every variant name resolves (ValueError naming what is allowed)
        self.config = cfg
        self.lora = None  # minitune.lora.LoRASettings once adapters are added (add_lora)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)  # shared by encoder and decoder
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # Output projection. Tied: reuse the embedding matrix (with scale_output, T5 v1.0 scales
        # the decoder output by d_model^-0.5 first, which keeps the logits of unit-scale
        # embeddings at unit scale). Untied: its own matrix.
        self.lm_head = (
            None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        )
        # Optionally, a second way to produce a token: point at one in the source (copy.py).
        self.copy_head = CopyHead(cfg) if cfg.copy_head else None
        self.reset_parameters()

    # ---- the forward pass ------------------------------------------------------------------

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        segments: Segments | None = None,
    ) -> torch.Tensor:
        """Source ids (B, S) and their padding mask (B, S) -> encoder output "memory" (B, S, C)."""
        source_segments = None if segments is None else segments.source
        return self.encoder(self.embed(input_ids), attention_mask, source_segments)

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        cache: DecoderCache | None = None,
        source_ids: torch.Tensor | None = None,
        segments: Segments | None = None,
    ) -> torch.Tensor:
        """Target ids (B, T) and memory (B, S, C) -> logits (B, T, V).

        `attention_mask` is the source padding mask (B, S). With a `cache`, pass only the new
        tokens: the cache holds the keys and values of the earlier ones and is updated in place.
        A model with a copy head also needs the source tokens `source_ids` (B, S), and returns
        log-probabilities (which are logits too: their softmax is the distribution itself).
        Packed rows: `segments` instead of attention_mask (training only, no cache).
        """
        h = self.decoder(
            self.embed(decoder_input_ids), memory, attention_mask, cache=cache, segments=segments
        )
        out = h * self.config.d_model**-0.5 if self.config.scale_output else h
        # (B, T, V): the output matrix, or the embedding's transpose when they are tied
        logits = self.lm_head(out) if self.lm_head is not None else out @ self.embed.weight.t()
        if self.copy_head is None:
            return logits
        if source_ids is None:
            raise ValueError("this model has a copy head: decode() needs the source_ids")
        if segments is not None:  # point only into the target's own example: (B, T, S)
            attention_mask = make_segment_mask(segments.target, segments.source, False)[:, 0]
        return self.copy_head(h, logits, memory, source_ids, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        segments: Segments | None = None,
    ) -> torch.Tensor:
        """input_ids (B, S), decoder_input_ids (B, T), attention_mask (B, S) -> logits (B, T, V).

        `attention_mask` (1 = token, 0 = padding) is the source's padding mask. Packed rows:
        `segments` (see Segments) instead of attention_mask."""
        if segments is not None and attention_mask is not None:
            raise ValueError(
                "packed rows mark padding in segments (0 = padding): pass "
                "attention_mask=None with segments"
            )
        memory = self.encode(input_ids, attention_mask, segments)
        return self.decode(
            decoder_input_ids, memory, attention_mask, source_ids=input_ids, segments=segments
        )

    def new_cache(self, max_length: int, source_length: int) -> DecoderCache:
        """An empty KV cache for `max_length` decoder positions and a source of `source_length`.

        Buffers are allocated on first use, with the batch size of the first keys stored."""
        return DecoderCache(self.config.n_decoder_layers, max_length, source_length)

    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> torch.Tensor:
        """New tokens (B, L) for each source sequence, padded after EOS. See `minitune.generate`."""
        return generate(self, input_ids, attention_mask, **kwargs)

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Activation checkpointing (`TrainConfig.activation_checkpointing`): in training, keep
        only each layer's input and run the layer again during backward. Saves most activation
        memory for ~30% more compute. A wrapper of each layer's forward
        (blocks.set_activation_checkpointing)."""
        for layer in [*self.encoder.layers, *self.decoder.layers]:
            set_activation_checkpointing(layer, enabled)

    def use_fused_kernels(self, enabled: bool = True) -> None:
        """The one switch of the fused branch (off in a new model): every attention layer's
        `attend` calls PyTorch's scaled_dot_product_attention or, with False, runs its explicit
        four steps (`attention_reference`). The same numbers either way (tests/test_layers.py);
        off, an edit to the explicit code runs everywhere. The commands decide with
        `--fused-kernels auto|on|off` (auto: on with CUDA only, run/device.py)."""
        for module in self.modules():
            if isinstance(module, Attention):  # its variants too
                module.fused = enabled

    @property
    def fused_kernels(self) -> bool:
        """Whether the attention layers take their fused branch (see use_fused_kernels)."""
        return any(m.fused for m in self.modules() if isinstance(m, Attention))

    # ---- inspection ------------------------------------------------------------------------

    @torch.no_grad()
    def attention_maps(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> dict[str, list[torch.Tensor]]:
        """Attention weights of every layer (computed with the explicit softmax, which keeps them).

        Returns {"encoder_self": [(B, H, S, S)] per layer, "decoder_self": [(B, H, T, T)],
        "cross": [(B, H, T, S)]}; each row of a map sums to 1.
        """
        places = {  # every attention layer (base.AttentionLayer: record_weights, last_weights)
            "encoder_self": [layer.self_attn for layer in self.encoder.layers],
            "decoder_self": [layer.self_attn for layer in self.decoder.layers],
            "cross": [layer.cross_attn for layer in self.decoder.layers],
        }
        attentions = [m for layers in places.values() for m in layers]
        for m in attentions:
            m.record_weights = True
        try:
            self(input_ids, decoder_input_ids, attention_mask)
            return {name: [m.last_weights for m in layers] for name, layers in places.items()}
        finally:
            for m in attentions:
                m.record_weights, m.last_weights = False, None

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (shared ones counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- initialisation --------------------------------------------------------------------

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise as T5 does (Mesh TensorFlow): each matrix ~ N(0, 1/fan_in).

        Embeddings ~ N(0, 1); an untied head ~ N(0, C^-1/2), so initial logits are of unit scale.
        Each `Layer` (layers/base.py: attention, feed-forward, norms, position tables, the copy
        head) initialises itself in its `init_weights()`; a module that is not a `Layer` keeps
        PyTorch's default initialisation.
        """
        nn.init.normal_(self.embed.weight, std=1.0)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=self.config.d_model**-0.5)
        for module in self.modules():
            if isinstance(module, Layer):
                module.init_weights()
