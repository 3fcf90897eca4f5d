"""The run config: a training run's settings, resolved once from layers, each value's source kept.

A run's settings come in layers, a later one winning: the defaults of the command, a TOML run
file ([model] and [train] tables), then the command line (each --set, each dedicated flag).
`resolve_run_config` merges them once, applies the one rule below, validates, and remembers
where every value came from, so the log can say it:

    run = resolve_run_config([Layer("configs/laptop.toml", *file_tables),
                              Layer("--max-minutes", train={"max_minutes": 3})])
    run.model, run.train        # ModelConfig, TrainConfig
    run.log_lines()             # ["model.preset = 'laptop' (configs/laptop.toml)", ...,
                                #  "train.max_minutes = 3 (--max-minutes)"]

The rule (own data validates on itself), written into the result as a layer of its own, so it
is logged like any other source: when the last layer that names `data` names no validation set,
a held-out share of that data (`HOLDOUT_FRACTION`) chooses best/, not the shipped suite's valid
split; and unless that layer names `fresh_per_task` too, that data is what trains, not a fresh
draw. `load_run_config` is the same for Python users: a file, overrides, defaults.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from minitune.config import OBSOLETE, PRESETS, ModelConfig, TrainConfig, suggest
from minitune.paths import config_file, shipped_root

# Own data without its own validation file: this share of it (at least train_data.HOLDOUT_MIN
# examples, drawn with the run's seed) chooses best/, not the shipped suite's valid split.
HOLDOUT_FRACTION = 0.05


@dataclass
class Layer:
    """Settings from one source, named as the log names it: "configs/laptop.toml", "--set
    train.lr=5e-4", "--max-minutes", "rule: ...". `model` may hold `preset`. `kind` says what
    the source is: "default" (a command's own), "file", "flag" (the command line), "command"
    (what a command sets itself, e.g. a pipeline phase's folder) or "rule"."""

    where: str
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    kind: str = "flag"


@dataclass
class RunConfig:
    """A resolved run: the two configs and, for every value a layer set, the layer it came from
    ("train.lr" -> the layer of configs/laptop.toml); a value no layer set is its default."""

    model: ModelConfig
    train: TrainConfig
    sources: dict[str, Layer]
    preset: str | None = "laptop"  # None: a resumed run's saved model

    def log_lines(self) -> list[str]:
        """One line per value that differs from its default (or that the command line or a rule
        set), with its source, model first; e.g. "model.preset = 'laptop'
        (configs/laptop.toml)", "train.lr = 0.0025 (configs/laptop.toml)", "train.max_minutes =
        3 (--max-minutes)". A model that comes from train.init is that checkpoint's."""

        def where(key: str) -> str:
            source = self.sources.get(key)
            return source.where if source else "default"

        lines, tables = [], [("train", self.train.to_dict(), TrainConfig().to_dict())]
        if self.train.init:
            lines.append(f"model: the model of {self.train.init} (its config.json)")
        else:
            lines.append(f"model.preset = {self.preset!r} ({where('model.preset')})")
            preset = ModelConfig.preset(self.preset).to_dict()
            tables.insert(0, ("model", self.model.to_dict(), preset))
        for section, values, defaults in tables:
            for key, value in values.items():
                source = self.sources.get(f"{section}.{key}")
                named = source is not None and source.kind in ("flag", "rule")
                if value != defaults.get(key) or named:
                    lines.append(f"{section}.{key} = {value!r} ({where(f'{section}.{key}')})")
        return lines


def read_run_file(path: str | Path) -> tuple[Path, dict[str, dict]]:
    """The [model] and [train] tables of a TOML run file (a path, or a shipped config's name)."""
    path = config_file(path)  # a path, or a shipped config by name ("laptop", "finetune")
    try:
        loaded = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"{path}: cannot read the config file: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None
    for section in loaded:
        if section not in ("model", "train"):
            raise ValueError(f"{path}: unknown table [{section}]; allowed: [model], [train]")
    return path, {"model": dict(loaded.get("model", {})), "train": dict(loaded.get("train", {}))}


def file_layer(name: str | Path) -> Layer:
    """A run file as a layer, named as the log shows it: configs/laptop.toml for a shipped
    config (from any folder), else the path as given."""
    path, tables = read_run_file(name)
    root, whole = shipped_root(), path.resolve()
    shown = str(whole.relative_to(root)) if root and whole.is_relative_to(root) else str(name)
    return Layer(shown, tables["model"], tables["train"], kind="file")


def own_data_rules(layers: list[Layer]) -> list[Layer]:
    """The rule layers for `layers`: own data validates on itself (see the module docstring;
    the command line's layers count as one source). Example: [laptop.toml, --data my.jsonl]
    -> valid_data none, valid_fraction 0.05 and fresh_per_task 0, each "rule: --data names
    ..."; [laptop.toml] alone, or with --data and --valid-data -> none."""
    train = {k: v for layer in layers for k, v in layer.train.items()}
    setters = [i for i, layer in enumerate(layers) if "data" in layer.train]
    if not setters or train.get("objective", "instruct") != "instruct":
        return []
    first = setters[-1]  # the command line's layers (--set, flags) count as one source
    while layers[first].kind == "flag" and first > 0 and layers[first - 1].kind == "flag":
        first -= 1
    later, where = layers[first:], layers[setters[-1]].where
    rules = []
    if not any({"valid_data", "valid_fraction"} & layer.train.keys() for layer in later):
        rules.append(
            Layer(
                f"rule: {where} names training data and no validation set, so a "
                f"held-out {HOLDOUT_FRACTION:.0%} of it chooses best/",
                train={"valid_data": None, "valid_fraction": HOLDOUT_FRACTION},
                kind="rule",
            )
        )
    if train.get("fresh_per_task") and not any("fresh_per_task" in layer.train for layer in later):
        rules.append(
            Layer(
                f"rule: {where} names the training data, so it trains, not a fresh draw",
                train={"fresh_per_task": 0},
                kind="rule",
            )
        )
    return rules


def _check_keys(section: str, values: dict, cls) -> None:
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in values:
        if key not in known:
            hint = suggest(key, known, cutoff=0.5) or f"; known keys: {', '.join(known)}"
            if cls is ModelConfig and key in OBSOLETE:
                hint = "; fused kernels are train.fused_kernels (the flag --fused-kernels)"
            raise ValueError(f"[{section}] unknown key {key!r}{hint}")


def resolve_run_config(layers: list[Layer]) -> RunConfig:
    """Merge `layers` (later wins), add the rule layers, validate: the run's one config.
    Raises ValueError naming an unknown key or a bad value."""
    layers = [*layers, *own_data_rules(layers)]
    model_values: dict = {}
    train_values: dict = {}
    sources: dict[str, Layer] = {}
    for layer in layers:
        for section, values, merged in (
            ("model", layer.model, model_values),
            ("train", layer.train, train_values),
        ):
            merged.update(values)
            sources.update({f"{section}.{key}": layer for key in values})
    preset = model_values.pop("preset", "laptop")
    _check_keys("model", model_values, ModelConfig)
    _check_keys("train", train_values, TrainConfig)
    model_cfg = ModelConfig.preset(preset, **model_values)
    return RunConfig(model_cfg, TrainConfig(**train_values), sources, preset)


def load_run_config(
    path: str | Path | None,
    overrides: dict[str, dict] | None = None,
    defaults: dict[str, dict] | None = None,
) -> tuple[ModelConfig, TrainConfig]:
    """Read a TOML run file ([model] and [train] tables), apply overrides, validate.

    [model] takes `preset` plus any ModelConfig field; [train] any TrainConfig field.
    `overrides` has the same shape, e.g. {"train": {"lr": 3e-4}, "model": {"dropout": 0.0}};
    `defaults` too, applied under the file. `path` may name a shipped config ("tiny").
    Training on other data than the file's (or than the default) without naming a validation
    set holds out a share of it (`HOLDOUT_FRACTION`): `resolve_run_config`'s rule.
    """
    layers = [Layer("defaults", **(defaults or {}), kind="default")]
    if path is not None:
        layers.append(file_layer(path))
    layers.append(Layer("overrides", **(overrides or {})))
    run = resolve_run_config(layers)
    return run.model, run.train


def training_data_line(cfg: TrainConfig) -> str:
    """Where the run's training examples come from, in one line, e.g. "training data: 135,000
    fresh examples drawn from the suite's generators (fresh_per_task = 5000, 27 tasks) into
    OUT/fresh_train.jsonl; train.data is not read"."""
    if cfg.objective == "span":
        return f"training data: span corruption of {', '.join(cfg.data)}"
    if not cfg.fresh_per_task:
        return f"training data: {', '.join(cfg.data)}"
    from minitune.data.suite.tasks import fresh_families

    n_tasks = len(fresh_families(cfg.fresh_shared))
    shared = ", the training-only families too (fresh_shared)" if cfg.fresh_shared else ""
    where = Path(cfg.out) / "fresh_train.jsonl"
    return (
        f"training data: {cfg.fresh_per_task * n_tasks:,} fresh examples drawn from the "
        f"suite's generators (fresh_per_task = {cfg.fresh_per_task}, {n_tasks} tasks"
        f"{shared}) into {where}; train.data is not read"
    )


# Settings that a resumed run may change without leaving the path of an uninterrupted run:
# when and how often to stop, log, evaluate and save, and where the work happens.
RESUME_SAFE = {
    "max_minutes",
    "save_every",
    "log_every",
    "eval_every",
    "device",
    "threads",
    "compile",
    "activation_checkpointing",
    "on_nonfinite",
    "out",
    "tf32",
    "report_to",
    "adamw_impl",
    "fused_kernels",
}


def saved_run_config(
    info: dict, overrides: dict[str, dict] | None = None
) -> tuple[ModelConfig, TrainConfig]:
    """The config a checkpoint's config.json was trained with, with `overrides` on top (the
    same shape as load_run_config's; a [model] preset is expanded first)."""
    overrides = overrides or {}
    model_values = dict(info["model"])
    requested = dict(overrides.get("model", {}))
    if "preset" in requested:
        requested = {**PRESETS.get(requested.pop("preset"), {}), **requested}
    _check_keys("model", requested, ModelConfig)
    model_values.update(requested)
    train_values = dict(info["train"])
    known = {f.name for f in dataclasses.fields(TrainConfig) if f.init}
    train_values = {k: v for k, v in train_values.items() if k in known}  # older versions' keys
    _check_keys("train", overrides.get("train", {}), TrainConfig)
    train_values.update(overrides.get("train", {}))
    return ModelConfig.from_dict(model_values), TrainConfig(**train_values)


def config_changes(
    before: tuple[ModelConfig, TrainConfig], after: tuple[ModelConfig, TrainConfig]
) -> list[tuple[str, object, object]]:
    """[(section.key, old, new)] for every setting that differs, model first."""
    changes = []
    for section, old, new in (
        ("model", *[c.to_dict() for c in (before[0], after[0])]),
        ("train", before[1].to_dict(), after[1].to_dict()),
    ):
        changes += [(f"{section}.{k}", old.get(k), v) for k, v in new.items() if old.get(k) != v]
    return changes


def to_toml(model_cfg: ModelConfig, cfg: TrainConfig) -> str:
    """The resolved run config as a TOML run file (unset values as comments; `data` too while
    fresh examples train instead), e.g.

    [model]
    vocab_size = 3000
    ...
    [train]
    valid_data = "/home/me/minitune/data/valid.jsonl"
    """

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = []
    tables = [("model", model_cfg.to_dict()), ("train", cfg.to_dict())]
    if cfg.init:  # the model is the checkpoint's own
        lines += [f"# [model]: the model of {cfg.init} (its config.json)", ""]
        tables = tables[1:]
    unread = {"data"} if cfg.objective == "instruct" and cfg.fresh_per_task else set()
    for name, values in tables:
        lines.append(f"[{name}]")
        for k, v in values.items():
            if v is None:
                lines.append(f"# {k} (not set)")
            elif name == "train" and k in unread:
                lines.append(f"# {k} = {value(v)} (not read: fresh_per_task draws the data)")
            else:
                lines.append(f"{k} = {value(v)}")
        lines.append("")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[str, str, object]:
    """ "train.lr=3e-4" -> ("train", "lr", 0.0003). Values are TOML (strings may omit quotes)."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or section not in ("model", "train"):
        raise ValueError(f"override {text!r} must look like model.KEY=VALUE or train.KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: a string
    return section, name.strip(), value
