"""The attention sheets of `minitune inspect` can be read: labels, sizes, one colour scale."""

import torch
from conftest import import_or_skip

from minitune.kit.pictures import MAX_TOKENS, attention_grid_figure


def _sheet(n_q, n_k, n_layers=2, n_heads=3):
    maps = [torch.rand(n_heads, n_q, n_k).softmax(-1) for _ in range(n_layers)]
    queries = ["<start>", *[f"q{i}" for i in range(n_q - 1)]]
    keys = [*[f"▁k{i}" for i in range(n_k - 2)], "\n", "</s>"]
    return attention_grid_figure(maps, queries, keys, "cross attention")


def test_every_token_labels_a_row_or_a_column_and_one_colorbar_is_drawn():
    import_or_skip("matplotlib")
    import matplotlib.pyplot as plt

    fig = _sheet(6, 9)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 * 3 and len(fig.axes) == len(panels) + 1  # the colour scale
    first_column = [ax for ax in panels if ax.get_subplotspec().is_first_col()]
    bottom_row = [ax for ax in panels if ax.get_subplotspec().is_last_row()]
    for ax in first_column:
        rows = [t.get_text() for t in ax.get_yticklabels()]
        assert rows == ["<start>", "q0", "q1", "q2", "q3", "q4"]
    for ax in bottom_row:
        columns = [t.get_text() for t in ax.get_xticklabels()]
        assert len(columns) == 9 and columns[-2:] == ["\\n", "</s>"]  # a newline is written
    sizes = {t.get_fontsize() for ax in bottom_row for t in ax.get_xticklabels()}
    assert min(sizes) >= 8  # legible at the sheet's own size
    plt.close(fig)


def test_the_sheet_grows_with_the_tokens_and_long_prompts_are_cut():
    import_or_skip("matplotlib")
    import matplotlib.pyplot as plt

    small, large, huge = _sheet(4, 8), _sheet(12, 24), _sheet(80, 200)
    (w_small, h_small), (w_large, h_large) = small.get_size_inches(), large.get_size_inches()
    assert w_large > 2 * w_small and h_large > 2 * h_small
    assert tuple(huge.get_size_inches()) == tuple(_sheet(MAX_TOKENS, MAX_TOKENS).get_size_inches())
    assert f"first {MAX_TOKENS} of 200 tokens" in huge._suptitle.get_text()
    for fig in (small, large, huge):
        plt.close(fig)
