"""The training jobs `minitune train` (instruction tuning) and `minitune pretrain` (span
corruption), `minitune report`, and what the pipeline shares with them: the training flags and
the lines a stopped run prints.

    minitune train --config configs/laptop.toml
    minitune train --data my.jsonl --out runs/mine --max-minutes 10
    minitune train --out runs/laptop --resume
    minitune pretrain --max-steps 300

Each resolves its run config once (minitune/run/settings.py), in the order TOML file -> each
--set -> each flag (each training flag is a `Setting`: it sets the train field of its name), and
calls minitune.train.train, which logs every value not at its default with where it came from
and writes the run folder. With --resume, the run's saved config takes the file's place.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
from pathlib import Path

from minitune.cli.shared import DEVICES, UserError, sub_parser
from minitune.run.paths import shipped_configs
from minitune.run.settings import (
    DEFAULT_CONFIGS,
    SPAN,
    SPAN_DEFAULTS,
    RunConfig,
    Source,
    new_run,
    parse_override,
    planned_out,
    read_run_file,
    resumed_run,
)


def speed(summary: dict) -> str:
    """Training speed from train()'s summary: examples and real tokens per second."""
    return (
        f"{summary['examples_per_s']:.1f} examples/s, {summary['tokens_per_s']:,.0f} real tokens/s"
    )


def stop_line(summary: dict, again: str, phase: str = "the run") -> str:
    """The one line of a run that a signal stopped (train()'s summary): which signal, the step
    saved and how long the save took, and `again`, the command that continues it. E.g.
    "stopped by SIGTERM after step 7: saved runs/mine/last in 0.41 s; to continue: minitune
    train --out runs/mine --resume"."""
    from minitune.run.stop_signals import signal_name

    last, step = Path(summary["out"]) / "last", summary["step"]
    if summary["stop_reason"] != "signal":  # it came during the end's save: nothing is lost
        done = f"after {phase} ended ({last} holds its last step, {step})"
    elif summary["save_seconds"] is not None:
        done = f"after step {step}: saved {last} in {summary['save_seconds']:.2f} s"
    elif step:  # resumed, and stopped before a step; or just after a periodic save
        done = f"at step {step}: nothing new to save ({last} holds it)"
    else:
        done = "before the first step: nothing saved"
    return f"stopped by {signal_name(summary['signal'])} {done}; to continue: {again}"


class Setting(argparse.Action):
    """A training flag: it sets the train field of its name (`--max-steps 5`: max_steps = 5;
    `const`: the value of a flag that takes none, nargs=0), recorded on args.flags as (flag, field,
    value) so that the log can name the flag."""

    def __call__(self, parser, namespace, values, option_string=None):
        value = self.const if self.const is not None else values
        setattr(namespace, self.dest, value)
        namespace.flags = [*namespace.flags, (option_string, self.dest, value)]


def command_line(args: argparse.Namespace, leave_out: tuple[str, ...] = ()) -> list[Source]:
    """The command line's settings in the order they apply, leaving out the training flags of
    the fields in `leave_out` (a pipeline phase sets those itself): what --data implies (that
    data trains, not a fresh draw, and a held-out train.valid_fraction of it validates unless a
    file is named), each --set, then each training flag."""
    sources = []
    if args.data and "data" not in leave_out:
        sources.append(Source("--data", train={"valid_data": None, "fresh_per_task": 0}))
    for text in args.set or []:
        section, key, value = parse_override(text)
        sources.append(Source(f"--set {text}", **{section: {key: value}}))
    return sources + [Source(f, train={k: v}) for f, k, v in args.flags if k not in leave_out]


def config_name(args: argparse.Namespace, objective: str) -> str:
    """--config, or the default for this command (finetune with --init, else laptop)."""
    init = objective == "instruct" and args.init
    return args.config or DEFAULT_CONFIGS["init" if init else objective]


def run_config_of(args: argparse.Namespace, objective: str) -> RunConfig:
    """The one config of `minitune train` (objective "instruct") or `pretrain` ("span"): fresh,
    or with --resume the saved one of --out (default: the folder the config names)."""
    settings = [*command_line(args), *([SPAN] if objective == "span" else [])]
    defaults = [SPAN_DEFAULTS] if objective == "span" else []
    sources = [*defaults, read_run_file(config_name(args, objective)), *settings]
    if not args.resume:
        return new_run(sources)
    named = [read_run_file(args.config)] if args.config else []
    return resumed_run(Path(args.out or planned_out(sources)), [*named, *settings], args.force)


def again_command(args: argparse.Namespace, summary: dict) -> str:
    """What continues a run that a signal stopped: --resume, or, when it stopped before its
    first step and nothing was ever saved, the command itself again."""
    if args.resume or summary["step"] or summary["save_seconds"] is not None:
        return f"minitune {args.command} --out {shlex.quote(str(summary['out']))} --resume"
    again = [a for a in args.argv if a != "--overwrite"]  # its folder may hold its fresh data
    return f"minitune {shlex.join([*again, '--overwrite'])}"


