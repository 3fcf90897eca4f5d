"""The encoder–decoder Transformer: Encoder, Decoder and Seq2SeqTransformer.

Notation: B batch, S source (encoder) length, T target (decoder) length, C = d_model, V = vocab.

    input_ids (B, S)         -embed-> Encoder         -> memory (B, S, C)
    decoder_input_ids (B, T) -embed-> Decoder(memory) -> hidden (B, T, C) -head-> logits (B, T, V)

The encoder reads the prompt with bidirectional self-attention; the decoder writes the answer one
token at a time, attending causally to what it has written and, through cross-attention, to the
whole prompt. Training feeds the decoder the target shifted right by one (`shift_right`, "teacher
forcing"); generation (`minitune.generate`) feeds it its own previous tokens, with a KV cache.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from minitune.config import ModelConfig
from minitune.generate import generate
from minitune.layers.attention import KVCache, make_attention_bias, make_attention_mask
from minitune.layers.blocks import DecoderLayer, EncoderLayer
from minitune.layers.copy import CopyHead
from minitune.layers.positions import PositionScheme
from minitune.layers.registry import build


def shift_right(labels: torch.Tensor, start_id: int, pad_id: int) -> torch.Tensor:
    """Decoder inputs for teacher forcing: the labels moved one step right behind a start token.

    labels [[a, b, c, eos]] -> decoder inputs [[start, a, b, c]]; so at position t the decoder
    sees y_<t and is trained to predict y_t. Ignored label positions (-100) become padding.
    """
    shifted = labels.new_full(labels.shape, start_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_id)  # (B, T)


class DecoderCache:
    """Everything the decoder keeps between generation steps: per layer, a growing self-attention
    KV cache (`max_length` positions) and the cross-attention keys/values of the encoder output."""

    def __init__(self, n_layers: int, max_length: int, source_length: int):
        self.max_length = max_length
        self.self_attn = [KVCache(max_length) for _ in range(n_layers)]
        self.cross_attn = [KVCache(source_length) for _ in range(n_layers)]
        # computed on the first step and sliced afterwards: the decoder's position bias for all
        # max_length positions, and the cross-attention padding bias (the same at every step)
        self.position_bias: torch.Tensor | None = None  # (1, H, max_length, max_length)
        self.cross_bias: torch.Tensor | None = None  # (B, 1, 1, S)

    @property
    def length(self) -> int:
        """How many decoder positions are cached (= position of the next token)."""
        return self.self_attn[0].length if self.self_attn else 0

    def layer(self, i: int) -> tuple[KVCache, KVCache]:
        """The self- and cross-attention caches of decoder layer i."""
        return self.self_attn[i], self.cross_attn[i]

    def position_bias_rows(self, position: PositionScheme, T: int) -> torch.Tensor | None:
        """The decoder's position bias of the T new positions, (1, H, T, length + T): rows
        length..length+T-1 of the table for all max_length positions, built on the first step."""
        offset = self.length
        if offset == 0:
            self.position_bias = position.bias(self.max_length, self.max_length)
        table = self.position_bias
        return None if table is None else table[:, :, offset : offset + T, : offset + T]

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` of the self-attention caches (beam search).

        The cross-attention caches are not touched: beam search only reorders beams within one
        example, and all beams of an example share the same encoder keys and values.
        """
        for cache in self.self_attn:
            cache.reorder(index)


class Encoder(nn.Module):
    """A stack of encoder layers over embedded source tokens."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.position = build("position", cfg, causal=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.checkpointing = False  # recompute layers in backward (set_activation_checkpointing)
        pre_norm = cfg.norm_position == "pre"
        self.final_norm = build("norm", cfg) if pre_norm else nn.Identity()

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: embedded source (B, S, C); attention_mask: (B, S), 1 = token, 0 = pad."""
        S = x.shape[1]
        x = self.dropout(self.position.embed(x))
        mask = make_attention_mask(attention_mask, S, S, causal=False, device=x.device)
        bias = make_attention_bias(mask, self.position.bias(S, S))  # shared by all layers
        recompute = self.checkpointing and self.training  # activation checkpointing
        for layer in self.layers:
            x = run_layer(layer, x, bias, self.position, recompute=recompute)  # (B, S, C)
        return self.dropout(self.final_norm(x))


