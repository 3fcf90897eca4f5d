"""Settings a learner can read: the model (`ModelConfig`; named shapes in `PRESETS`), a training
run (`TrainConfig`), and their checks. A run's settings in one pass (a TOML file, --set, flags:
`load_run_config`), where each came from and the resume rules: see minitune/run/settings.py.

    cfg = ModelConfig.preset("tiny", vocab_size=64)   # a preset, with a field overridden
    train_cfg = TrainConfig(lr=5e-4, max_steps=200)   # the other fields at their defaults

`validate()` checks each field as a config is made: its kind against its plain type hint, then
its range and the fields it must agree with; a bad value is a one-line `ConfigError`. The layer
variants are names in layers/registry.py, checked where the model is built (no layer, no torch)."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Literal

from minitune.run.paths import resolve_file

# Keys that checkpoints of earlier versions saved in config.json and that no longer describe a
# model: left out when one is read (which kernels run is chosen on the live model).
OBSOLETE = ("impl", "attention_impl")

# How an error names a kind, and the ranges a number may have: the words an error shows, the test.
_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_RANGES = {">= 1": lambda v: v >= 1, ">= 0": lambda v: v >= 0, "> 0": lambda v: v > 0}
_RANGES |= {"in [0, 1)": lambda v: 0 <= v < 1, "in [0, 1]": lambda v: 0 <= v <= 1}


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


def check_kind(where: str, value, kind) -> None:
    """Raise ConfigError unless `value` is of the plain type `kind`: int, float (an int will do),
    str, bool (never a number), a Literal's names, a list of one of those; any of them `| None`.
    ("TrainConfig.lr", "0.1", float) -> "TrainConfig.lr must be a number, got '0.1' (str)"."""
    got = f"{value!r} ({type(value).__name__})"
    if type(None) in typing.get_args(kind):  # `X | None`: None, or an X
        if value is None:
            return
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {got}")
        for item in value:
            check_kind(where, item, typing.get_args(kind)[0])
    elif typing.get_origin(kind) is Literal:
        names = typing.get_args(kind)
        if value not in names:
            allowed = f"{', '.join(map(repr, names))}{suggest(value, names)}"
            raise ConfigError(f"{where}={value!r} is not one of: {allowed}")
    elif isinstance(value, bool) != (kind is bool) or not isinstance(
        value, (int, float) if kind is float else kind
    ):
        raise ConfigError(f"{where} must be {_KINDS[kind]}, got {got}")


def check_fields(config, ranges: dict[str, str]) -> None:
    """`check_kind` on each field a user sets, then the ranges: `ranges` maps one (a key of
    _RANGES) to the fields that must be in it, {">= 1": "d_model n_heads"}; None (unset) passes."""
    owner = type(config).__name__
    kinds = typing.get_type_hints(type(config))  # the hints are strings (`annotations`)
    for f in [f for f in dataclasses.fields(config) if f.init]:  # derived fields come afterwards
        check_kind(f"{owner}.{f.name}", getattr(config, f.name), kinds[f.name])
    for allowed, names in ranges.items():
        for name in names.split():
            value = getattr(config, name)
            if value is not None and not _RANGES[allowed](value):
                raise ConfigError(f"{owner}.{name} must be {allowed}, got {value!r}")


def check_keys(section: str, values: dict, cls) -> None:
    """Raise ConfigError naming the first key of `values` that is not a field of `cls`, with a
    "did you mean" (the OBSOLETE keys of older checkpoints: where their setting went)."""
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in [key for key in values if key not in known]:
        hint = suggest(key, known, cutoff=0.5) or f"; known keys: {', '.join(known)}"
        if key in OBSOLETE:
            hint = "; fused kernels are train.fused_kernels (the flag --fused-kernels)"
        raise ConfigError(f"[{section}] unknown key {key!r}{hint}")


@dataclass
class ModelConfig:
    """Shape and variants of a `Seq2SeqTransformer`. Defaults give a small T5-v1.1-style model."""

    vocab_size: int = 8000  # number of token ids (the tokenizer's vocabulary, sentinels too)
    d_model: int = 256  # width C of the residual stream
    n_heads: int = 4  # attention heads H per attention layer
    d_head: int | None = None  # width D of one head; None means d_model // n_heads
    d_ff: int = 512  # hidden width of the feed-forward layers
    n_encoder_layers: int = 4  # encoder blocks
    n_decoder_layers: int = 4  # decoder blocks
    dropout: float = 0.0  # dropout on embeddings, attention weights, sub-layer outputs, FF hidden

    attention: str = "multi-head"  # attention variant, a name in layers/registry.py
    n_kv_heads: int | None = None  # key/value heads: None = n_heads; 1 = multi-query
    position: str = "relative"  # "relative" (T5), "sinusoidal", "learned", "rotary", "alibi"...
    max_position: int = 512  # longest sequence for "learned" positions
    relative_buckets: int = 32  # T5 relative bias: number of distance buckets
    relative_max_distance: int = 128  # T5 relative bias: distances beyond share the last bucket
    rotary_base: float = 10000.0  # RoPE: angle of pair i turns at base^(-2i/D) radians per token

    ffn: str = "gated-gelu"  # feed-forward: "relu", "gelu", "gated-gelu" (T5 v1.1) or "swiglu"
    norm: str = "rms"  # "rms" (RMSNorm, T5) or "layer" (LayerNorm)
    norm_position: Literal["pre", "post"] = "pre"  # pre: x + f(norm(x)) (T5); post: norm(x + f(x))
    norm_eps: float = 1e-6  # epsilon inside the norm's square root
    bias: bool = False  # biases in linear layers and LayerNorm (T5 has none)
    scale_attention: bool = True  # multiply scores by 1/sqrt(D); T5 folds it into its init: False
    tie_embeddings: bool = True  # the output projection is the input embedding matrix
    scale_output: bool | None = None  # × d_model^-0.5 before the head (T5 v1.0); None: if tied
    copy_head: bool = False  # pointer-generator output: may copy source tokens (layers/copy.py)

    pad_id: int = 0  # padding id; also the decoder's start token, as in T5
    eos_id: int = 1  # end-of-sequence id
    decoder_start_id: int = 0  # first decoder input token

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
        ranges = {
            ">= 1": "vocab_size d_model n_heads d_head d_ff n_kv_heads max_position",
            ">= 0": "n_encoder_layers n_decoder_layers pad_id eos_id decoder_start_id",
            "> 0": "norm_eps",
            "in [0, 1)": "dropout",
        }
        check_fields(self, ranges)  # each field's kind, then these ranges
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
        check_keys("model", values, cls)
        return cls(**values)

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A named preset (see `PRESETS`), with any field overridden by keyword."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        check_keys("model", overrides, cls)
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
    valid_fraction: float = 0.05  # no valid_data: hold out this seeded share (32 to half); 0: none
    fresh_per_task: int = 0  # > 0: train on this many fresh suite examples per task, not on data
    fresh_shared: bool = False  # with fresh_per_task: the training-only families too (suite/)
    fresh_grammar: float = 0.0  # with fresh_per_task: share asked with a generated phrasing
    tokenizer: str | None = None  # SentencePiece model; None: --init's own, else the shipped one
    max_source_length: int = 128  # longer prompts are truncated (and counted)
    max_target_length: int = 64  # longer answers are truncated (and counted)
    spell_prompts: float = 0.0  # share of training prompts' pieces spelled letter by letter
    copy_fraction: float = 0.0  # span pretraining: share of chunks whose target is all of it
    init: str | None = None  # start from this checkpoint folder instead of random weights

    lora_rank: int = 0  # > 0: freeze the model (from init) and train LoRA adapters of this rank
    lora_alpha: float | None = None  # LoRA update scale α/r; None: α = 2·rank
    lora_targets: list[Literal["q", "k", "v", "o"]] = field(default_factory=lambda: ["q", "v"])
    lora_where: list[Literal["encoder", "decoder", "cross"]] = field(
        default_factory=lambda: ["encoder", "decoder", "cross"]
    )  # which attention layers get adapters (lora_targets: which of their projections)
    lora_dropout: float = 0.0  # dropout on the adapters' input

    optimizer: Literal["adamw", "adafactor", "muon"] = "adamw"  # muon: Muon on hidden matrices
    muon_lr: float = 0.02  # Muon's peak learning rate (its other parameters: AdamW at lr)
    adamw_impl: Literal["auto", "for-loop", "foreach", "fused"] = "auto"  # AdamW kernel; same step
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.01  # AdamW's and Muon's; never on norms, biases, embeddings
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.98  # AdamW's second-moment decay
    schedule: Literal["cosine", "inverse_sqrt", "constant"] = "cosine"  # cosine: to 10% of lr
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    batch_size: int = 32  # examples per micro-batch
    mix_tasks_every: int = 0  # > 0: every N steps, draw tasks by their held-out loss (data/mixing)
    length_bucketing: bool = False  # batch similar lengths: less padding, but same-task batches
    bucket_batches: int = 50  # with length_bucketing: batches sorted together (small: mixed)
    packing: bool = False  # several examples per row, each attending to itself (data/packing.py);
    # batch_size then counts rows, and length_bucketing does not apply
    packed_source_length: int = 0  # with packing: source positions per row (0: max_source_length)
    packed_target_length: int = 0  # with packing: target positions per row (0: max_target_length)
    grad_accum: int = 1  # micro-batches per optimizer step
    clip_grad: float = 1.0  # max global gradient norm; 0 = no clipping
    label_smoothing: float = 0.0  # ε of the smoothed target distribution

    max_steps: int = 2000  # optimizer steps (the schedule's length)
    max_minutes: float | None = None  # wall time: the cosine decays over it too; stops the run
    eval_every: int = 500  # steps between validation runs (and best-checkpoint choices)
    score_valid: int = 0  # at each validation, exact match of this many decoded (untimed; 0: none)
    save_every: int = 100  # steps between saves of last/ (what --resume and a crash use)
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss: stop (keep last/) or skip
    log_every: int = 10  # steps between lines of metrics.jsonl
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"  # bf16: autocast; fp16: CUDA +
    # scaler; auto: bf16 where it is faster (CUDA, or a CPU whose bf16 matmuls time faster)
    device: str = "auto"  # "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "mps"
    fsdp: bool = False  # under torchrun: shard weights, gradients, optimizer state (else DDP)
    compile: bool = False  # torch.compile the model (slow start, faster steps; mostly on GPUs)
    activation_checkpointing: bool = False  # recompute each layer in backward: less memory
    fused_kernels: Literal["auto", "on", "off"] = "auto"  # attention's fused branch (SDPA) or
    # the explicit arithmetic (the same numbers); auto: on with CUDA (slower on a 2-core CPU)
    tf32: bool = True  # CUDA: TensorFloat-32 matmuls for float32 (much faster, 10-bit mantissa)
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    report_to: list[Literal["tensorboard"]] = field(default_factory=list)  # also log there
    seed: int = 0  # seeds Python, torch (and CUDA); recorded in every checkpoint
    out: str = "runs/laptop"  # run folder: checkpoints, metrics.jsonl, loss.png

    def __post_init__(self) -> None:
        self.data = [self.data] if isinstance(self.data, str) else self.data
        for name in ("valid_data", "tokenizer", "init"):  # `--set train.valid_data=''`: none
            if getattr(self, name) == "":
                setattr(self, name, None)
        self.validate()
        # the shipped files are found from any folder (minitune/run/paths.py); paths are saved whole
        self.data = [resolve_file(p) for p in self.data]
        for name in ("valid_data", "tokenizer", "init"):
            setattr(self, name, getattr(self, name) and resolve_file(getattr(self, name)))

    def validate(self) -> None:
        """Raise `ConfigError` naming the field, its value and what is allowed."""
        ranges = {
            ">= 1": "max_source_length max_target_length batch_size bucket_batches grad_accum "
            "max_steps eval_every save_every log_every threads",
            ">= 0": "fresh_per_task lora_rank warmup_steps mix_tasks_every packed_source_length "
            "packed_target_length score_valid lora_dropout weight_decay clip_grad label_smoothing",
            "> 0": "muon_lr lr max_minutes",
            "in [0, 1)": "valid_fraction fresh_grammar spell_prompts",
            "in [0, 1]": "copy_fraction",
        }
        check_fields(self, ranges)  # each field's kind, then these ranges
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
        """Every field, for config.json next to a checkpoint and for --print-config."""
        return dataclasses.asdict(self)
