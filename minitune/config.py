"""Settings: the model (`ModelConfig`, with named presets), a training run (`TrainConfig`), and a
run's config in one pass: its sources (a TOML file, each --set, each flag) merged in order.

    cfg = ModelConfig.preset("tiny", vocab_size=64)              # a preset, with an override
    model_cfg, cfg = load_run_config("laptop", {"train": {"lr": 5e-4}})   # file, then overrides

A field's type is what it accepts (a Literal lists the names, `Positive` etc. a range), checked
at construction. The layer variants are names in layers/registry.py, checked where the model is
built: this file imports no layer and no torch."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from minitune.run.paths import config_file, resolve_file, shipped_root

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Keys that checkpoints of earlier versions saved in config.json and that no longer describe a
# model: left out when one is read (which kernels run is chosen on the live model).
OBSOLETE = ("impl", "attention_impl")

# Numbers with a range, checked with the type (the rule rides along in Annotated)
Positive = Annotated[int, ">= 1"]
Count = Annotated[int, ">= 0"]
Rate = Annotated[float, "> 0"]
Amount = Annotated[float, ">= 0"]
Share = Annotated[float, "in [0, 1)"]
_RANGES = {">= 1": lambda v: v >= 1, ">= 0": lambda v: v >= 0, "> 0": lambda v: v > 0}
_RANGES |= {"in [0, 1)": lambda v: 0 <= v < 1, "in [0, 1]": lambda v: 0 <= v <= 1}
_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


class ConfigError(ValueError):
    """A setting the user can fix: the command line prints it in one line, no traceback."""


def suggest(value, allowed, cutoff: float = 0.6) -> str:
    """A hint such as "; did you mean 'adamw'?" when `value` nearly matches an allowed name:
    one that starts the value or that the value starts ("lrate" -> 'lr'), else the closest."""
    value, allowed = str(value), [str(a) for a in allowed]
    prefixes = [a for a in allowed if len(a) > 1 and (value.startswith(a) or a.startswith(value))]
    close = sorted(prefixes, key=len, reverse=True)[:1] or difflib.get_close_matches(
        value, allowed, n=1, cutoff=cutoff
    )
    return f"; did you mean {close[0]!r}?" if close else ""


def _check(where: str, value, hint) -> None:
    """Raise ConfigError unless `value` fits the type `hint`: int, float, str or bool, a Literal
    of names, a list of one of those, an Annotated range, any of them `| None`."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return
        hint, args = args[0], typing.get_args(args[0])
    if typing.get_origin(hint) is Annotated:
        _check(where, value, args[0])
        if not _RANGES[args[1]](value):
            raise ConfigError(f"{where} must be {args[1]}, got {value!r}")
    elif typing.get_origin(hint) is Literal:
        if value not in args:
            allowed = f"{', '.join(map(repr, args))}{suggest(value, args)}"
            raise ConfigError(f"{where}={value!r} is not one of: {allowed}")
    elif typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r} ({type(value).__name__})")
        for item in value:
            _check(where, item, args[0])
    else:  # int, float (an int will do), str, bool; a bool is no number here
        kind = (int, float) if hint is float else hint
        if isinstance(value, bool) != (hint is bool) or not isinstance(value, kind):
            what = _KINDS[hint]
            raise ConfigError(f"{where} must be {what}, got {value!r} ({type(value).__name__})")


@functools.cache
def _type_hints(cls) -> dict:
    """A dataclass's field types, evaluated once (they are strings under `annotations`)."""
    return typing.get_type_hints(cls, include_extras=True)


def _check_fields(config) -> None:
    """Check each field a user sets against its type (derived fields are set afterwards)."""
    hints = _type_hints(type(config))
    for f in dataclasses.fields(config):
        if f.init:
            _check(f"{type(config).__name__}.{f.name}", getattr(config, f.name), hints[f.name])