class Decoder(nn.Module):
    """A stack of decoder layers over embedded target tokens, attending to the encoder output."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.position = build("position", cfg, causal=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        self.checkpointing = False  # recompute layers in backward (set_activation_checkpointing)
        pre_norm = cfg.norm_position == "pre"
        self.final_norm = build("norm", cfg) if pre_norm else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
    ) -> torch.Tensor:
        """x: embedded target (B, T, C), the new tokens only when a cache holds the earlier ones."""
        T, S = x.shape[1], memory.shape[1]
        offset = cache.length if cache is not None else 0  # position of x's first token
        x = self.dropout(self.position.embed(x, offset))
        # causal self-attention over the past and the new tokens (T_k = offset + T)
        self_mask = make_attention_mask(
            None, T, offset + T, causal=True, offset=offset, device=x.device
        )
        if cache is None:
            position_bias = self.position.bias(T, T)
        else:  # decoding: rows offset..offset+T-1 of a table built once
            position_bias = cache.position_bias_rows(self.position, T)
        self_bias = make_attention_bias(self_mask, position_bias)
        # cross-attention: every target token may see every real source token (the same at
        # every decoding step: kept in the cache)
        cross_bias = cache.cross_bias if cache is not None else None
        if cross_bias is None:
            cross_mask = make_attention_mask(memory_mask, T, S, causal=False, device=x.device)
            cross_bias = make_attention_bias(cross_mask, None)  # (B, 1, 1, S): any T
            if cache is not None:
                cache.cross_bias = cross_bias
        recompute = self.checkpointing and self.training and cache is None
        for i, layer in enumerate(self.layers):
            self_cache, cross_cache = cache.layer(i) if cache is not None else (None, None)
            args = (x, memory, self_bias, cross_bias, self_cache, cross_cache, self.position)
            x = run_layer(layer, *args, recompute=recompute)  # (B, T, C)
        return self.dropout(self.final_norm(x))


def run_layer(layer: nn.Module, *args, recompute: bool = False) -> torch.Tensor:
    """layer(*args). With `recompute` (activation checkpointing, in training), the layer's inner
    activations are not kept: backward runs the layer again from its inputs (less memory, ~30%
    more compute; the same gradients, tests/test_model.py)."""
    if recompute:
        return checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


class Seq2SeqTransformer(nn.Module):
    """A T5-family encoder–decoder Transformer.

    model = Seq2SeqTransformer(ModelConfig.preset("tiny"))
    logits = model(input_ids, decoder_input_ids, attention_mask)   # (B, T, V)
    new_tokens = model.generate(input_ids, attention_mask, max_new_tokens=20)
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
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
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Source ids (B, S) -> encoder output "memory" (B, S, C)."""
        return self.encoder(self.embed(input_ids), attention_mask)

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        source_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Target ids (B, T) and memory (B, S, C) -> logits (B, T, V).

        `attention_mask` is the source padding mask (B, S). With a `cache`, pass only the new
        tokens: the cache holds the keys and values of the earlier ones and is updated in place.
        A model with a copy head also needs the source tokens `source_ids` (B, S), and returns
        log-probabilities (which are logits too: their softmax is the distribution itself).
        """
        h = self.decoder(self.embed(decoder_input_ids), memory, attention_mask, cache)  # (B, T, C)
        out = h * self.config.d_model**-0.5 if self.config.scale_output else h
        # (B, T, V): the output matrix, or the embedding's transpose when they are tied
        logits = self.lm_head(out) if self.lm_head is not None else out @ self.embed.weight.t()
        if self.copy_head is None:
            return logits
        if source_ids is None:
            raise ValueError("this model has a copy head: decode() needs the source_ids")
        return self.copy_head(h, logits, memory, source_ids, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, S), decoder_input_ids (B, T), attention_mask (B, S) -> logits (B, T, V)."""
        memory = self.encode(input_ids, attention_mask)
        return self.decode(decoder_input_ids, memory, attention_mask, source_ids=input_ids)

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
        """Activation (gradient) checkpointing: in training, keep only each layer's input and
        recompute the layer during backward. Saves most activation memory for ~30% more compute."""
        self.encoder.checkpointing = self.decoder.checkpointing = enabled

    def set_attention_impl(self, impl: str) -> None:
        """Switch every attention layer to the "fast" (fused kernel) or "reference" path."""
        if impl not in ("fast", "reference"):
            raise ValueError(f"attention impl must be 'fast' or 'reference', got {impl!r}")
        self.config.attention_impl = impl
        for module in self.modules():
            if hasattr(module, "impl"):  # every attention layer with both paths
                module.impl = impl

    # ---- inspection ------------------------------------------------------------------------

    @torch.no_grad()
    def attention_maps(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> dict[str, list[torch.Tensor]]:
        """Attention weights of every layer, computed on the reference path.

        Returns {"encoder_self": [(B, H, S, S)] per layer, "decoder_self": [(B, H, T, T)],
        "cross": [(B, H, T, S)]}; each row of a map sums to 1.
        """
        attentions = [m for m in self.modules() if hasattr(m, "record_weights")]
        for m in attentions:
            m.record_weights = True
        try:
            self(input_ids, decoder_input_ids, attention_mask)
        finally:
            for m in attentions:
                m.record_weights = False
        maps = {
            "encoder_self": [
                layer.self_attn.sublayer.last_weights for layer in self.encoder.layers
            ],
            "decoder_self": [
                layer.self_attn.sublayer.last_weights for layer in self.decoder.layers
            ],
            "cross": [layer.cross_attn.sublayer.last_weights for layer in self.decoder.layers],
        }
        for m in attentions:
            m.last_weights = None
        return maps

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (shared ones counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- initialisation --------------------------------------------------------------------

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise as T5 does (Mesh TensorFlow): each matrix ~ N(0, 1/fan_in).

        Embeddings ~ N(0, 1); an untied head ~ N(0, C^-1/2), so initial logits are of unit scale.
        Each layer initialises itself in its `init_weights()` (attention, feed-forward, norms,
        position tables); a layer without one keeps PyTorch's default initialisation.
        """
        nn.init.normal_(self.embed.weight, std=1.0)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=self.config.d_model**-0.5)
        for module in self.modules():
            if module is not self and hasattr(module, "init_weights"):
                module.init_weights()
