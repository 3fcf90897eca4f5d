"""Shared by the tutorials: quick mode, where pictures go, and the repository root.

MINITUNE_QUICK=1 runs each tutorial in under a minute on a 2-core CPU (fewer steps, smaller
models; CI runs them this way). Pictures are saved to tutorials/output/ (or $MINITUNE_TUTORIAL_OUT)
and, in a notebook, shown under the cell.

Quick mode also runs torch on one thread: its models are too small to gain from a second one,
and on a busy 2-core machine OpenMP's threads wait for each other (tutorial 06 measured 29 s on
one thread, 400 s on two, while other jobs ran).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # a script: files only, no windows
import matplotlib.pyplot as plt

QUICK = os.environ.get("MINITUNE_QUICK", "") not in ("", "0")
if QUICK:
    import torch

    torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("MINITUNE_TUTORIAL_OUT", ROOT / "tutorials" / "output"))
OUT.mkdir(parents=True, exist_ok=True)


def show(fig, name: str):
    """Save a figure as OUT/name.png; return it (a notebook then draws it under the cell)."""
    fig.savefig(OUT / f"{name}.png", dpi=100, bbox_inches="tight")
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    return fig
