"""Copy a finished base pretraining run into checkpoints/base/ (weights only) with its model card.

    python scripts/ship_base.py runs/base

A developer's script: it takes RUN/best (the weights with the lowest validation loss; no
optimizer state), writes paths in its config.json relative to the project (the run saved them
absolute), and writes checkpoints/base/README.md from RUN/metrics.jsonl and this machine.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "checkpoints" / "base"
FILES = ("model.safetensors", "config.json", "tokenizer.model", "tokenizer.segmentation.json")


def _relative(value):
    if isinstance(value, str) and value.startswith(str(ROOT) + "/"):
        return value[len(str(ROOT)) + 1 :]
    if isinstance(value, list):
        return [_relative(v) for v in value]
    return value


def _cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"model name\s*:\s*(.*)", info)
    flags = set(re.search(r"flags\s*:\s*(.*)", info).group(1).split()) if "flags" in info else set()
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name.group(1) if name else platform.processor()} ({', '.join(have)})"


def heldout_loss(folder: Path, n_documents: int = 1000) -> dict[str, float]:
    """Per-token loss on world documents of another seed (1), which the base never read: span
    corruption and copy-denoising examples, as in its pretraining."""

    from minitune.config import TrainConfig
    from minitune.data.stream import span_examples
    from minitune.run.checkpoint import load_pretrained, read_config
    from minitune.suite.world import generate_world
    from minitune.tokenizer import Tokenizer
    from minitune.train import StepSetup, validation_loss

    model, tokenizer_file, _ = load_pretrained(folder)
    tok = Tokenizer(tokenizer_file)
    documents = [tok.encode(d) for d in generate_world(1, n_documents)]
    cfg = read_config(folder)["train"]
    losses = {}
    for name, copy in (("span", 0.0), ("copy", 1.0)):
        lengths = {k: cfg[k] for k in ("max_source_length", "max_target_length")}
        run = TrainConfig(objective="span", copy_fraction=copy, **lengths)
        examples = span_examples(documents, tok, run, epoch=0)
        losses[name] = round(validation_loss(model, examples, 32, StepSetup("cpu", tok.pad_id)), 4)
    return losses


def main(run: str) -> None:
    run_dir = Path(run)
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(run_dir / "best" / name, TARGET / name)
    config = json.loads((TARGET / "config.json").read_text())
    config["train"] = {k: _relative(v) for k, v in config["train"].items()}
    (TARGET / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    rows.sort(key=lambda r: r.get("step", 0))  # (a resumed session may append out of order)
    train_rows = [r for r in rows if "loss" in r]
    valid_rows = [r for r in rows if "valid_loss" in r]
    last = train_rows[-1]
    summary = {
        "step": config.get("step"),
        "last_step": last["step"],
        "elapsed_min": round(last["elapsed_s"] / 60, 1),
        "examples": last.get("examples"),
        "train_loss_last_100_steps": round(
            sum(r["loss"] for r in train_rows[-10:]) / len(train_rows[-10:]), 4
        ),
        "valid_loss": [(r["step"], round(r["valid_loss"], 4)) for r in valid_rows],
        "machine": f"{_cpu()}, {platform.machine()}, Python {platform.python_version()}",
        "heldout_loss_seed1": heldout_loss(TARGET),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
