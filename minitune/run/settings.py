"""A run's settings in one pass: their sources in order (a later one wins), resolved into the
dataclasses of `minitune/config.py`, with where each value came from; and the rules of resuming.

    model_cfg, train_cfg = load_run_config("laptop", {"train": {"lr": 5e-4}})  # file, overrides
    run_cfg = new_run([read_run_file("laptop"), Source("--max-steps", train={"max_steps": 5})])
    run_cfg.log_lines()   # ["model.preset = 'laptop' (configs/laptop.toml)", ...]

The sources: the command's defaults, the TOML file ([model]: a preset and any ModelConfig field;
[train]: any TrainConfig field), each `--set section.key=value`, each flag, and what a command
sets itself (a pipeline phase's folder and start). A resumed run starts from the config saved in
its last/ instead, and refuses a change that would make it differ from an uninterrupted run
(`RESUME_SAFE` lists the ones that do not) unless forced.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from minitune.config import OBSOLETE, ConfigError, ModelConfig, TrainConfig, check_keys
from minitune.run.paths import config_file, shipped_root

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# The run file each command reads without --config (shipped, found from any folder); `train
# --init DIR` fine-tunes a trained model: T5-style learning rate, no time guard.
DEFAULT_CONFIGS = {"instruct": "laptop", "init": "finetune", "span": "pretrain"}


@dataclass
class Source:
    """Settings from one place, named as the log names it: "configs/laptop.toml", "--set
    train.lr=5e-4", "--max-minutes", "minitune pipeline: the tuning phase" (a command's own)."""

    where: str
    model: dict = field(default_factory=dict)  # may hold `preset`
    train: dict = field(default_factory=dict)


@dataclass
class RunConfig:
    """A resolved run: the two configs and, for each value a source set, that source's name."""

    model: ModelConfig
    train: TrainConfig
    where: dict[str, str]  # "train.lr" -> "configs/laptop.toml"; a value not here: its default
    preset: str | None = "laptop"  # None: the model is a saved one (a resumed run's)

    def log_lines(self) -> list[str]:
        """One line per value that differs from its default, with its source, model first:
        "model.preset = 'laptop' (configs/laptop.toml)", "train.max_minutes = 3 (--max-minutes)".
        A model that comes from train.init is that checkpoint's."""
        tables = [("train", self.train, TrainConfig())]
        lines = [f"model: the model of {self.train.init} (its config.json)"]
        if not self.train.init:
            lines = [f"model.preset = {self.preset!r} ({self.where.get('model.preset')})"]
            tables.insert(0, ("model", self.model, ModelConfig.preset(self.preset)))
        for section, values, defaults in tables:
            for key, value in values.to_dict().items():
                source = self.where.get(f"{section}.{key}", "default")
                if value != defaults.to_dict()[key]:
                    lines.append(f"{section}.{key} = {value!r} ({source})")
        return lines


def read_run_file(name: str | Path) -> Source:
    """A TOML run file's [model] and [train] tables (a path, or a shipped config's name such as
    "laptop"), named as the log shows it: configs/laptop.toml for a shipped one, else as given."""
    try:
        path = config_file(name)
    except ValueError as err:  # no such file, here or shipped
        raise ConfigError(str(err)) from None
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    unknown = [section for section in tables if section not in ("model", "train")]
    if unknown:
        raise ConfigError(f"{path}: unknown table [{unknown[0]}]; allowed: [model], [train]")
    root, whole = shipped_root(), path.resolve()
    shown = str(whole.relative_to(root)) if root and whole.is_relative_to(root) else str(name)
    return Source(shown, tables.get("model", {}), tables.get("train", {}))


