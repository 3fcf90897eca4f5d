"""T5 and Flan-T5 in the Hugging Face layout, mapped onto minitune's model.

    model = load_t5("path/to/flan-t5-small")   # config.json + model.safetensors | pytorch_model.bin
    tok = Tokenizer("path/to/flan-t5-small/spiece.model")
    export_t5(model, "path/to/out", tokenizer_file=...)   # the same layout back

A folder holds config.json and the weights as model.safetensors or pytorch_model.bin, either
whole or sharded (model.safetensors.index.json / pytorch_model.bin.index.json map each tensor to
its shard), and usually spiece.model. Safetensors are read by minitune's own reader;
.bin files through torch.load(weights_only=True), which refuses to run pickled code.

A T5 checkpoint is not a second model: it is a `ModelConfig` with T5's switches (relative bias,
RMSNorm, no 1/sqrt(D) scaling, ReLU or gated-GELU, tied or untied head) and a renaming of tensors.

    config.json field            ModelConfig field
    d_model, d_ff, num_heads     d_model, d_ff, n_heads
    d_kv                         d_head
    num_layers                   n_encoder_layers
    num_decoder_layers           n_decoder_layers (defaults to num_layers)
    feed_forward_proj            ffn: "relu" -> relu, "gated-gelu" -> gated-gelu
    tie_word_embeddings          tie_embeddings (and lm_head.weight: see `_head_settings`)
    scale_decoder_outputs        scale_output (transformers 5; before: = tie_word_embeddings)
    relative_attention_*         relative_buckets, relative_max_distance

Tensor names (i = layer, X = SelfAttention / EncDecAttention, w = q, k, v, o):

    shared.weight                                        embed.weight
    lm_head.weight                                       lm_head.weight (untied only)
    encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight
                                                         encoder.position.bias_table.weight
    encoder.block.i.layer.0.SelfAttention.w.weight       encoder.layers.i.self_attn.w.weight
    encoder.block.i.layer.0.layer_norm.weight            encoder.layers.i.self_attn_norm.weight
    encoder.block.i.layer.1.DenseReluDense.wi.weight     encoder.layers.i.ff.wi.weight
      (gated: wi_0 -> wi, wi_1 -> wi_gate)
    encoder.final_layer_norm.weight                      encoder.final_norm.weight
    decoder.block.i.layer.{0,1,2}: self-attention, cross-attention (EncDecAttention), feed-forward
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from minitune.config import ModelConfig

_FFN_FROM_HF = {"relu": "relu", "gated-gelu": "gated-gelu"}


def _head_settings(hf: dict, weights: dict | None = None) -> tuple[bool, bool]:
    """(tie_embeddings, scale_output): whether the output head is the embedding matrix, and
    whether the decoder output is scaled by d_model^-0.5 before it. Two separate questions:

    - before transformers 5, `tie_word_embeddings` answered both: true for T5 v1.0 (tied and
      scaled), false for v1.1 / Flan-T5 (own lm_head.weight, no scaling);
    - transformers 5 always writes `tie_word_embeddings: true` and answers the second with
      `scale_decoder_outputs`; a v1.1 model it creates has a tied head without scaling (no
      lm_head.weight in the file), a converted Flan-T5 its own lm_head.weight.

    So the weights decide the tying when given: an lm_head.weight that differs from
    shared.weight is a head of its own; a missing or equal one is tied.
    """
    tied = bool(hf.get("tie_word_embeddings", True))
    scale = bool(hf.get("scale_decoder_outputs", tied))
    if weights is not None:
        head, shared = weights.get("lm_head.weight"), weights.get("shared.weight")
        tied = head is None or (shared is not None and torch.equal(head, shared))
    return tied, scale


def config_from_hf(hf: dict, weights: dict[str, torch.Tensor] | None = None) -> ModelConfig:
    """A `ModelConfig` from the fields of a Hugging Face T5 `config.json` (and, when given, its
    weights, which say whether the head is tied: see `_head_settings`)."""
    proj = hf.get("feed_forward_proj", "relu")
    if proj not in _FFN_FROM_HF:
        raise ValueError(
            f"config.json: feed_forward_proj={proj!r} is not supported; "
            f"supported: {', '.join(_FFN_FROM_HF)}"
        )
    tied, scale = _head_settings(hf, weights)
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
        tie_embeddings=tied,
        scale_output=scale,
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
                names[f"{ours}_norm.weight"] = f"{theirs}.layer_norm.weight"
                if sub == "ff":
                    ff = f"{theirs}.DenseReluDense"
                    if cfg.ffn == "gated-gelu":
                        names[f"{ours}.wi.weight"] = f"{ff}.wi_0.weight"
                        names[f"{ours}.wi_gate.weight"] = f"{ff}.wi_1.weight"
                    else:
                        names[f"{ours}.wi.weight"] = f"{ff}.wi.weight"
                    names[f"{ours}.wo.weight"] = f"{ff}.wo.weight"
                else:
                    for w in "qkvo":
                        names[f"{ours}.{w}.weight"] = f"{theirs}.{hf_attention[sub]}.{w}.weight"
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


def _read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], str]:
    """All tensors of a Hugging Face folder, whole or sharded, safetensors or .bin."""
    from minitune.run.safetensors_io import CheckpointError, load_safetensors

    def load_file(path: Path) -> dict[str, torch.Tensor]:
        if path.suffix == ".safetensors":
            return load_safetensors(path)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickled code, truncation, or not a torch file at all
            raise CheckpointError(f"{path}: cannot be read safely: {err}") from None

    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return load_file(folder / name), name
        index = folder / f"{name}.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            tensors: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                if not (folder / shard).is_file():
                    raise CheckpointError(f"{index}: shard {shard} is missing")
                tensors.update(load_file(folder / shard))
            return tensors, index.name
    raise CheckpointError(
        f"{folder}: no weights (model.safetensors, pytorch_model.bin or a sharded index)"
    )


def is_t5_folder(folder: str | Path) -> bool:
    """Whether a folder looks like a Hugging Face T5 checkpoint (not a minitune one)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return False
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # damaged: the minitune loader names the file
        return False
    return isinstance(config, dict) and "d_model" in config and "model" not in config


