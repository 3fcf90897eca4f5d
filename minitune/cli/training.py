"""The training jobs `minitune train` (instruction tuning) and `minitune pretrain` (span
corruption), and what the pipeline shares with them: the training flags, the run folder check,
the run's record and page (`minitune report RUN_DIR` rebuilds the page).

    minitune train --config configs/laptop.toml
    minitune train --data my.jsonl --out runs/mine --max-minutes 10
    minitune train --out runs/laptop --resume
    minitune pretrain --max-steps 300

Each resolves its run config once, in the order TOML file -> each --set -> each flag (each
training flag is a `Setting`: it sets the train field of its name), logs every value not at its
default with where it came from, and runs minitune.train.train. With --resume, the run's saved
config takes the file's place.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from minitune.cli.shared import DEVICES, UserError, sub_parser
from minitune.config import (
    RESUME_SAFE,
    RunConfig,
    Source,
    parse_override,
    read_run_file,
    resolve,
    resumed,
)
from minitune.run.paths import shipped_configs

# The run config each command reads without --config (shipped, found from any folder); `train
# --init DIR` fine-tunes a trained model: T5-style learning rate, no time guard.
DEFAULT_CONFIGS = {"instruct": "laptop", "init": "finetune", "span": "pretrain"}
# `minitune pretrain`'s own defaults, under its config file, and what it sets on top of all.
SPAN_DEFAULTS = Source(
    "minitune pretrain's defaults", train={"data": ["data/pretrain.txt"], "out": "runs/pretrain"}
)
SPAN = Source("minitune pretrain", train={"objective": "span"})

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
    "run.json",
    "report.html",
    "predictions.jsonl",
    "attention.png",
    "attention.json",
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
    `const`: the value of a flag that takes none, nargs=0), recorded on args.settings as (flag, field,
    value) so that the log can name the flag."""

    def __call__(self, parser, namespace, values, option_string=None):
        value = self.const if self.const is not None else values
        setattr(namespace, self.dest, value)
        namespace.settings = [*namespace.settings, (option_string, self.dest, value)]


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
    return sources + [Source(f, train={k: v}) for f, k, v in args.settings if k not in leave_out]


def config_name(args: argparse.Namespace, objective: str) -> str:
    """--config, or the default for this command (finetune with --init, else laptop)."""
    init = objective == "instruct" and args.init
    return args.config or DEFAULT_CONFIGS["init" if init else objective]


def planned_out(sources: list[Source]) -> str:
    """The run folder that `sources` name (the last that names one), else the default."""
    return next((s.train["out"] for s in reversed(sources) if "out" in s.train), "runs/laptop")


def run_config(sources: list[Source], say=print) -> RunConfig:
    """The config of a new run, resolved once from `sources`. When a file or the command line
    names train.init, the model (shape, tokenizer) is that checkpoint's: model settings on the
    command line are refused, a file's [model] table is noted (with `say`) as not used (a
    command's own settings, named "minitune ...", such as a pipeline phase's start, are not)."""
    from minitune.layers import registry

    init = next((s for s in reversed(sources) if s.train.get("init")), None)
    if init is not None and not init.where.startswith("minitune "):
        start = init.train["init"]
        flagged = [f"model.{k}" for s in sources if s.where.startswith("--") for k in s.model]
        if flagged:
            raise UserError(
                f"the model comes from --init {start} (its own config.json); these settings "
                f"cannot apply to it: {', '.join(flagged)}"
            )
        for source in sources:
            if source.model and not source.where.startswith("minitune "):
                say(
                    f"note: {source.where}'s [model] table ({', '.join(source.model)}) is not "
                    f"used (the model is {start}'s)"
                )
    run = resolve(sources)
    registry.check(run.model)  # the variant names (config.py, a leaf, cannot check them)
    return run


def resumed_run(out: Path, sources: list[Source], force: bool, say=print) -> RunConfig:
    """The config saved in out/last/config.json with `sources` on top. Says what changes;
    refuses a change that would make the run differ from an uninterrupted one, unless `force`."""
    import os

    from minitune.run.checkpoint import read_config, recover

    last = out / "last"
    recover(last)
    if not (last / "trainer.pt").is_file():
        raise UserError(
            f"nothing to resume in {out}: no {last}/trainer.pt (start the run without --resume)"
        )
    saved = read_config(last)
    try:  # the saved config alone first: a damaged file is named
        resumed(saved, str(out), [])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{last / 'config.json'}: not a run config ({err})") from None
    run, changes = resumed(saved, str(out), sources)
    listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)
    breaking = [k for k, _, _ in changes if k.removeprefix("train.") not in RESUME_SAFE]
    if breaking and not force:
        raise UserError(
            f"resuming {out} with other settings than it was trained with ({listed}): "
            f"{', '.join(breaking)} would make it differ from an uninterrupted run; pass "
            "--force to accept that, or start a new --out"
        )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
        changed = f", changed: {listed}" if changes else ""
        say(f"resuming {out} from its saved config ({last / 'config.json'}){changed}")
    return run


def training_run(args: argparse.Namespace, objective: str) -> RunConfig:
    """The one config of `minitune train` (objective "instruct") or `pretrain` ("span"): fresh,
    or with --resume the saved one of --out (default: the folder the config names)."""
    settings = [*command_line(args), *([SPAN] if objective == "span" else [])]
    defaults = [SPAN_DEFAULTS] if objective == "span" else []
    sources = [*defaults, read_run_file(config_name(args, objective)), *settings]
    if not args.resume:
        return run_config(sources)
    named = [read_run_file(args.config)] if args.config else []
    return resumed_run(Path(args.out or planned_out(sources)), [*named, *settings], args.force)