def parse_override(text: str) -> tuple[str, str, object]:
    """ "train.lr=3e-4" -> ("train", "lr", 0.0003). Values are TOML (strings may omit quotes)."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or section not in ("model", "train"):
        raise ConfigError(f"override {text!r} must look like model.KEY=VALUE or train.KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: a string
    return section, name.strip(), value


def resolve(sources: list[Source]) -> RunConfig:
    """Merge `sources` (a later one wins) into the run's ModelConfig and TrainConfig, keeping
    where each value came from. Raises ConfigError naming an unknown key or a bad value."""
    merged: dict[str, dict] = {"model": {}, "train": {}}
    where = {"model.preset": "default"}
    for source, section in [(s, section) for s in sources for section in ("model", "train")]:
        merged[section].update(getattr(source, section))
        where.update({f"{section}.{key}": source.where for key in getattr(source, section)})
    preset = merged["model"].pop("preset", "laptop")
    check_keys("model", merged["model"], ModelConfig)
    check_keys("train", merged["train"], TrainConfig)
    if preset is None:  # a saved model: every field its own
        model = ModelConfig.from_dict(merged["model"])
    else:
        model = ModelConfig.preset(preset, **merged["model"])
    return RunConfig(model, TrainConfig(**merged["train"]), where, preset)


def load_run_config(
    path: str | Path | None, overrides: dict | None = None, defaults: dict | None = None
) -> tuple[ModelConfig, TrainConfig]:
    """The configs of a TOML run file (a path or a shipped config's name; None: no file) with
    `defaults` under it and `overrides` on top, each shaped {"model": {...}, "train": {...}};
    [model] takes `preset` plus any ModelConfig field, [train] any TrainConfig field."""
    file = [read_run_file(path)] if path is not None else []
    run = resolve(
        [Source("defaults", **(defaults or {})), *file, Source("overrides", **(overrides or {}))]
    )
    return run.model, run.train


# Settings that a resumed run may change without leaving the path of an uninterrupted run: how
# often to log, evaluate and save, and where the work happens. Not max_minutes: the schedule
# decays over it (with the elapsed training time saved in last/), so it changes the learning rate.
RESUME_SAFE = {"save_every", "log_every", "eval_every", "device", "threads"}
RESUME_SAFE |= {"compile", "activation_checkpointing", "on_nonfinite", "out", "tf32"}
RESUME_SAFE |= {"report_to", "adamw_impl", "fused_kernels", "score_valid"}


def resumed(saved: dict, out: str, sources: list[Source]) -> tuple[RunConfig, list[tuple]]:
    """The config a checkpoint's config.json (`saved`) was trained with, in the run folder
    `out`, with `sources` on top; and the changes [(section.key, saved value, new value)]."""
    known = {f.name for f in dataclasses.fields(TrainConfig) if f.init}  # older versions' keys
    train = {k: v for k, v in saved["train"].items() if k in known}
    model = {k: v for k, v in saved["model"].items() if k not in OBSOLETE}
    kept = [Source("the saved config", {**model, "preset": None}, {**train, "out": out})]
    before, after = resolve(kept), resolve([*kept, *sources])
    changes = []
    for section in ("model", "train"):
        old, new = getattr(before, section).to_dict(), getattr(after, section).to_dict()
        changes += [(f"{section}.{k}", old[k], v) for k, v in new.items() if old[k] != v]
    return after, changes


def to_toml(model_cfg: ModelConfig, cfg: TrainConfig) -> str:
    """The resolved run config as a TOML run file: "[model]\nvocab_size = 3000\n...", unset
    values as comments, and `data` too while fresh examples train instead."""
    lines, tables = [], [("model", model_cfg.to_dict()), ("train", cfg.to_dict())]
    if cfg.init:  # the model is the checkpoint's own
        lines, tables = [f"# [model]: the model of {cfg.init} (its config.json)", ""], tables[1:]
    unread = "data" if cfg.objective == "instruct" and cfg.fresh_per_task else None
    for name, values in tables:
        lines.append(f"[{name}]")
        for k, v in values.items():  # a JSON string, list, number or boolean is one in TOML too
            if v is None:
                lines.append(f"# {k} (not set)")
            elif k == unread:
                lines.append(f"# {k} = {json.dumps(v)} (not read: fresh_per_task draws the data)")
            else:
                lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    return "\n".join(lines)


# `minitune pretrain`'s own defaults, under its config file, and what it sets on top of all.
SPAN_DEFAULTS = Source(
    "minitune pretrain's defaults", train={"data": ["data/pretrain.txt"], "out": "runs/pretrain"}
)
SPAN = Source("minitune pretrain", train={"objective": "span"})


def planned_out(sources: list[Source]) -> str:
    """The run folder that `sources` name (the last that names one), else the default."""
    return next((s.train["out"] for s in reversed(sources) if "out" in s.train), "runs/laptop")


def new_run(sources: list[Source], say=print) -> RunConfig:
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
            raise ConfigError(
                f"the model comes from --init {start} (its own config.json); these settings "
                f"cannot apply to it: {', '.join(flagged)}"
            )
        for source in sources:
            if source.model and not source.where.startswith("minitune "):
                say(
                    f"note: {source.where}'s [model] table ({', '.join(source.model)}) is not "
                    f"used (the model is {start}'s)"
                )
    run_cfg = resolve(sources)
    registry.check(run_cfg.model)  # the variant names (config.py, a leaf, cannot check them)
    return run_cfg


def resumed_run(out: Path, sources: list[Source], force: bool, say=print) -> RunConfig:
    """The config saved in out/last/config.json with `sources` on top. Says what changes;
    refuses a change that would make the run differ from an uninterrupted one, unless `force`."""
    from minitune.run.checkpoint import read_config, recover

    last = out / "last"
    recover(last)
    if not (last / "trainer.pt").is_file():
        raise ConfigError(
            f"nothing to resume in {out}: no {last}/trainer.pt (start the run without --resume)"
        )
    saved = read_config(last)
    try:  # the saved config alone first: a damaged file is named
        resumed(saved, str(out), [])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{last / 'config.json'}: not a run config ({err})") from None
    run_cfg, changes = resumed(saved, str(out), sources)
    listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)
    breaking = [k for k, _, _ in changes if k.removeprefix("train.") not in RESUME_SAFE]
    if breaking and not force:
        raise ConfigError(
            f"resuming {out} with other settings than it was trained with ({listed}): "
            f"{', '.join(breaking)} would make it differ from an uninterrupted run; pass "
            "--force to accept that, or start a new --out"
        )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
        changed = f", changed: {listed}" if changes else ""
        say(f"resuming {out} from its saved config ({last / 'config.json'}){changed}")
    return run_cfg
