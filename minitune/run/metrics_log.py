"""What a run writes down as it goes: OUT/metrics.jsonl (one JSON row per line; TensorBoard too,
if asked), the loss picture OUT/loss.png, and where the progress bar ends.

A training row (every `log_every` steps) and a validation row (every `eval_every` steps):

    {"step": 10, "loss": 5.91, "lr": 0.0001, "grad_norm": 2.1, "tokens_per_s": 5281, ...}
    {"step": 500, "valid_loss": 2.81, "examples": 16000, "elapsed_s": 301.2}

A resumed run first drops the rows written after its checkpoint (`truncate_metrics`), so the
file reads as if the run had never stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from minitune.run.errors import RunError


class MetricsLog:
    """OUT/metrics.jsonl, one JSON row per line (process 0 writes; the others do nothing), and
    the same numbers to TensorBoard when a writer is given."""

    def __init__(self, path: Path, is_main: bool, board=None):
        self.path, self.is_main, self.board = path, is_main, board

    def write(self, row: dict) -> None:
        if not self.is_main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.board is not None:
            for key, value in row.items():  # the numbers (not a session's description)
                if key != "step" and isinstance(value, (int, float)):
                    self.board.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def open_metrics_log(out: Path, report_to: list[str], is_main: bool) -> MetricsLog:
    """OUT/metrics.jsonl, and with --report-to tensorboard also OUT/tensorboard/ (process 0)."""
    board = None  # --report-to tensorboard: rank 0 writes the rows there too
    if "tensorboard" in report_to and is_main:
        board = tensorboard_writer(out / "tensorboard")
    return MetricsLog(out / "metrics.jsonl", is_main, board)


def tensorboard_writer(folder: Path):
    """A TensorBoard SummaryWriter for --report-to tensorboard (the optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RunError(
            "--report-to tensorboard needs the tensorboard package: pip install "
            "'minitune[tensorboard]' (or pip install tensorboard)"
        ) from None
    return SummaryWriter(str(folder))


def truncate_metrics(metrics_file: Path, step: int) -> None:
    """Keep the metrics rows up to `step` (later ones were written after the checkpoint)."""
    if not metrics_file.exists():
        return
    rows = [line for line in metrics_file.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["step"] <= step]
    metrics_file.write_text("".join(line + "\n" for line in kept))


def plot_losses(metrics_file: Path, out_png: Path) -> str:
    """Draw train and validation loss from metrics.jsonl, against optimizer steps (left) and
    wall-clock minutes (right)."""
    if not metrics_file.is_file():  # stopped before the first log line
        return f"no {metrics_file.name} yet: no {out_png.name}"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    draw_losses(axes[0], axes[1], rows)
    axes[0].set_ylabel("loss per target token")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return f"wrote {out_png}"


def draw_losses(by_step, by_minute, rows: list[dict]) -> None:
    """Train and validation loss of metrics rows on two matplotlib axes: against optimizer
    steps, and against minutes of training (a row's elapsed_s)."""
    for ax, x, label in ((by_step, "step", "optimizer step"), (by_minute, "elapsed_s", "minutes")):
        scale = 1 / 60 if x == "elapsed_s" else 1
        for key, style, name in (("loss", "-", "train"), ("valid_loss", "o-", "validation")):
            points = [(r[x] * scale, r[key]) for r in rows if key in r and x in r]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=name)
        ax.set(xlabel=label, yscale="log")
        ax.legend()


def steps_by_deadline(
    step: int, max_steps: int, steps_done: int, seconds: float, seconds_left: float
) -> int:
    """Where the run will end: max_steps, or the step the clock (max_minutes) stops it at, at
    the speed so far. Example: step 100, 50 steps in 10 s, 30 s left -> 250 (if below max)."""
    if steps_done <= 0 or seconds <= 0:
        return max_steps
    return max(step, min(max_steps, step + int(steps_done / seconds * max(seconds_left, 0))))
