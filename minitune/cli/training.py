"""The training jobs `minitune train` (instruction tuning) and `minitune pretrain` (span
corruption), and what the pipeline shares with them: the training flags, the run folder check.

    minitune train --config configs/laptop.toml
    minitune train --data my.jsonl --out runs/mine --max-minutes 10
    minitune train --out runs/laptop --resume
    minitune pretrain --max-steps 300

Each resolves its run config once (minitune/cli/run_setup.py), logs it after the path line,
and runs minitune.train.train.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from minitune.cli.run_setup import run_log, training_run
from minitune.cli.shared import DEVICES, UserError, sub_parser
from minitune.paths import shipped_configs

# What a run writes into its --out folder (--overwrite removes these, and only these).
RUN_OUTPUTS = (
    "best",
    "last",
    "best.tmp",
    "last.tmp",
    "best.old",
    "last.old",
    "metrics.jsonl",
    "loss.png",
    "eval.txt",
    "report.json",
    "pretrain",
    "tensorboard",
    "fresh_train.jsonl",
)


def check_out(out: Path, overwrite: bool) -> None:
    """A fresh run needs an empty (or new) --out; --overwrite removes a previous run's files."""
    import os
    import shutil

    if os.environ.get("RANK", "0") != "0":  # under torchrun, process 0 checks (and clears)
        return
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        held = ", ".join(sorted(p.name for p in out.iterdir())[:6])
        raise UserError(
            f"{out} is not empty ({held}); continue that run with --resume, choose another "
            "--out, or pass --overwrite to replace it"
        )
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def speed(summary: dict) -> str:
    """Training speed from train()'s summary: examples and real tokens per second."""
    return (
        f"{summary['examples_per_s']:.1f} examples/s, {summary['tokens_per_s']:,.0f} real tokens/s"
    )


def resume_command(command: str, out: str, extra: str = "") -> str:
    """The command line that continues an interrupted run in `out`."""
    import shlex

    return f"minitune {command} --out {shlex.quote(str(out))} --resume{extra}"


def _train(args: argparse.Namespace, objective: str) -> int:
    """Resolve the run's config, then train (or print the config with --print-config)."""
    from minitune.run_config import to_toml
    from minitune.train import train

    run = training_run(args, objective)
    if args.print_config:
        print(to_toml(run.model, run.train), end="")
        return 0
    if not args.resume:
        check_out(Path(run.train.out), args.overwrite)
    summary = train(
        run.model,
        run.train,
        resume=args.resume,
        progress=not args.no_progress,
        log=run_log(run),
    )
    best = summary["best_valid_loss"]
    validation = f"best validation loss {best:.4f}" if math.isfinite(best) else "no validation"
    print(
        f"done: {summary['step']} steps in {summary['minutes']:.1f} min ({summary['stop_reason']}),"
        f" {speed(summary)}, {validation}, checkpoints in {summary['out']}"
        + (f"; {summary['skipped']} steps skipped (loss not finite)" if summary["skipped"] else "")
    )
    if summary["stop_reason"] == "interrupted":
        print(f"to continue: {resume_command(args.command, run.train.out)}")
        return 130
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Instruction tuning."""
    return _train(args, "instruct")


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Span-corruption pretraining."""
    return _train(args, "span")


