"""T5 and Flan-T5 in the Hugging Face layout, mapped onto minitune's model.

A T5 checkpoint is not a second model: it is a `ModelConfig` with T5's switches (relative bias,
RMSNorm, no 1/sqrt(D) scaling, ReLU or gated-GELU, tied or untied head) and a renaming of tensors.

    config.json field            ModelConfig field
    d_model, d_ff, num_heads     d_model, d_ff, n_heads
    d_kv                         d_head
    num_layers                   n_encoder_layers
    num_decoder_layers           n_decoder_layers (defaults to num_layers)
    feed_forward_proj            ffn: "relu" -> relu, "gated-gelu" -> gated-gelu
    tie_word_embeddings          tie_embeddings (default true, as in T5 v1.0; see `_tied_head`)
    relative_attention_*         relative_buckets, relative_max_distance

Tensor names (i = layer, X = SelfAttention / EncDecAttention, w = q, k, v, o):

    shared.weight                                        embed.weight
    lm_head.weight                                       lm_head.weight (untied only)
    encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight
                                                         encoder.position.bias_table.weight
    encoder.block.i.layer.0.SelfAttention.w.weight
                                                         encoder.layers.i.self_attn.sublayer.w.weight
    encoder.block.i.layer.0.layer_norm.weight            encoder.layers.i.self_attn.norm.weight
    encoder.block.i.layer.1.DenseReluDense.wi.weight     encoder.layers.i.ff.sublayer.wi.weight
      (gated: wi_0 -> wi, wi_1 -> wi_gate)
    encoder.final_layer_norm.weight                      encoder.final_norm.weight
    decoder.block.i.layer.{0,1,2}: self-attention, cross-attention (EncDecAttention), feed-forward
"""

from __future__ import annotations

import torch

from minitune.config import ModelConfig

_FFN_FROM_HF = {"relu": "relu", "gated-gelu": "gated-gelu"}


def _tied_head(hf: dict) -> bool:
    """Whether the output head is the embedding scaled by d_model^-0.5 (T5 v1.0).

    config.json files written before transformers 5 say so with `tie_word_embeddings`
    (false for v1.1 / Flan-T5); transformers 5 always writes `tie_word_embeddings: true` and says
    it with `scale_decoder_outputs` instead.
    """
    if "scale_decoder_outputs" in hf:
        return bool(hf["scale_decoder_outputs"])
    return bool(hf.get("tie_word_embeddings", True))


def config_from_hf(hf: dict) -> ModelConfig:
    """A `ModelConfig` from the fields of a Hugging Face T5 `config.json`."""
    proj = hf.get("feed_forward_proj", "relu")
    if proj not in _FFN_FROM_HF:
        raise ValueError(
            f"config.json: feed_forward_proj={proj!r} is not supported; "
            f"supported: {', '.join(_FFN_FROM_HF)}"
        )
    return ModelConfig(
        vocab_size=hf["vocab_size"],
        d_model=hf["d_model"],
        n_heads=hf["num_heads"],
        d_head=hf["d_kv"],
        d_ff=hf["d_ff"],
        n_encoder_layers=hf["num_layers"],
        n_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
        dropout=hf.get("dropout_rate", 0.1),
        position="relative",
        relative_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_max_distance=hf.get("relative_attention_max_distance", 128),
        ffn=_FFN_FROM_HF[proj],
        norm="rms",
        norm_position="pre",
        norm_eps=hf.get("layer_norm_epsilon", 1e-6),
        bias=False,
        scale_attention=False,
        tie_embeddings=_tied_head(hf),
        pad_id=hf.get("pad_token_id", 0),
        eos_id=hf.get("eos_token_id", 1),
        decoder_start_id=hf.get("decoder_start_token_id", 0),
    )


def hf_tensor_names(cfg: ModelConfig) -> dict[str, str]:
    """Map every minitune parameter name to its Hugging Face T5 name."""
    names = {"embed.weight": "shared.weight"}
    if not cfg.tie_embeddings:
        names["lm_head.weight"] = "lm_head.weight"
    stacks = {
        "encoder": (cfg.n_encoder_layers, ["self_attn", "ff"]),
        "decoder": (cfg.n_decoder_layers, ["self_attn", "cross_attn", "ff"]),
    }
    hf_attention = {"self_attn": "SelfAttention", "cross_attn": "EncDecAttention"}
    for stack, (n_layers, sublayers) in stacks.items():
        names[f"{stack}.position.bias_table.weight"] = (
            f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        )
        names[f"{stack}.final_norm.weight"] = f"{stack}.final_layer_norm.weight"
        for i in range(n_layers):
            for j, sub in enumerate(sublayers):
                ours, theirs = f"{stack}.layers.{i}.{sub}", f"{stack}.block.{i}.layer.{j}"
                names[f"{ours}.norm.weight"] = f"{theirs}.layer_norm.weight"
                if sub == "ff":
                    ff = f"{theirs}.DenseReluDense"
                    if cfg.ffn == "gated-gelu":
                        names[f"{ours}.sublayer.wi.weight"] = f"{ff}.wi_0.weight"
                        names[f"{ours}.sublayer.wi_gate.weight"] = f"{ff}.wi_1.weight"
                    else:
                        names[f"{ours}.sublayer.wi.weight"] = f"{ff}.wi.weight"
                    names[f"{ours}.sublayer.wo.weight"] = f"{ff}.wo.weight"
                else:
                    for w in "qkvo":
                        names[f"{ours}.sublayer.{w}.weight"] = (
                            f"{theirs}.{hf_attention[sub]}.{w}.weight"
                        )
    return names


def from_hf_state_dict(
    hf_state: dict[str, torch.Tensor], cfg: ModelConfig, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face T5 state dict to minitune's names.

    Missing tensors are an error listing them. Tensors the model does not use are an error too,
    except the copies Hugging Face keeps of shared ones (`encoder.embed_tokens.weight`,
    `decoder.embed_tokens.weight`, and a tied `lm_head.weight`).
    """
    names = hf_tensor_names(cfg)
    missing = sorted(theirs for theirs in names.values() if theirs not in hf_state)
    redundant = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    if cfg.tie_embeddings:
        redundant.add("lm_head.weight")
    used = set(names.values()) | redundant
    unexpected = sorted(k for k in hf_state if k not in used)
    if missing or unexpected:
        lines = [f"{source}: tensors do not match a T5 with this config.json"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {', '.join(unexpected[:20])}")
        raise ValueError("\n".join(lines))
    return {ours: hf_state[theirs] for ours, theirs in names.items()}


def to_hf_state_dict(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """minitune's state dict under Hugging Face T5 names (the inverse of `from_hf_state_dict`)."""
    out = {theirs: state[ours] for ours, theirs in hf_tensor_names(cfg).items()}
    out["encoder.embed_tokens.weight"] = state["embed.weight"]
    out["decoder.embed_tokens.weight"] = state["embed.weight"]
    return out
