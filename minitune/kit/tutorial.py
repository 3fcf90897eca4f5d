"""What the tutorials share: quick mode, the shipped files, and where pictures go.

The tutorials (`tutorials/*.py` and the notebooks built from them) import these three names from
the installed package, so that a notebook opened on its own, in Colab say, needs nothing else:

    from minitune.kit.tutorial import QUICK, SHIPPED, show

    QUICK     MINITUNE_QUICK=1: each tutorial in under a minute on a 2-core CPU (fewer steps,
              smaller models; CI runs them this way)
    SHIPPED   the folder holding the shipped configs/, data/, tokenizer/ and checkpoints/:
              inside the installed package, or the checkout (minitune/run/paths.py finds it)
              SHIPPED / "data" / "train.jsonl" -> .../minitune/shipped/data/train.jsonl
    show      saves a figure as runs/tutorials/NAME.png under the current folder (or in
              $MINITUNE_TUTORIAL_OUT); in a notebook it also draws it, once, under the cell

Quick mode also runs torch on one thread: its models are too small to gain from a second one,
and on a busy 2-core machine OpenMP's threads wait for each other (tutorial 06 measured 29 s on
one thread, 400 s on two, while other jobs ran). Only the tutorials import this module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

from minitune.run.paths import shipped_root

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # a script: files only, no windows
import matplotlib.pyplot as plt

QUICK = os.environ.get("MINITUNE_QUICK", "") not in ("", "0")
if QUICK:
    import torch

    torch.set_num_threads(1)

_root = shipped_root()
if _root is None:
    raise ImportError(
        "minitune.kit.tutorial: the shipped files (configs/, data/, tokenizer/) are missing from "
        f"{Path(__file__).parent}: install minitune from its repository (tutorials/README.md)"
    )
SHIPPED: Path = _root


def show(fig, name: str) -> None:
    """Save a figure as NAME.png in $MINITUNE_TUTORIAL_OUT (default: runs/tutorials/ under the
    current folder); in a notebook, draw it under the cell; then close it. (Closed, it is not
    drawn a second time when the cell ends, as the notebook's matplotlib would do.)"""
    out = Path(os.environ.get("MINITUNE_TUTORIAL_OUT", Path("runs") / "tutorials"))
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")
    if "ipykernel" in sys.modules:
        from IPython.display import display

        display(fig)
    plt.close(fig)
