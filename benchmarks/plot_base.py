"""Exact match against training minutes, tuning the shipped base vs from scratch (issue 24).

    python benchmarks/plot_base.py --runs benchmarks/base_runs.jsonl \
        --pipeline base=RUN_A/report.json scratch=RUN_B/report.json

`--runs`: rows of `benchmarks/learning.py` (named `base-<m>min` / `scratch-<m>min`, scored on
test, heldout_phrasings and heldout_tasks; the shipped file's 11-minute rows, marked `source`, are
the README's fresh-clone pipeline figures); `--pipeline`: `minitune pipeline` reports to add.
Prints the table the README and benchmarks/learning.md quote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SPLITS = {
    "test": "seen tasks",
    "heldout_phrasings": "held-out phrasing",
    "heldout_tasks": "held-out tasks",
}


def points(runs: Path, pipelines: list[str]) -> dict[str, dict[float, dict[str, float]]]:
    """{start: {minutes: {split: exact match}}}."""
    table: dict[str, dict[float, dict[str, float]]] = {"base": {}, "scratch": {}}
    for line in runs.read_text().splitlines():
        row = json.loads(line)
        start, _, minutes = row["name"].partition("-")
        if start in table and minutes.endswith("min"):
            table[start][float(minutes[:-3])] = {s: row.get(f"{s}_em") for s in SPLITS}
    for item in pipelines:
        start, path = item.split("=", 1)
        report = json.loads(Path(path).read_text())
        minutes = report["train"]["minutes"]
        table[start][round(minutes)] = {
            s: report["eval"][s]["average"]["exact_match"] for s in SPLITS
        }
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=Path(__file__).with_name("base_runs.jsonl"))
    p.add_argument("--pipeline", nargs="*", default=[], metavar="START=REPORT")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("base_vs_scratch.png"))
    args = p.parse_args()
    table = points(args.runs, args.pipeline)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, (split, label) in zip(axes, SPLITS.items(), strict=True):
        for start, style in (("base", "o-"), ("scratch", "s--")):
            xs = sorted(table[start])
            ax.plot(
                xs,
                [table[start][x][split] for x in xs],
                style,
                label="shipped base" if start == "base" else "from scratch",
            )
        ax.set_title(label)
        ax.set_xlabel("training minutes (2-core CPU)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("exact match % (average over tasks)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    print("| minutes | " + " | ".join(f"{n}: base / scratch" for n in SPLITS.values()) + " |")
    print("|---|---|---|---|")
    for m in sorted(set(table["base"]) | set(table["scratch"])):
        base, scratch = table["base"].get(m, {}), table["scratch"].get(m, {})
        cells = [f"{base.get(s, '–')} / {scratch.get(s, '–')}" for s in SPLITS]
        print(f"| {m:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
