"""Pictures of what attention does: weights, masks and position biases as heatmap PNGs.

    minitune inspect --checkpoint runs/laptop/best "Translate to French:\nthe red cat"

writes, into the output folder,

    attention_encoder_self.png   one heatmap per layer (rows) and head (columns): how much each
    attention_decoder_self.png   query token (y axis) attends to each key token (x axis);
    attention_cross.png          weights from the reference path, each row sums to 1
    masks.png                    the three masks of the model (True = may attend)
    position_bias.png            the additive position bias per head (relative, ALiBi schemes)

The decoder side reads the model's own greedy answer, fed back with teacher forcing, so the
decoder maps show how the model attended while writing it. Each sheet is read at its own size:
every token labels its row (first column) and its column (bottom row) in 8-point type, a cell is
0.22 inch, so the figure grows with the number of tokens; prompts and answers longer than 32
tokens are cut to their first 32 (the title says so). One colour scale, drawn beside the panels,
serves them all. Uses matplotlib (a dependency).
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


# Sizes in inches, for a sheet read at its own size (100 % zoom): a cell per token wide enough
# for an 8-point label, and room for the longest label beside the panels.
CELL = 0.22  # one token's row or column
FONT = 8  # tick labels, in points
MAX_TOKENS = 32  # longer prompts and answers are cut to their first MAX_TOKENS tokens


def _label_room(labels: list[str]) -> float:
    """Inches that the longest tick label takes at FONT points (about 0.6 em per character)."""
    return 0.6 * FONT / 72 * max((len(s) for s in labels), default=1) + 0.15


def _tick(label: str) -> str:
    """A token piece as a tick label: a newline or tab written as an escape, not drawn blank."""
    label = label.replace("\n", "\\n").replace("\t", "\\t")
    return label if label.strip() else repr(label)  # a lone space shows as ' '


def attention_grid_figure(
    maps: list[torch.Tensor],
    query_labels: list[str],
    key_labels: list[str],
    title: str,
    max_tokens: int = MAX_TOKENS,
):
    """maps: per layer a (H, T_q, T_k) tensor of weights -> a figure, layers (rows) × heads
    (columns) of heatmaps sharing one colour scale.

    Every query token labels a row of the first column and every key token a column of the
    bottom row; the panels touch, so a row or column can be followed across the sheet. Prompts
    and answers longer than `max_tokens` are cut to their first `max_tokens` tokens (the title
    says so; a cut row then sums to less than 1). The figure's size follows the number of tokens:
    CELL inches per token, so labels never shrink below FONT points.
    """
    plt = _pyplot()
    n_layers, n_heads = len(maps), maps[0].shape[0]
    n_q, n_k = min(len(query_labels), max_tokens), min(len(key_labels), max_tokens)
    q_labels, k_labels = (
        [_tick(s) for s in query_labels[:n_q]],
        [_tick(s) for s in key_labels[:n_k]],
    )
    weights = [m[:, :n_q, :n_k].float().cpu() for m in maps]  # per layer (H, n_q, n_k)
    vmax = max(float(w.max()) for w in weights) or 1.0  # the scale: 0 to the largest weight
    # panels, plus the labels on the left and below, the titles above and the colour bar
    width = n_heads * n_k * CELL + _label_room(q_labels) + 0.5 + 1.1
    height = n_layers * n_q * CELL + _label_room(k_labels) + 0.5 + 0.8
    fig, axes = plt.subplots(
        n_layers,
        n_heads,
        figsize=(width, height),
        squeeze=False,
        layout="constrained",
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.0, hspace=0.0)
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            image = ax.imshow(
                weights[layer][head].numpy(),
                cmap="viridis",
                vmin=0,
                vmax=vmax,
                aspect="auto",
                interpolation="nearest",
            )
            # tick labels on the first column and the bottom row only (every panel has the same
            # tokens; ticks on all of them cost most of the drawing time)
            bottom, first = layer == n_layers - 1, head == 0
            ax.set_xticks(range(n_k) if bottom else [], k_labels if bottom else [], rotation=90)
            ax.set_yticks(range(n_q) if first else [], q_labels if first else [])
            ax.tick_params(length=2, pad=1, labelsize=FONT)
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=FONT + 1)
            if head == 0:
                ax.set_ylabel(f"layer {layer}\nquery", fontsize=FONT + 1)
            if layer == n_layers - 1:
                ax.set_xlabel("key", fontsize=FONT + 1)
    fig.colorbar(
        image,
        ax=axes,
        shrink=min(1.0, max(0.35, 4.0 / height)),
        aspect=30,
        label="attention weight",
    )
    sides = (("rows", n_q, len(query_labels)), ("columns", n_k, len(key_labels)))
    cut = "".join(f"; {side}: first {n} of {total} tokens" for side, n, total in sides if n < total)
    fig.suptitle(f"{title}   (rows: queries, columns: keys{cut})", fontsize=FONT + 2)
    return fig


def plot_attention_grid(
    maps: list[torch.Tensor],
    query_labels: list[str],
    key_labels: list[str],
    title: str,
    path,
    max_tokens: int = MAX_TOKENS,
) -> None:
    """`attention_grid_figure`, saved as a PNG at `path`."""
    plt = _pyplot()
    fig = attention_grid_figure(maps, query_labels, key_labels, title, max_tokens)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_masks(source_len: int, n_pad: int, target_len: int, path) -> None:
    """The encoder padding mask, the decoder causal mask and the cross mask, side by side."""
    plt = _pyplot()
    S = source_len + n_pad
    padding = torch.tensor([[1] * source_len + [0] * n_pad])
    masks = [  # (title, mask, query length, key length)
        ("encoder self: padding", make_attention_mask(padding, S, S, causal=False), S, S),
        (
            "decoder self: causal",
            make_attention_mask(None, target_len, target_len, causal=True),
            target_len,
            target_len,
        ),
        (
            "cross: padding",
            make_attention_mask(padding, target_len, S, causal=False),
            target_len,
            S,
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, (title, mask, q_len, k_len) in zip(axes, masks, strict=True):
        if mask is None:  # nothing to mask (a one-token answer): every key may be read
            mask = torch.ones(1, 1, q_len, k_len, dtype=torch.bool)
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
        biases = [
            ("encoder", model.encoder.position.position_bias(length, length)),
            ("decoder", model.decoder.position.position_bias(length, length)),
        ]
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
    fig.suptitle(
        f"position bias added to the scores ({model.config.position}); "
        "rows: queries, columns: keys",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def read_attention(model, tokenizer, source: list[int], max_new_tokens: int = 32) -> dict:
    """The model's greedy answer to `source` (prompt ids, EOS included) and its attention
    weights while writing it (the answer fed back with teacher forcing): {"answer": ids,
    "maps": {"encoder_self"|"decoder_self"|"cross": per layer (1, H, T_q, T_k)},
    "source_labels": pieces, "target_labels": ["<start>", pieces of the answer]}."""
    device = next(model.parameters()).device
    model.eval()
    source = torch.tensor([source], device=device)
    answer = model.generate(source, max_new_tokens=max_new_tokens)[0].tolist()
    answer = [t for t in answer if t != model.config.pad_id]
    target = torch.tensor([[model.config.decoder_start_id, *answer]], device=device)
    return {
        "answer": answer,
        "maps": model.attention_maps(source, target),
        "source_labels": [tokenizer.piece(i) for i in source[0].tolist()],
        "target_labels": ["<start>", *(tokenizer.piece(i) for i in answer)],
    }


def inspect_prompt(model, tokenizer, prompt: str, out: str | Path, max_new_tokens: int = 32):
    """Write all the pictures for one prompt into `out`; returns (answer, written file names)."""
    _pyplot()  # fail early, before any work, when matplotlib is missing
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seen = read_attention(
        model, tokenizer, [*tokenizer.encode(prompt)[:256], tokenizer.eos_id], max_new_tokens
    )
    source_labels, target_labels = seen["source_labels"], seen["target_labels"]
    written = []
    for name, q_labels, k_labels in [
        ("encoder_self", source_labels, source_labels),
        ("decoder_self", target_labels, target_labels),
        ("cross", target_labels, source_labels),
    ]:
        path = out / f"attention_{name}.png"
        plot_attention_grid(
            [m[0] for m in seen["maps"][name]],
            q_labels,
            k_labels,
            f"{name.replace('_', ' ')} attention",
            path,
        )
        written.append(path.name)
    plot_masks(len(source_labels), 3, len(target_labels), out / "masks.png")
    written.append("masks.png")
    if plot_position_bias(model, min(48, max(len(source_labels), 16)), out / "position_bias.png"):
        written.append("position_bias.png")
    return tokenizer.decode(seen["answer"]), written
