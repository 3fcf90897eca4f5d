"""Screen a training recipe: train for a fixed budget, then exact match on the validation split.

The speedrun harness behind benchmarks/learning.md. One run = one recipe (a config plus
overrides), trained with `minitune.train.train` exactly as `minitune train` would, then scored by
greedy decoding on `data/valid.jsonl` (27 seen tasks, 30 examples each). One JSON line per run is
appended to --log, so a table of every lever tried can be rebuilt from it.

    python benchmarks/learning.py --name base --steps 1500
    python benchmarks/learning.py --name sinus --steps 1500 --set model.position=sinusoidal
    python benchmarks/learning.py --name bf16 --minutes 3 --set train.precision=bf16

Runs on the two cores of the project's CPU machine take the budget they are given; run them one
at a time (two at once halve each other's speed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minitune.evaluate import evaluate_files  # noqa: E402
from minitune.run.checkpoint import load_checkpoint  # noqa: E402
from minitune.run.settings import load_run_config, parse_override  # noqa: E402
from minitune.train import train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="a short name for the row")
    p.add_argument("--config", default=str(ROOT / "configs/laptop.toml"))
    p.add_argument("--steps", type=int, help="optimizer steps (default: the config's)")
    p.add_argument("--minutes", type=float, help="wall-clock budget of the training")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--valid", default=str(ROOT / "data/valid.jsonl"))
    p.add_argument("--extra-eval", nargs="*", default=[], help="more files to score")
    p.add_argument("--out", default="/tmp/minitune-learning")
    p.add_argument("--log", default=str(ROOT / "benchmarks/learning_runs.jsonl"))
    args = p.parse_args(argv)

    overrides: dict[str, dict] = {"model": {}, "train": {}}
    for text in args.set:
        section, key, value = parse_override(text)
        overrides[section][key] = value
    out = Path(args.out) / args.name
    overrides["train"]["out"] = str(out)
    if args.steps:
        overrides["train"]["max_steps"] = args.steps
        overrides["train"].setdefault("eval_every", args.steps)
    if args.minutes:
        overrides["train"]["max_minutes"] = args.minutes
    model_cfg, train_cfg = load_run_config(args.config, overrides)
    if out.exists():
        import shutil

        shutil.rmtree(out)

    start = time.time()
    summary = train(model_cfg, train_cfg, progress=False, log=lambda *a: None)
    train_minutes = (time.time() - start) / 60
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    speeds = [m["tokens_per_s"] for m in metrics if "tokens_per_s" in m]
    model, tok, _ = load_checkpoint(str(out / "best"), "cpu")
    t0 = time.time()
    files = [args.valid, *args.extra_eval]
    result = evaluate_files(
        model, tok, files, None, train_cfg.max_source_length, train_cfg.max_target_length
    )
    eval_minutes = (time.time() - t0) / 60
    row = {
        "name": args.name,
        "set": args.set,
        "steps": summary["step"],
        "train_min": round(train_minutes, 2),
        "eval_min": round(eval_minutes, 2),
        "tokens_per_s": round(sum(speeds) / max(len(speeds), 1)),
        "examples": summary["examples"],
        "examples_per_s": round(summary["examples_per_s"], 1),
        # validation loss against examples seen (the train rows say how many at each step)
        "valid_by_examples": valid_by_examples(metrics),
        "best_valid_loss": round(summary["best_valid_loss"], 4),
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    for split, part in result["report"].items():
        row[f"{split}_em"] = round(part["average"]["exact_match"], 1)
        row[f"{split}_f1"] = round(part["average"]["token_f1"], 1)
        row[f"{split}_tasks"] = {t: round(r["exact_match"]) for t, r in part["tasks"].items()}
    with open(args.log, "a") as f:
        f.write(json.dumps(row) + "\n")
    short = {k: v for k, v in row.items() if not k.endswith("_tasks")}
    print(json.dumps(short))
    for split in result["report"]:
        print(split, " ".join(f"{t}={v}" for t, v in row[f"{split}_tasks"].items()))
    return 0


def valid_by_examples(metrics: list[dict]) -> list[list[float]]:
    """[[examples seen, validation loss], ...] from metrics.jsonl's rows."""
    seen = {m["step"]: m["examples"] for m in metrics if "examples" in m}
    return [
        [m.get("examples", seen.get(m["step"])), round(m["valid_loss"], 4)]
        for m in metrics
        if "valid_loss" in m
    ]


if __name__ == "__main__":
    raise SystemExit(main())