@dataclass
class ModelConfig:
    """Shape and variants of a `Seq2SeqTransformer`. Defaults give a small T5-v1.1-style model."""

    vocab_size: Positive = 8000  # number of token ids (the tokenizer's vocabulary, sentinels too)
    d_model: Positive = 256  # width C of the residual stream
    n_heads: Positive = 4  # attention heads H per attention layer
    d_head: Positive | None = None  # width D of one head; None means d_model // n_heads
    d_ff: Positive = 512  # hidden width of the feed-forward layers
    n_encoder_layers: Count = 4  # encoder blocks
    n_decoder_layers: Count = 4  # decoder blocks
    dropout: Share = 0.0  # dropout on embeddings, attention weights, sub-layer outputs, FF hidden

    attention: str = "multi-head"  # attention variant, a name in layers/registry.py
    n_kv_heads: Positive | None = None  # key/value heads: None = n_heads; 1 = multi-query
    position: str = "relative"  # "relative" (T5), "sinusoidal", "learned", "rotary", "alibi"...
    max_position: Positive = 512  # longest sequence for "learned" positions
    relative_buckets: int = 32  # T5 relative bias: number of distance buckets
    relative_max_distance: int = 128  # T5 relative bias: distances beyond share the last bucket
    rotary_base: float = 10000.0  # RoPE: angle of pair i turns at base^(-2i/D) radians per token

    ffn: str = "gated-gelu"  # feed-forward: "relu", "gelu", "gated-gelu" (T5 v1.1) or "swiglu"
    norm: str = "rms"  # "rms" (RMSNorm, T5) or "layer" (LayerNorm)
    norm_position: Literal["pre", "post"] = "pre"  # pre: x + f(norm(x)) (T5); post: norm(x + f(x))
    norm_eps: Rate = 1e-6  # epsilon inside the norm's square root
    bias: bool = False  # biases in linear layers and LayerNorm (T5 has none)
    scale_attention: bool = True  # multiply scores by 1/sqrt(D); T5 folds it into its init: False
    tie_embeddings: bool = True  # the output projection is the input embedding matrix
    scale_output: bool | None = None  # × d_model^-0.5 before the head (T5 v1.0); None: if tied

    copy_head: bool = False  # pointer-generator output: may copy source tokens (layers/copy.py)

    pad_id: Count = 0  # padding id; also the decoder's start token, as in T5
    eos_id: Count = 1  # end-of-sequence id
    decoder_start_id: Count = 0  # first decoder input token

    # Derived in __post_init__ (not set by hand).
    inner_dim: int = field(init=False)  # H * D: width of the query and output projections
    kv_dim: int = field(init=False)  # n_kv_heads * D: width of the key and value projections

    def __post_init__(self) -> None:
        self.validate()
        self.d_head = self.d_head or self.d_model // self.n_heads
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        if self.scale_output is None:  # T5 v1.0 scales its tied head, v1.1 its own head not
            self.scale_output = self.tie_embeddings
        self.inner_dim = self.n_heads * self.d_head
        self.kv_dim = self.n_kv_heads * self.d_head

    def validate(self) -> None:
        """Raise `ConfigError` naming the field, its value and what is allowed."""
        _check_fields(self)
        if self.d_head is None and self.d_model % self.n_heads != 0:
            raise ConfigError(
                f"ModelConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "choose n_heads that divides d_model, or set d_head"
            )
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"ModelConfig.n_kv_heads must divide n_heads={self.n_heads} (1 = multi-query), "
                f"got {self.n_kv_heads!r}"
            )
        d_head = self.d_head or self.d_model // self.n_heads
        if self.position == "rotary" and d_head % 2:
            raise ConfigError(f"ModelConfig.position='rotary' needs an even d_head, got {d_head}")
        buckets, farthest = self.relative_buckets, self.relative_max_distance
        if self.position.startswith("relative") and (buckets < 4 or buckets % 2):
            raise ConfigError(f"ModelConfig.relative_buckets must be even and >= 4, got {buckets}")
        if self.position.startswith("relative") and farthest <= buckets // 4:
            raise ConfigError(
                f"ModelConfig.relative_max_distance={farthest} must exceed relative_buckets // 4"
            )
        for name in ("pad_id", "eos_id", "decoder_start_id"):
            if getattr(self, name) >= self.vocab_size:
                raise ConfigError(f"ModelConfig.{name}={getattr(self, name)} is outside the vocab")

    def to_dict(self) -> dict:
        """The fields a user sets (derived ones left out), for saving next to weights."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """Build from `to_dict()` output; an unknown key is an error naming it (the OBSOLETE
        ones that older checkpoints saved are left out)."""
        values = {k: v for k, v in dict(values).items() if k not in OBSOLETE}
        _check_keys("model", values, cls)
        return cls(**values)

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A named preset (see `PRESETS`), with any field overridden by keyword."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        _check_keys("model", overrides, cls)
        return cls(**{**PRESETS[name], **overrides})


# The laptop shape: 3.75M parameters that train on a 2-core CPU in minutes; no dropout (minutes-
# long CPU runs underfit rather than overfit); vocab_size: the shipped tokenizer's.
_LAPTOP = dict(vocab_size=3000, d_model=192, n_heads=4, d_ff=512, n_encoder_layers=3)
_LAPTOP |= dict(n_decoder_layers=3, dropout=0.0)
_T5 = dict(vocab_size=32128, d_model=512, d_head=64, dropout=0.1, scale_attention=False)

# Named presets. "tiny" is for tests; "laptop" trains on a 2-core CPU in minutes; the T5 ones have
# the shapes of Google's t5-small (v1.0: ReLU, tied head) and t5-v1_1-small / flan-t5-small
# (gated-GELU, untied head), so their checkpoints fit.
PRESETS: dict[str, dict] = {
    "tiny": dict(vocab_size=128, d_model=32, n_heads=4, d_ff=64, n_encoder_layers=2)
    | dict(n_decoder_layers=2, relative_buckets=8, relative_max_distance=16),
    # with a copy head: copies names and numbers from the prompt (benchmarks/learning.md)
    "laptop": dict(_LAPTOP, copy_head=True),
    # the same without it: a T5 architecture (`minitune export` writes it as a T5 folder);
    # train it with: minitune pipeline --set model.preset=laptop-t5
    "laptop-t5": dict(_LAPTOP),
    "t5-small": dict(_T5, n_heads=8, d_ff=2048, n_encoder_layers=6, n_decoder_layers=6)
    | dict(ffn="relu", tie_embeddings=True),
    "t5-base": dict(_T5, d_model=768, n_heads=12, d_ff=3072, n_encoder_layers=12)
    | dict(n_decoder_layers=12, ffn="relu", tie_embeddings=True),
    "t5-v1_1-small": dict(_T5, n_heads=6, d_ff=1024, n_encoder_layers=8, n_decoder_layers=8)
    | dict(ffn="gated-gelu", tie_embeddings=False),
}


@dataclass
class TrainConfig:
    """One training run. Defaults train the laptop preset on the shipped suite on a CPU."""

    objective: Literal["instruct", "span"] = "instruct"  # instruction tuning or span corruption
    data: list[str] = field(default_factory=lambda: ["data/train.jsonl"])  # training files
    valid_data: str | None = None  # evaluated every eval_every steps (choosing best/)
    valid_fraction: Share = 0.05  # instruction data with no valid_data: this seeded share of it
    # (at least 32 examples, at most half) is held out to validate instead; 0: no validation
    fresh_per_task: Count = 0  # > 0: the training data is this many fresh examples per task of
    # the shipped suite, drawn from its generators before training (never an evaluation
    # example) into OUT/fresh_train.jsonl, and `data` is not read (the log and --print-config
    # say so; see minitune/suite/tasks.py: write_training_set)
    fresh_shared: bool = False  # with fresh_per_task: also the training-only families over the
    # suite's inputs, told apart by their instruction alone (minitune/suite/families_shared.py)
    fresh_grammar: Share = 0.0  # with fresh_per_task: this share of examples asked with a phrasing
    # generated from a grammar (dozens per task, none near a held-out one; .../suite/phrasings.py)
    tokenizer: str | None = None  # SentencePiece model; None: --init's own, else the shipped one
    max_source_length: Positive = 128  # longer prompts are truncated (and counted)
    max_target_length: Positive = 64  # longer answers are truncated (and counted)
    spell_prompts: Share = 0.0  # training prompts: spell this share of pieces letter by letter
    # (subword regularisation: the model sees the letters inside words; answers, validation and
    # inference are never spelled; drawn once per run from `seed`)
    # span pretraining: this share of chunks (of max_target_length - 1 tokens) are denoising
    # examples whose target is the whole chunk, not only its missing spans: they teach copying
    copy_fraction: Annotated[float, "in [0, 1]"] = 0.0
    init: str | None = None  # start from this checkpoint folder instead of random weights

    lora_rank: Count = 0  # > 0: freeze the model (from init) and train LoRA adapters of this rank
    lora_alpha: float | None = None  # LoRA update scale α/r; None: α = 2·rank
    lora_targets: list[Literal["q", "k", "v", "o"]] = field(default_factory=lambda: ["q", "v"])
    lora_where: list[Literal["encoder", "decoder", "cross"]] = field(
        default_factory=lambda: ["encoder", "decoder", "cross"]
    )  # which attention layers get adapters (lora_targets: which of their projections)
    lora_dropout: Amount = 0.0  # dropout on the adapters' input

    optimizer: Literal["adamw", "adafactor", "muon"] = "adamw"  # muon: Muon on hidden matrices
    muon_lr: Rate = 0.02  # Muon's peak learning rate (its other parameters: AdamW at lr)
    adamw_impl: Literal["auto", "for-loop", "foreach", "fused"] = "auto"  # AdamW's kernel: "auto"
    # (PyTorch's choice), "for-loop" (one parameter at a time), "foreach" (all at once),
    # "fused" (one kernel); the same update
    lr: Rate = 1e-3  # peak learning rate
    weight_decay: Amount = 0.01  # AdamW's and Muon's; never on norms, biases, embeddings
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.98  # AdamW's second-moment decay
    schedule: Literal["cosine", "inverse_sqrt", "constant"] = "cosine"  # cosine: to 10% of lr
    warmup_steps: Count = 100  # linear warm-up from 0 to lr
    batch_size: Positive = 32  # examples per micro-batch
    mix_tasks_every: Count = 0  # > 0: every N steps, draw tasks by their loss on a held-out slice
    # of the training data (minitune/data/mixing.py) instead of uniformly; instruction data only
    length_bucketing: bool = False  # batch similar lengths: less padding, but same-task batches
    bucket_batches: Positive = 50  # with length_bucketing: batches sorted together (small: mixed)
    packing: bool = False  # several examples per row, each attending only to itself
    # (minitune/data/packing.py): rows of fixed lengths, nearly no padding; batch_size then
    # counts rows, and length_bucketing does not apply
    packed_source_length: Count = 0  # with packing: source positions per row (0: max_source_length)
    packed_target_length: Count = 0  # with packing: target positions per row (0: max_target_length)
    grad_accum: Positive = 1  # micro-batches per optimizer step
    clip_grad: Amount = 1.0  # max global gradient norm; 0 = no clipping
    label_smoothing: Amount = 0.0  # ε of the smoothed target distribution

    max_steps: Positive = 2000  # optimizer steps (the schedule's length)
    max_minutes: Rate | None = None  # wall time: the cosine decays over it too; stops the run
    eval_every: Positive = 500  # steps between validation runs (and best-checkpoint choices)
    score_valid: Count = 0  # at each validation run, also decode this many validation examples
    # (greedy, spread over the file) and log their exact match: the report's "exact match against
    # minutes". Its time is left out of max_minutes' clock (0: none; the pipeline sets 64)
    save_every: Positive = 100  # steps between saves of last/ (what --resume and a crash use)
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss: stop (keep last/) or skip
    log_every: Positive = 10  # steps between lines of metrics.jsonl
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"  # bf16: autocast; fp16: CUDA +
    # scaler; auto: bf16 where it is faster (CUDA with bf16, or a CPU with AVX512-BF16/AMX whose
    # bf16 matmuls time faster than fp32 at start, device.bf16_speedup), else fp32
    device: str = "auto"  # "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "mps"
    fsdp: bool = False  # under torchrun: shard weights, gradients, optimizer state (else DDP)
    compile: bool = False  # torch.compile the model (slow start, faster steps; mostly on GPUs)
    activation_checkpointing: bool = False  # recompute each layer in backward: less memory
    fused_kernels: Literal["auto", "on", "off"] = "auto"  # attention's and the feed-forward's
    # fused branches (SDPA, stacked projections): on, off (the explicit arithmetic; the same
    # numbers) or auto: on with CUDA, off elsewhere (slower on a 2-core CPU: benchmarks/README.md)
    tf32: bool = True  # CUDA: TensorFloat-32 matmuls for float32 (much faster, 10-bit mantissa)
    threads: Positive | None = None  # CPU threads for torch (None: torch's default)
    report_to: list[Literal["tensorboard"]] = field(default_factory=list)  # also log there
    seed: int = 0  # seeds Python, torch (and CUDA); recorded in every checkpoint
    out: str = "runs/laptop"  # run folder: checkpoints, metrics.jsonl, loss.png

    def __post_init__(self) -> None:
        self.data = [self.data] if isinstance(self.data, str) else self.data
        for name in ("valid_data", "tokenizer", "init"):  # `--set train.valid_data=''`: none
            if getattr(self, name) == "":
                setattr(self, name, None)
        _check_fields(self)
        # the shipped files are found from any folder (minitune/run/paths.py); paths are saved whole
        self.data = [resolve_file(p) for p in self.data]
        for name in ("valid_data", "tokenizer", "init"):
            setattr(self, name, getattr(self, name) and resolve_file(getattr(self, name)))
        for name in ("packed_source_length", "packed_target_length"):
            value, least = getattr(self, name), name.replace("packed", "max")
            if value and value < getattr(self, least):
                raise ConfigError(
                    f"TrainConfig.{name} must be 0 (= {least}) or at least {least} = "
                    f"{getattr(self, least)}, so that every example fits in a row; got {value!r}"
                )
        if self.packing and self.mix_tasks_every:
            raise ConfigError(
                "TrainConfig: packing with mix_tasks_every is not supported (the mixer draws "
                "padded batches); set one of them off"
            )
        if self.fsdp and self.lora_rank:
            raise ConfigError("TrainConfig: fsdp with lora_rank is not supported; use DDP for LoRA")
        if self.score_valid and self.fsdp:
            raise ConfigError(
                "TrainConfig: score_valid decodes on the first process alone, which under fsdp "
                "holds only a shard of the model; set score_valid = 0 (or use DDP)"
            )
        if self.optimizer == "muon" and self.fsdp:
            raise ConfigError(
                "TrainConfig: optimizer='muon' does not work with fsdp (its matrices are sharded "
                "across processes); use adamw, or DDP (fsdp = false)"
            )
        if self.optimizer == "muon" and self.lora_rank:
            raise ConfigError(
                "TrainConfig: optimizer='muon' does not work with lora_rank (LoRA trains thin "
                "adapters, not the model's matrices); use adamw"
            )
        if self.lora_rank and not (self.lora_targets and self.lora_where):
            raise ConfigError("TrainConfig: LoRA needs lora_targets and lora_where (not empty)")
        if self.lora_rank and not self.init:
            raise ConfigError(
                "TrainConfig.lora_rank > 0 adapts a trained model: give train.init "
                "(--init DIR, a minitune checkpoint or a T5 folder)"
            )

    def lora_settings(self):
        """The LoRA settings of this run (`minitune.lora.LoRASettings`)."""
        from minitune.lora import LoRASettings

        alpha = self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_rank
        targets, where = tuple(self.lora_targets), tuple(self.lora_where)
        return LoRASettings(self.lora_rank, alpha, targets, where, self.lora_dropout)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- A run's config in one pass: its sources in order (a later one wins), then the dataclasses


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


def _check_keys(section: str, values: dict, cls) -> None:
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in [key for key in values if key not in known]:
        hint = suggest(key, known, cutoff=0.5) or f"; known keys: {', '.join(known)}"
        if key in OBSOLETE:
            hint = "; fused kernels are train.fused_kernels (the flag --fused-kernels)"
        raise ConfigError(f"[{section}] unknown key {key!r}{hint}")


def resolve(sources: list[Source]) -> RunConfig:
    """Merge `sources` (a later one wins) into the run's ModelConfig and TrainConfig, keeping
    where each value came from. Raises ConfigError naming an unknown key or a bad value."""
    merged: dict[str, dict] = {"model": {}, "train": {}}
    where = {"model.preset": "default"}
    for source, section in [(s, section) for s in sources for section in ("model", "train")]:
        merged[section].update(getattr(source, section))
        where.update({f"{section}.{key}": source.where for key in getattr(source, section)})
    preset = merged["model"].pop("preset", "laptop")
    _check_keys("model", merged["model"], ModelConfig)
    _check_keys("train", merged["train"], TrainConfig)
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