def load_t5(folder: str | Path, dtype: torch.dtype = torch.float32):
    """A `Seq2SeqTransformer` with the weights of a Hugging Face T5 / Flan-T5 folder (eval mode)."""
    from minitune.model import Seq2SeqTransformer
    from minitune.run.safetensors_io import CheckpointError

    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: no config.json")
    weights, source = _read_weights(folder)
    try:
        cfg = config_from_hf(json.loads(config_path.read_text(encoding="utf-8")), weights)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path}: not a T5 config ({err})") from None
    try:
        state = from_hf_state_dict(weights, cfg, source=str(folder / source))
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    model = Seq2SeqTransformer(cfg)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return model.to(dtype).eval()


def t5_problems(cfg: ModelConfig) -> list[str]:
    """Why a model is not a T5 architecture ([] when it is). `scale_attention=True` is no
    problem: export folds the 1/sqrt(D) into W_q, as T5's own initialisation does."""
    wrong = []
    if cfg.position != "relative":
        wrong.append(f"position={cfg.position!r} (T5: 'relative')")
    if cfg.attention != "multi-head" or cfg.n_kv_heads != cfg.n_heads:
        wrong.append(
            f"attention={cfg.attention!r} with n_kv_heads={cfg.n_kv_heads} (T5: "
            f"'multi-head', n_kv_heads = n_heads = {cfg.n_heads})"
        )
    if cfg.norm != "rms" or cfg.norm_position != "pre":
        wrong.append(f"norm={cfg.norm!r}, norm_position={cfg.norm_position!r} (T5: 'rms', 'pre')")
    if cfg.bias:
        wrong.append("bias=True (T5 has no biases)")
    if cfg.copy_head:
        wrong.append("copy_head=True (T5 has no copy head)")
    if cfg.ffn not in _FFN_FROM_HF:
        wrong.append(f"ffn={cfg.ffn!r} (T5: 'relu' or 'gated-gelu')")
    if cfg.scale_output and not cfg.tie_embeddings:
        wrong.append("scale_output=True with an untied head (T5 scales only a tied head)")
    return wrong


def hf_config(cfg: ModelConfig) -> dict:
    """The config.json of a Hugging Face T5 with this shape; refuses non-T5 variants.

    A tied head without output scaling (what transformers 5 makes for v1.1) is written as an
    untied one holding a copy of the embedding (`tie_word_embeddings: false`), which every
    version of transformers reads the same way."""
    wrong = t5_problems(cfg)
    if wrong:
        raise ValueError("this model is not a T5 architecture: " + "; ".join(wrong))
    tied = cfg.tie_embeddings and cfg.scale_output
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "is_encoder_decoder": True,
        "vocab_size": cfg.vocab_size,
        "d_model": cfg.d_model,
        "d_kv": cfg.d_head,
        "d_ff": cfg.d_ff,
        "num_heads": cfg.n_heads,
        "num_layers": cfg.n_encoder_layers,
        "num_decoder_layers": cfg.n_decoder_layers,
        "relative_attention_num_buckets": cfg.relative_buckets,
        "relative_attention_max_distance": cfg.relative_max_distance,
        "dropout_rate": cfg.dropout,
        "layer_norm_epsilon": cfg.norm_eps,
        "feed_forward_proj": cfg.ffn,
        "tie_word_embeddings": tied,
        "scale_decoder_outputs": tied,
        "pad_token_id": cfg.pad_id,
        "eos_token_id": cfg.eos_id,
        "decoder_start_token_id": cfg.decoder_start_id,
    }


def export_t5(model, folder: str | Path, tokenizer_file: str | Path | None = None) -> None:
    """Write a model in the Hugging Face T5 layout: config.json, model.safetensors, spiece.model.

    A model that scales attention scores by 1/sqrt(D) (`scale_attention=True`, minitune's
    default) is written with that factor folded into W_q: s·(q·k) = ((s·W_q x)·k), the same
    scores, which is how T5 itself stores it."""
    import shutil

    from minitune.run.safetensors_io import save_safetensors
    from minitune.tokenizer import segmentation_file

    cfg = model.config
    config = hf_config(cfg)
    state = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    if cfg.scale_attention:
        for name in state:
            if name.endswith(("self_attn.q.weight", "cross_attn.q.weight")):
                state[name] = state[name] * cfg.d_head**-0.5
    tied = config["tie_word_embeddings"]
    export_cfg = ModelConfig.from_dict(
        {**cfg.to_dict(), "scale_attention": False, "tie_embeddings": tied}
    )
    if cfg.tie_embeddings and not tied:
        state["lm_head.weight"] = state["embed.weight"].clone()  # a tied head, written untied
    hf_state = to_hf_state_dict(state, export_cfg)
    if tied:
        hf_state["lm_head.weight"] = hf_state["shared.weight"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(hf_state, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if tokenizer_file is not None:
        shutil.copyfile(tokenizer_file, folder / "spiece.model")
        side = segmentation_file(tokenizer_file)  # minitune's conventions, when it has any
        if side.is_file():
            shutil.copyfile(side, segmentation_file(folder / "spiece.model"))
