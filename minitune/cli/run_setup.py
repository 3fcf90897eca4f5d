"""The command line's side of the run config: which layers a training job's settings come from,
resolved once per run (once per phase of the pipeline) by `minitune.run_config`, and logged.

    layers = [file_layer("laptop"), *flag_layers(args)]  # the config file, --set, the flags
    run = fresh_run(layers)                               # or resumed_run(out, layers, force)
    train(run.model, run.train, log=run_log(run))         # the log says where each value came from

The layers, later winning: the command's defaults (`minitune pretrain`: data/pretrain.txt), the
config file (--config, else the command's own: laptop, finetune with --init, pretrain), each
--set, each dedicated flag (--max-minutes, --data, ...), what the command sets itself (pretrain:
the span objective; a pipeline phase: its folder and starting weights), and the rule of
minitune/run_config.py (own data validates on a held-out share of itself), logged like the rest.
A resumed run starts from its saved config instead, with what the command line names on top.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from minitune.cli.shared import UserError
from minitune.config import TrainConfig
from minitune.run_config import (
    RESUME_SAFE,
    Layer,
    RunConfig,
    config_changes,
    file_layer,
    parse_override,
    resolve_run_config,
    saved_run_config,
    training_data_line,
)

# Default run configs (shipped, found from any folder): what `train` and `pretrain` use without
# --config. `train --init DIR` fine-tunes a trained model: T5-style learning rate, no time guard.
DEFAULT_CONFIGS = {"instruct": "laptop", "init": "finetune", "span": "pretrain"}
# `minitune pretrain`'s own defaults, under its config file, and what it sets on top of all.
SPAN_DEFAULTS = Layer(
    "minitune pretrain's defaults",
    kind="default",
    train={"data": ["data/pretrain.txt"], "valid_data": None, "out": "runs/pretrain"},
)
SPAN = Layer("minitune pretrain", train={"objective": "span"}, kind="command")


def _dedicated_flags(args: argparse.Namespace) -> list[tuple[str, str, object]]:
    """(flag, train field, value) for each dedicated training flag; None: not given."""
    return [
        ("--data", "data", args.data),
        ("--valid-data", "valid_data", args.valid_data),
        ("--out", "out", args.out),
        ("--max-steps", "max_steps", args.max_steps),
        ("--max-minutes", "max_minutes", args.max_minutes),
        ("--device", "device", args.device),
        ("--init", "init", args.init),
        ("--precision", "precision", args.precision),
        ("--lora-rank", "lora_rank", args.lora_rank),
        ("--lora-alpha", "lora_alpha", args.lora_alpha),
        ("--lora-targets", "lora_targets", args.lora_targets and args.lora_targets.split(",")),
        ("--lora-where", "lora_where", args.lora_where and args.lora_where.split(",")),
        ("--skip-nonfinite", "on_nonfinite", "skip" if args.skip_nonfinite else None),
        ("--fsdp", "fsdp", args.fsdp or None),
        ("--compile", "compile", args.compile or None),
        (
            "--activation-checkpointing",
            "activation_checkpointing",
            args.activation_checkpointing or None,
        ),
        ("--fused-kernels", "fused_kernels", args.fused_kernels),
        ("--report-to", "report_to", args.report_to and [args.report_to]),
    ]


def flag_layers(args: argparse.Namespace, leave_out: tuple[str, ...] = ()) -> list[Layer]:
    """The command line's layers: each --set, then each dedicated flag given (a flag wins over
    --set), leaving out the dedicated flags of the fields in `leave_out` (a pipeline phase sets
    those itself). --valid-data also sets valid_fraction 0 (a file replaces a held-out slice),
    unless a --set names it."""
    layers = []
    for text in args.set or []:
        try:
            section, key, value = parse_override(text)
        except ValueError as err:
            raise UserError(str(err)) from None
        layers.append(Layer(f"--set {text}", **{section: {key: value}}))
    named = {key for layer in layers for key in layer.train}
    for flag, key, value in _dedicated_flags(args):
        if value is None or key in leave_out:
            continue
        values = {key: value}
        if key == "valid_data" and "valid_fraction" not in named:
            values["valid_fraction"] = 0.0
        layers.append(Layer(flag, train=values))
    return layers


def config_name(args: argparse.Namespace, objective: str) -> str:
    """--config, or the default for this command (finetune with --init, else laptop)."""
    if args.config:
        return args.config
    return DEFAULT_CONFIGS["init" if objective == "instruct" and args.init else objective]


def run_file(name: str) -> Layer:
    """file_layer, with a missing or broken file as a one-line error."""
    try:
        return file_layer(name)
    except ValueError as err:
        raise UserError(str(err)) from None


def planned_out(layers: list[Layer]) -> str:
    """The run folder that `layers` name (the last that names one), else TrainConfig's."""
    named = [layer.train["out"] for layer in layers if "out" in layer.train]
    return named[-1] if named else TrainConfig().out