def run_log(run: RunConfig):
    """Print the run config (each value not at its default and where it came from; a resumed
    run: its saved config, already reported) and the training data's source; returns train()'s
    log, tqdm.write (which keeps the progress bar below the lines)."""
    from tqdm import tqdm

    from minitune.data.stream import data_line

    if run.preset is not None:
        tqdm.write("run config (values not at their defaults, and where each came from):")
        for line in run.log_lines():
            tqdm.write(f"  {line}")
    tqdm.write(data_line(run.train))
    return tqdm.write


def run_record(args: argparse.Namespace, run: RunConfig, resumed: bool, what: str = ""):
    """The record of this session of the run (minitune/run/report.py): the command as typed, the
    values not at their defaults with their sources, and the start; `resumed`: the session
    continues the folder's run; `what` names a pipeline's phase."""
    from minitune.run.report import RunRecord, command_line

    start = f"from {run.train.init}" if run.train.init else "random weights"
    if resumed:
        start = "resumed from its last/ (the start is the first session's)"
    return RunRecord(
        Path(run.train.out),
        command_line(args.argv),
        run.log_lines() if run.preset is not None else [],
        start,
        resumed=resumed,
        phase=what,
        say=run_log(run),
    )


def trained(record, run: RunConfig, resume: bool, progress: bool) -> dict:
    """train() with every log line kept in `record`, which is written with how the session
    ended, also when training diverged; then the run's page (minitune/run/report.py)."""
    from minitune.run.errors import DivergenceError
    from minitune.run.report import is_first_process, write_report
    from minitune.train import train

    try:
        summary = train(run.model, run.train, resume=resume, progress=progress, log=record.log)
    except DivergenceError as err:
        record.finish(error=f"diverged: {err}")
        if is_first_process():
            write_report(run.train.out)
        raise
    record.finish(summary)
    return summary


def attention_prompt(cfg) -> str | None:
    """A prompt for the page's attention picture: the first validation (else training) example
    of an instruction-tuning run; for pretraining, the start of its first document with three
    words replaced by a sentinel, as span corruption does ("The cat <extra_id_0> mat.")."""
    from minitune.data.formats import read_records
    from minitune.data.templates import format_prompt
    from minitune.run.paths import find_shipped

    if cfg.objective == "span":
        from minitune.data.documents import read_documents

        words = next(iter(read_documents(find_shipped(cfg.data[0]))), "").split()[:24]
        return " ".join([*words[:8], "<extra_id_0>", *words[11:]]) if len(words) > 11 else None
    files = [cfg.valid_data] if cfg.valid_data else list(cfg.data)
    for path in files:
        records = read_records(find_shipped(path))
        if records:
            return format_prompt(records[0].instruction, records[0].input)
    return None


def write_page(out: Path, prompt: str | None, device: str = "cpu") -> None:
    """The run's attention picture (best/ answering `prompt`) and its page, by the first
    process; says where the page is."""
    import json

    from minitune.run.report import is_first_process, write_attention_picture, write_report

    if not is_first_process():
        return
    best = out / "best"
    if prompt and (best / "config.json").is_file():
        answer = write_attention_picture(best, prompt, out / "attention.png", device)
        (out / "attention.json").write_text(json.dumps({"prompt": prompt, "answer": answer}))
    print(f"the run's page: {write_report(out)}")


def _train(args: argparse.Namespace, objective: str) -> int:
    """Resolve the run's config, then train (or print the config with --print-config)."""
    import os

    from minitune.config import to_toml

    run = training_run(args, objective)
    if args.print_config:
        print(to_toml(run.model, run.train), end="")
        return 0
    if not args.resume:
        check_out(Path(run.train.out), args.overwrite)
    record = run_record(args, run, args.resume)
    summary = trained(record, run, args.resume, progress=not args.no_progress)
    if summary["stop_reason"] == "signal":  # last/ is saved: the page, quickly (no new picture)
        write_page(Path(run.train.out), None)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
            print(stop_line(summary, again_command(args, summary)))
        return 128 + summary["signal"]
    write_page(Path(run.train.out), attention_prompt(run.train))
    best = summary["best_valid_loss"]
    validation = f"best validation loss {best:.4f}" if math.isfinite(best) else "no validation"
    print(
        f"done: {summary['step']} steps in {summary['minutes']:.1f} min ({summary['stop_reason']}),"
        f" {speed(summary)}, {validation}, checkpoints in {summary['out']}"
        + (f"; {summary['skipped']} steps skipped (loss not finite)" if summary["skipped"] else "")
    )
    return 0


def again_command(args: argparse.Namespace, summary: dict) -> str:
    """What continues a run that a signal stopped: --resume, or, when it stopped before its
    first step and nothing was ever saved, the command itself again."""
    import shlex

    if args.resume or summary["step"] or summary["save_seconds"] is not None:
        return resume_command(args.command, summary["out"])
    again = [a for a in args.argv if a != "--overwrite"]  # its folder may hold its fresh data
    return f"minitune {shlex.join([*again, '--overwrite'])}"


def cmd_train(args: argparse.Namespace) -> int:
    """Instruction tuning."""
    return _train(args, "instruct")


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Span-corruption pretraining."""
    return _train(args, "span")


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
    p.set_defaults(settings=[])
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
        help="attention's and the feed-forward's fused branches (SDPA, stacked projections): "
        "on, off (the explicit arithmetic; the same numbers), or auto (the default: on with "
        "CUDA, off on a CPU, where they measured slower)",
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