def training_flags(p: argparse.ArgumentParser, default_config: str, lora: bool = True) -> None:
    """The flags of train, pretrain and pipeline: the run config's file, folder, budget,
    device, --set, and (lora=True) LoRA's."""
    p.add_argument(
        "--config",
        metavar="FILE|NAME",
        help=f"TOML run file, or a shipped config's name: {', '.join(shipped_configs())} "
        f"(default: {default_config})",
    )
    p.add_argument("--data", nargs="+", help="training files (overrides the config)")
    p.add_argument(
        "--valid-data",
        metavar="FILE",
        help="validation file that chooses best/ (default with --data: a held-out "
        "5%% of the data, at least 32 examples)",
    )
    p.add_argument("--out", help="run folder (checkpoints, metrics.jsonl, loss.png)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from last/, with its saved config",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in a non-empty --out (removes its previous run)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with --resume: accept settings that make the run differ from an "
        "uninterrupted one (e.g. another lr)",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved run config as TOML and exit"
    )
    p.add_argument("--max-steps", type=int, help="optimizer steps (the schedule's length)")
    p.add_argument("--max-minutes", type=float, help="stop after this much wall time")
    p.add_argument("--device", choices=DEVICES, help="default: auto")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "auto"],
        help="auto: bf16 where it is faster (a GPU with bf16, a CPU whose bf16 "
        "matmuls time faster at start), else fp32 (default: the config's)",
    )
    p.add_argument("--init", help="start from this checkpoint folder (e.g. a pretrained model)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override any config value, e.g. --set train.lr=5e-4 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--fused-kernels",
        choices=["auto", "on", "off"],
        help="attention's and the feed-forward's fused branches (SDPA, stacked projections): "
        "on, off (the explicit arithmetic; the same numbers), or auto (the default: on with "
        "CUDA, off on a CPU, where they measured slower)",
    )
    p.add_argument(
        "--report-to",
        choices=["tensorboard"],
        help="also log the metrics for TensorBoard, in OUT/tensorboard (needs the "
        "optional extra: pip install 'minitune[tensorboard]')",
    )
    p.add_argument(
        "--skip-nonfinite",
        action="store_true",
        help="skip (and count) steps whose loss is NaN/inf instead of stopping",
    )
    scale = p.add_argument_group("GPUs and several processes (see docs/multi_gpu.md)")
    scale.add_argument(
        "--fsdp",
        action="store_true",
        help="under torchrun: shard the model (FSDP) instead of replicating it (DDP)",
    )
    scale.add_argument("--compile", action="store_true", help="torch.compile the model")
    scale.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute layers in backward: less memory, more compute",
    )
    if not lora:  # pretraining has no LoRA flags
        p.set_defaults(lora_rank=None, lora_alpha=None, lora_targets=None, lora_where=None)
        return
    group = p.add_argument_group("LoRA (train adapters on a frozen --init model)")
    group.add_argument("--lora-rank", type=int, help="adapter rank r (e.g. 8); 0: full fine-tuning")
    group.add_argument("--lora-alpha", type=float, help="scale α (update × α/r; default 2·r)")
    group.add_argument("--lora-targets", metavar="q,v", help="projections: any of q,k,v,o")
    group.add_argument(
        "--lora-where",
        metavar="encoder,decoder,cross",
        help="which attention layers (default: all three)",
    )


def add_parsers(sub) -> None:
    """The sub-commands train and pretrain."""
    p = sub_parser(
        sub,
        "train",
        "instruction tuning",
        "Fine-tune with the instruction-tuning loss on the shipped suite or your files.",
        [
            "minitune train --config configs/laptop.toml",
            "minitune train --data my.jsonl --out runs/mine --max-minutes 10",
            "minitune train --init runs/pretrain/last --out runs/tuned",
            "minitune train --out runs/laptop --resume",
            "minitune train --set train.lr=5e-4 --set model.dropout=0.1",
        ],
    )
    training_flags(p, "laptop; with --init: finetune")
    p.set_defaults(func=cmd_train)

    p = sub_parser(
        sub,
        "pretrain",
        "span-corruption pretraining",
        "Pretrain with T5's span corruption on the shipped corpus (data/pretrain.txt) "
        "or your text files (documents separated by blank lines).",
        [
            "minitune pretrain --max-steps 300",
            "minitune pretrain --data my_texts.txt --out runs/my_pretrain",
        ],
    )
    training_flags(p, "pretrain", lora=False)
    p.set_defaults(func=cmd_pretrain)