def fresh_run(layers: list[Layer], say=print) -> RunConfig:
    """The config of a new run, resolved once from `layers`. When the file or the command line
    names train.init, the model (shape, tokenizer) is that checkpoint's: model settings on the
    command line are refused, a file's [model] table is noted (with `say`) as not used."""
    from minitune.layers import registry

    setters = [layer for layer in layers if layer.train.get("init")]
    if setters and setters[-1].kind in ("file", "flag"):
        init = setters[-1].train["init"]
        flagged = [
            f"model.{key}" for layer in layers if layer.kind == "flag" for key in layer.model
        ]
        if flagged:
            raise UserError(
                f"the model comes from --init {init} (its own config.json); these "
                f"settings cannot apply to it: {', '.join(flagged)}"
            )
        for layer in layers:
            if layer.kind == "file" and layer.model:
                say(
                    f"note: {layer.where}'s [model] table ({', '.join(layer.model)}) is not "
                    f"used: the model comes from --init {init}"
                )
    try:
        run = resolve_run_config(layers)
        registry.check(run.model)  # the variant names (config.py, a leaf, cannot check them)
    except ValueError as err:
        raise UserError(str(err)) from None
    return run


def resumed_run(out: Path, named: list[Layer], force: bool, say=print) -> RunConfig:
    """The config saved in out/last/config.json, with the `named` layers on top (a --config
    file given with --resume counts as named too). Says what differs; refuses changes that
    make the run differ from an uninterrupted one, unless `force` (--force)."""
    from minitune.checkpoint import read_config, recover

    last = out / "last"
    recover(last)
    if not (last / "trainer.pt").is_file():
        raise UserError(
            f"nothing to resume in {out}: no {last}/trainer.pt (start the run without --resume)"
        )
    info = read_config(last)
    named = [*named, Layer("the run folder", train={"out": str(out)}, kind="command")]
    wanted = {"model": {}, "train": {}}
    for layer in named:
        wanted["model"].update(layer.model)
        wanted["train"].update(layer.train)
    try:  # the saved config itself: a damaged file is named
        saved = saved_run_config(info, {"train": {"out": str(out)}})
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{last / 'config.json'}: not a run config ({err})") from None
    try:
        model_cfg, cfg = saved_run_config(info, wanted)
    except ValueError as err:
        raise UserError(str(err)) from None
    changes = config_changes(saved, (model_cfg, cfg))
    listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)
    breaking = [k for k, _, _ in changes if k.removeprefix("train.") not in RESUME_SAFE]
    if breaking and not force:
        raise UserError(
            f"resuming {out} with other settings than it was trained with ({listed}): "
            f"{', '.join(breaking)} would make it differ from an uninterrupted run; pass "
            "--force to accept that, or start a new --out"
        )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
        say(
            f"resuming {out} from its saved config ({last / 'config.json'})"
            + (f", changed: {listed}" if changes else "")
        )
    sources = {
        f"{section}.{key}": layer
        for layer in named
        for section in ("model", "train")
        for key in getattr(layer, section)
    }
    return RunConfig(model_cfg, cfg, sources, preset=None)


def training_run(args: argparse.Namespace, objective: str) -> RunConfig:
    """The one config of `minitune train` (objective "instruct") or `pretrain` ("span"): fresh,
    or with --resume the saved one of --out (default: the folder the config names)."""
    defaults = [SPAN_DEFAULTS] if objective == "span" else []
    settings = [*flag_layers(args), *([SPAN] if objective == "span" else [])]
    layers = [*defaults, run_file(config_name(args, objective)), *settings]
    if not args.resume:
        return fresh_run(layers)
    out = Path(args.out or planned_out(layers))
    return resumed_run(
        out, [*([run_file(args.config)] if args.config else []), *settings], args.force
    )


def run_log(run: RunConfig):
    """Print the run config (each value not at its default and where it came from; a resumed
    run: its saved config, already reported) and the training data's source; returns train()'s
    log, tqdm.write (which keeps the progress bar below the lines)."""
    from tqdm import tqdm

    if run.preset is not None:
        tqdm.write("run config (values not at their defaults, and where each came from):")
        for line in run.log_lines():
            tqdm.write(f"  {line}")
    tqdm.write(training_data_line(run.train))
    return tqdm.write
