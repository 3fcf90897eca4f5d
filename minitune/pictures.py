"""Pictures of what attention does: weights, masks and position biases as heatmap PNGs.

    minitune inspect --checkpoint runs/laptop/best "Translate to French:\nthe red cat"

writes, into the output folder,

    attention_encoder_self.png   one heatmap per layer (rows) and head (columns): how much each
    attention_decoder_self.png   query token (y axis) attends to each key token (x axis);
    attention_cross.png          weights from the reference path, each row sums to 1
    masks.png                    the three masks of the model (True = may attend)
    position_bias.png            the additive position bias per head (relative, ALiBi schemes)

The decoder side reads the model's own greedy answer, fed back with teacher forcing, so the
decoder maps show how the model attended while writing it. Uses matplotlib (a dependency).
"""

from __future__ import annotations

from pathlib import Path

import torch

from minitune.layers.attention import make_attention_mask


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "pictures need matplotlib: pip install matplotlib (or pip install -e '.[dev]')"
        ) from None
    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt

    return plt


def plot_attention_grid(
    maps: list[torch.Tensor], query_labels: list[str], key_labels: list[str], title: str, path
) -> None:
    """maps: per layer a (H, T_q, T_k) tensor of weights -> a layers × heads grid of heatmaps."""
    plt = _pyplot()
    n_layers, n_heads = len(maps), maps[0].shape[0]
    size = max(2.2, 0.22 * max(len(query_labels), len(key_labels)))
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(size * n_heads, size * n_layers),
                             squeeze=False)  # fmt: skip
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(maps[layer][head].float().cpu().numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {layer} head {head}", fontsize=7)
            ax.set_xticks(range(len(key_labels)))
            ax.set_yticks(range(len(query_labels)))
            ax.set_xticklabels(key_labels if layer == n_layers - 1 else [], rotation=90, fontsize=5)
            ax.set_yticklabels(query_labels if head == 0 else [], fontsize=5)
    fig.suptitle(title + "  (rows: queries, columns: keys)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_masks(source_len: int, n_pad: int, target_len: int, path) -> None:
    """The encoder padding mask, the decoder causal mask and the cross mask, side by side."""
    plt = _pyplot()
    S = source_len + n_pad
    padding = torch.tensor([[1] * source_len + [0] * n_pad])
    masks = [  # (title, mask, query length, key length)
        ("encoder self: padding", make_attention_mask(padding, S, S, causal=False), S, S),
        ("decoder self: causal", make_attention_mask(None, target_len, target_len, causal=True),
         target_len, target_len),
        ("cross: padding", make_attention_mask(padding, target_len, S, causal=False),
         target_len, S),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, (title, mask, q_len, k_len) in zip(axes, masks, strict=True):
        full = mask.expand(1, 1, q_len, k_len)[0, 0]  # a padding mask is the same for every query
        ax.imshow(full.float().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{title}\n(white = may attend)", fontsize=9)
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_position_bias(model, length: int, path) -> bool:
    """Each head's additive position bias over `length` positions, encoder and decoder.

    Returns False (and writes nothing) when the model's position scheme adds no bias."""
    plt = _pyplot()
    with torch.no_grad():
        biases = [("encoder", model.encoder.position.position_bias(length, length)),
                  ("decoder", model.decoder.position.position_bias(length, length))]  # fmt: skip
    if any(b is None for _, b in biases):
        return False
    n_heads = biases[0][1].shape[1]
    fig, axes = plt.subplots(2, n_heads, figsize=(2.4 * n_heads, 5), squeeze=False)
    for row, (stack, bias) in enumerate(biases):
        if stack == "decoder":  # the future is masked anyway: show it blank
            bias = bias.masked_fill(~make_attention_mask(None, length, length, causal=True), 0)
        for head in range(n_heads):
            ax = axes[row][head]
            image = ax.imshow(bias[0, head].float().cpu().numpy(), cmap="coolwarm")
            ax.set_title(f"{stack} head {head}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"position bias added to the scores ({model.config.position}); "
                 "rows: queries, columns: keys", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def inspect_prompt(model, tokenizer, prompt: str, out: str | Path, max_new_tokens: int = 32):
    """Write all the pictures for one prompt into `out`; returns (answer, written file names)."""
    _pyplot()  # fail early, before any work, when matplotlib is missing
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    model.eval()
    source = torch.tensor([[*tokenizer.encode(prompt)[:256], tokenizer.eos_id]], device=device)
    answer = model.generate(source, max_new_tokens=max_new_tokens)[0].tolist()
    answer = [t for t in answer if t != model.config.pad_id]
    target = torch.tensor([[model.config.decoder_start_id, *answer]], device=device)
    maps = model.attention_maps(source, target)

    def labels(ids):
        return [tokenizer.piece(i) for i in ids]

    source_labels = labels(source[0].tolist())
    target_labels = ["<start>", *labels(answer)]
    written = []
    for name, q_labels, k_labels in [
        ("encoder_self", source_labels, source_labels),
        ("decoder_self", target_labels, target_labels),
        ("cross", target_labels, source_labels),
    ]:
        path = out / f"attention_{name}.png"
        plot_attention_grid([m[0] for m in maps[name]], q_labels, k_labels,
                            f"{name.replace('_', ' ')} attention", path)  # fmt: skip
        written.append(path.name)
    plot_masks(len(source_labels), 3, len(target_labels), out / "masks.png")
    written.append("masks.png")
    if plot_position_bias(model, min(48, max(len(source_labels), 16)), out / "position_bias.png"):
        written.append("position_bias.png")
    return tokenizer.decode(answer), written