def cmd_train(args: argparse.Namespace) -> int:
    """`minitune train` (args.objective "instruct") and `minitune pretrain` ("span"): the run's
    config resolved once, then minitune.train.train, which writes the run folder (checkpoints,
    metrics, run.json and the page); prints how it ended. --print-config prints the config."""
    from minitune.run.report import run_record
    from minitune.run.settings import to_toml
    from minitune.run.state import check_out
    from minitune.train import train

    run_cfg = run_config_of(args, args.objective)
    if args.print_config:
        print(to_toml(run_cfg.model, run_cfg.train), end="")
        return 0
    if not args.resume:
        check_out(Path(run_cfg.train.out), args.overwrite)
    record = run_record(run_cfg, args.argv, args.resume)
    summary = train(
        run_cfg.model, run_cfg.train, args.resume, progress=not args.no_progress, record=record
    )
    if summary["stop_reason"] == "signal":  # last/ is saved, and the page (no new picture)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
            print(stop_line(summary, again_command(args, summary)))
        return 128 + summary["signal"]
    best = summary["best_valid_loss"]
    validation = f"best validation loss {best:.4f}" if math.isfinite(best) else "no validation"
    print(
        f"done: {summary['step']} steps in {summary['minutes']:.1f} min ({summary['stop_reason']}),"
        f" {speed(summary)}, {validation}, checkpoints in {summary['out']}"
        + (f"; {summary['skipped']} steps skipped (loss not finite)" if summary["skipped"] else "")
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild a run folder's page, report.html, from the folder's own files."""
    from minitune.run.report import write_report

    out = Path(args.run_dir)
    if not (out / "metrics.jsonl").is_file() and not (out / "run.json").is_file():
        raise UserError(f"{out}: not a run folder (no metrics.jsonl or run.json in it)")
    print(f"wrote {write_report(out)}")
    return 0


def training_flags(p: argparse.ArgumentParser, default_config: str, lora: bool = True) -> None:
    """The flags of train, pretrain and pipeline: the run config's file, --set, the run folder,
    and the training flags (action=Setting: each sets the train field of its name); with
    lora=True, LoRA's."""
    p.set_defaults(flags=[])
    p.add_argument(
        "--config",
        metavar="FILE|NAME",
        help=f"TOML run file, or a shipped config's name: {', '.join(shipped_configs())} "
        f"(default: {default_config})",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override any config value, e.g. --set train.lr=5e-4 (repeatable)",
    )
    p.add_argument(
        "--data",
        nargs="+",
        action=Setting,
        help="training files (overrides the config; it trains, not a fresh draw)",
    )
    p.add_argument(
        "--valid-data",
        metavar="FILE",
        action=Setting,
        help="validation file that chooses best/ (default with --data: a held-out "
        "train.valid_fraction of it, 5%%, at least 32 examples)",
    )
    p.add_argument(
        "--out", action=Setting, help="run folder (checkpoints, metrics.jsonl, loss.png)"
    )
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--max-steps", type=int, action=Setting, help="optimizer steps (the schedule's length)"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        action=Setting,
        help="the run's length in wall time: the learning rate decays over it (or over "
        "--max-steps, whichever ends first) and the run stops when it is spent; --resume "
        "continues the schedule from the saved training time, so no two runs bounded by "
        "the clock are equal (changing it on --resume needs --force)",
    )
    p.add_argument("--device", choices=DEVICES, action=Setting, help="default: auto")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "auto"],
        action=Setting,
        help="auto: bf16 where it is faster (a GPU with bf16, a CPU whose bf16 "
        "matmuls time faster at start), else fp32 (default: the config's)",
    )
    p.add_argument(
        "--init",
        action=Setting,
        help="start from this checkpoint folder (e.g. a pretrained model)",
    )
    p.add_argument(
        "--fused-kernels",
        choices=["auto", "on", "off"],
        action=Setting,
        help="attention's fused branch (scaled_dot_product_attention): on, off (the explicit "
        "arithmetic; the same numbers), or auto (the default: on with CUDA, off on a CPU, "
        "where it measured slower)",
    )
    p.add_argument(
        "--report-to",
        nargs="+",
        choices=["tensorboard"],
        action=Setting,
        help="also log the metrics for TensorBoard, in OUT/tensorboard (needs the "
        "optional extra: pip install 'minitune[tensorboard]')",
    )
    p.add_argument(
        "--skip-nonfinite",
        dest="on_nonfinite",
        nargs=0,
        const="skip",
        action=Setting,
        help="skip (and count) steps whose loss is NaN/inf instead of stopping",
    )
    scale = p.add_argument_group("GPUs and several processes (see docs/multi_gpu.md)")
    scale.add_argument(
        "--fsdp",
        nargs=0,
        const=True,
        action=Setting,
        help="under torchrun: shard the model (FSDP) instead of replicating it (DDP)",
    )
    scale.add_argument(
        "--compile", nargs=0, const=True, action=Setting, help="torch.compile the model"
    )
    scale.add_argument(
        "--activation-checkpointing",
        nargs=0,
        const=True,
        action=Setting,
        help="recompute layers in backward: less memory, more compute",
    )
    if not lora:  # pretraining has no LoRA flags
        return
    group = p.add_argument_group("LoRA (train adapters on a frozen --init model)")
    group.add_argument(
        "--lora-rank", type=int, action=Setting, help="adapter rank r (e.g. 8); 0: full fine-tuning"
    )
    group.add_argument(
        "--lora-alpha", type=float, action=Setting, help="scale α (update × α/r; default 2·r)"
    )
    group.add_argument(
        "--lora-targets",
        metavar="q,v",
        type=lambda text: text.split(","),
        action=Setting,
        help="projections: any of q,k,v,o",
    )
    group.add_argument(
        "--lora-where",
        metavar="encoder,decoder,cross",
        type=lambda text: text.split(","),
        action=Setting,
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
    p.set_defaults(func=cmd_train, objective="instruct")

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
    p.set_defaults(func=cmd_train, objective="span")

    p = sub_parser(
        sub,
        "report",
        "rebuild a run's page (report.html)",
        "Build RUN_DIR/report.html from the run folder's own files: what ran (run.json), the "
        "curves (metrics.jsonl), the evaluation and every answer (report.json, "
        "predictions.jsonl) and the attention picture. train, pretrain and pipeline write it "
        "at the end of every run; this rebuilds it.",
        ["minitune report runs/laptop"],
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (a run's --out)")
    p.set_defaults(func=cmd_report)
