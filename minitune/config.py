"""Configuration: the model (`ModelConfig`, with named presets) and a training run (`TrainConfig`).

Every layer of minitune is built from a `ModelConfig`. Variants (attention, position scheme,
feed-forward, norm) are chosen by name. This file is a leaf: it imports no layer (and no torch),
so the names are checked where the model is built (`registry.check`, from Seq2SeqTransformer),
with a message saying what is allowed, before any layer is made; every other field is checked
here, at construction.

    cfg = ModelConfig.preset("laptop")                 # a named preset
    cfg = ModelConfig.preset("tiny", vocab_size=64)    # a preset with overrides
    cfg = ModelConfig(vocab_size=8000, d_model=256, n_heads=4, d_ff=512)

A run's config read from a TOML run file, with overrides, and logged with where each value came
from, is minitune/run_config.py's (`load_run_config`, `resolve_run_config`).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field

from minitune.paths import resolve_file

# The attention, position, feed-forward and norm variants are named in minitune/layers/registry.py
# (one line per variant). The other choices are listed here.
NORM_POSITIONS = ("pre", "post")
# Fields that checkpoints of earlier versions saved in config.json and that no longer describe
# a model: ignored when a config.json is read (which kernels run is chosen on the live model).
OBSOLETE = ("impl", "attention_impl")


def _check_choices(config, choices: dict[str, tuple]) -> None:
    """Raise ValueError for the first field whose value is not among its allowed names."""
    for name, allowed in choices.items():
        value = getattr(config, name)
        if value not in allowed:
            raise ValueError(
                f"{type(config).__name__}.{name}={value!r} is not one of: "
                f"{', '.join(map(repr, allowed))}{suggest(value, allowed)}"
            )


def suggest(value, allowed, cutoff: float = 0.6) -> str:
    """A hint such as "; did you mean 'adamw'?" when `value` nearly matches an allowed name:
    one that starts the value or that the value starts ("lrate" -> 'lr'), else the closest."""
    value, allowed = str(value), [str(a) for a in allowed]
    prefixes = [a for a in allowed if len(a) > 1 and (value.startswith(a) or a.startswith(value))]
    close = sorted(prefixes, key=len, reverse=True)[:1] or difflib.get_close_matches(
        value, allowed, n=1, cutoff=cutoff
    )
    return f"; did you mean {close[0]!r}?" if close else ""


# what each annotation accepts (annotations are strings under `from __future__ import annotations`)
_TYPE_CHECKS = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "list[str]": (
        "a list of strings",
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    ),
}


def _check_types(config) -> None:
    """Raise ValueError naming the first field whose value has the wrong type (e.g. from TOML,
    `lr = "fast"`), before any comparison could fail with a TypeError."""
    for f in dataclasses.fields(config):
        if not f.init:
            continue
        value, annotation = getattr(config, f.name), str(f.type)
        optional = annotation.endswith(" | None")
        if value is None and optional:
            continue
        what, ok = _TYPE_CHECKS[annotation.removesuffix(" | None")]
        if not ok(value):
            none = " (or none)" if optional else ""
            raise ValueError(
                f"{type(config).__name__}.{f.name} must be {what}{none}, "
                f"got {value!r} ({type(value).__name__})"
            )


@dataclass
class ModelConfig:
    """Shape and variants of a `Seq2SeqTransformer`. Defaults give a small T5-v1.1-style model."""

    vocab_size: int = 8000  # number of token ids (the tokenizer's vocabulary, sentinels included)
    d_model: int = 256  # width C of the residual stream
    n_heads: int = 4  # attention heads H per attention layer
    d_head: int | None = None  # width D of one head; None means d_model // n_heads
    d_ff: int = 512  # hidden width of the feed-forward layers
    n_encoder_layers: int = 4  # encoder blocks
    n_decoder_layers: int = 4  # decoder blocks
    dropout: float = 0.0  # dropout on embeddings, attention weights, sub-layer outputs, FF hidden

    attention: str = "multi-head"  # attention variant, a name in layers/registry.py
    n_kv_heads: int | None = None  # key/value heads: None = n_heads; 1 = multi-query; else grouped
    position: str = "relative"  # "relative" (T5), "sinusoidal", "learned", "rotary", "alibi"...
    max_position: int = 512  # longest sequence for "learned" positions
    relative_buckets: int = 32  # T5 relative bias: number of distance buckets
    relative_max_distance: int = (
        128  # T5 relative bias: distances beyond this share the last bucket
    )

    rotary_base: float = 10000.0  # RoPE: angle of pair i turns at base^(-2i/D) radians per token

    ffn: str = "gated-gelu"  # feed-forward: "relu", "gelu", "gated-gelu" (T5 v1.1) or "swiglu"
    norm: str = "rms"  # "rms" (RMSNorm, T5) or "layer" (LayerNorm)
    norm_position: str = "pre"  # "pre": x + f(norm(x)) (T5); "post": norm(x + f(x)) (2017 paper)
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
        if self.d_head is None:
            self.d_head = self.d_model // self.n_heads
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.scale_output is None:  # T5 v1.0 scales its tied head, v1.1 its own head not
            self.scale_output = self.tie_embeddings
        self.inner_dim = self.n_heads * self.d_head
        self.kv_dim = self.n_kv_heads * self.d_head

    def validate(self) -> None:
        """Raise `ValueError` naming the field, its value and what is allowed."""
        _check_types(self)
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "max_position"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        for name in ("n_encoder_layers", "n_decoder_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"ModelConfig.{name} must be an integer >= 0, got {value!r}")
        if self.d_head is None and self.d_model % self.n_heads != 0:
            raise ValueError(
                f"ModelConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "choose n_heads that divides d_model, or set d_head explicitly"
            )
        if self.d_head is not None and (not isinstance(self.d_head, int) or self.d_head < 1):
            raise ValueError(f"ModelConfig.d_head must be a positive integer, got {self.d_head!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.norm_eps <= 0:
            raise ValueError(f"ModelConfig.norm_eps must be > 0, got {self.norm_eps!r}")
        _check_choices(self, {"norm_position": NORM_POSITIONS})
        # the variant names (attention, position, ffn, norm): registry.check, where it is built
        if self.n_kv_heads is not None and (
            not isinstance(self.n_kv_heads, int)
            or self.n_kv_heads < 1
            or self.n_heads % self.n_kv_heads
        ):
            raise ValueError(
                f"ModelConfig.n_kv_heads must be a positive divisor of n_heads={self.n_heads} "
                f"(1 = multi-query), got {self.n_kv_heads!r}"
            )
        d_head = self.d_head or self.d_model // self.n_heads
        if self.position == "rotary" and d_head % 2:
            raise ValueError(f"ModelConfig.position='rotary' needs an even d_head, got {d_head}")
        if self.position in ("relative", "relative+sinusoidal"):
            if self.relative_buckets < 4 or self.relative_buckets % 2:
                raise ValueError(
                    f"ModelConfig.relative_buckets must be an even integer >= 4, "
                    f"got {self.relative_buckets!r}"
                )
            if self.relative_max_distance <= self.relative_buckets // 4:
                raise ValueError(
                    f"ModelConfig.relative_max_distance={self.relative_max_distance} must exceed "
                    f"relative_buckets // 4 = {self.relative_buckets // 4}"
                )
        for name in ("pad_id", "eos_id", "decoder_start_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"ModelConfig.{name}={value} is outside the vocabulary [0, {self.vocab_size})"
                )

    def to_dict(self) -> dict:
        """The fields a user sets (derived ones left out), for saving next to weights."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """Build from `to_dict()` output; unknown keys are an error naming them (the OBSOLETE
        ones that older checkpoints saved are left out)."""
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        values = {key: value for key, value in dict(values).items() if key not in OBSOLETE}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A named preset (see `PRESETS`), with any field overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        for key in OBSOLETE:  # from_dict leaves them out of saved files; here they are a mistake
            if key in overrides:
                raise ValueError(
                    f"ModelConfig has no field {key!r}: the fused kernels are switched on the "
                    "model, model.use_fused_kernels()"
                )
        return cls.from_dict({**PRESETS[name], **overrides})


# The laptop shape: 3.75M parameters that train on a 2-core CPU in minutes.
_LAPTOP = dict(
    vocab_size=3000,  # the shipped tokenizer, tokenizer/minitune.model
    d_model=192,
    n_heads=4,
    d_ff=512,
    n_encoder_layers=3,
    n_decoder_layers=3,
    dropout=0.0,  # minutes-long CPU runs underfit rather than overfit
)

# Named presets. "tiny" is for tests; "laptop" trains on a 2-core CPU in minutes; the T5 ones have
# the shapes of Google's t5-small (v1.0: ReLU, tied head) and t5-v1_1-small / flan-t5-small
# (gated-GELU, untied head), so their checkpoints fit.
PRESETS: dict[str, dict] = {
    "tiny": dict(
        vocab_size=128,
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        relative_buckets=8,
        relative_max_distance=16,
    ),
    # with a copy head: copies names and numbers from the prompt (benchmarks/learning.md)
    "laptop": dict(_LAPTOP, copy_head=True),
    # the same without it: a T5 architecture (`minitune export` writes it as a T5 folder);
    # train it with: minitune pipeline --set model.preset=laptop-t5
    "laptop-t5": dict(_LAPTOP),
    "t5-small": dict(
        vocab_size=32128,
        d_model=512,
        n_heads=8,
        d_head=64,
        d_ff=2048,
        n_encoder_layers=6,
        n_decoder_layers=6,
        dropout=0.1,
        ffn="relu",
        scale_attention=False,
        tie_embeddings=True,
    ),
    "t5-base": dict(
        vocab_size=32128,
        d_model=768,
        n_heads=12,
        d_head=64,
        d_ff=3072,
        n_encoder_layers=12,
        n_decoder_layers=12,
        dropout=0.1,
        ffn="relu",
        scale_attention=False,
        tie_embeddings=True,
    ),
    "t5-v1_1-small": dict(
        vocab_size=32128,
        d_model=512,
        n_heads=6,
        d_head=64,
        d_ff=1024,
        n_encoder_layers=8,
        n_decoder_layers=8,
        dropout=0.1,
        ffn="gated-gelu",
        scale_attention=False,
        tie_embeddings=False,
    ),
}


OPTIMIZERS = ("adamw", "adafactor")
ADAMW_IMPLS = ("auto", "for-loop", "foreach", "fused")
SCHEDULES = ("cosine", "inverse_sqrt", "constant")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
OBJECTIVES = ("instruct", "span")
NONFINITE = ("stop", "skip")
REPORT_TO = ("tensorboard",)
FUSED_KERNELS = ("auto", "on", "off")


@dataclass
class TrainConfig:
    """One training run. Defaults train the laptop preset on the shipped suite on a CPU."""

    objective: str = "instruct"  # "instruct" (instruction tuning) or "span" (span corruption)
    data: list[str] = field(default_factory=lambda: ["data/train.jsonl"])  # training files
    valid_data: str | None = "data/valid.jsonl"  # evaluated every eval_every steps; None: skip
    fresh_per_task: int = 0  # > 0: the training data is this many fresh examples per task of
    # the shipped suite, drawn from its generators before training (never an evaluation
    # example) into OUT/fresh_train.jsonl, and `data` is not read (the log and --print-config
    # say so; see minitune/data/suite/tasks.py: write_training_set)
    fresh_shared: bool = False  # with fresh_per_task: also the training-only families over the
    # suite's inputs, told apart by their instruction alone (minitune/data/suite/families_shared.py)
    valid_fraction: float = 0.0  # > 0: hold out this seeded share of `data` as validation set
    tokenizer: str | None = None  # SentencePiece model; None: --init's own, else the shipped one
    max_source_length: int = 128  # longer prompts are truncated (and counted)
    max_target_length: int = 64  # longer answers are truncated (and counted)
    spell_prompts: float = 0.0  # training prompts: spell this share of pieces letter by letter
    # span pretraining: this share of chunks (of max_target_length - 1 tokens) are denoising
    # examples whose target is the whole chunk, not only its missing spans: they teach copying
    copy_fraction: float = 0.0
    # (subword regularisation: the model sees the letters inside words; answers, validation and
    # inference are never spelled; drawn once per run from `seed`)
    init: str | None = None  # start from this checkpoint folder instead of random weights

    lora_rank: int = 0  # > 0: freeze the model (from init) and train LoRA adapters of this rank
    lora_alpha: float | None = None  # LoRA update scale α/r; None: α = 2·rank
    lora_targets: list[str] = field(default_factory=lambda: ["q", "v"])  # q, k, v, o
    lora_where: list[str] = field(default_factory=lambda: ["encoder", "decoder", "cross"])
    lora_dropout: float = 0.0  # dropout on the adapters' input

    optimizer: str = "adamw"  # "adamw" or "adafactor"
    adamw_impl: str = "auto"  # AdamW's kernel: "auto" (PyTorch's choice), "for-loop" (one
    # parameter at a time), "foreach" (all at once), "fused" (one kernel); the same update
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.01  # AdamW only; never on norms, biases, embeddings
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.98  # AdamW's second-moment decay
    schedule: str = "cosine"  # "cosine" (to 10% of lr), "inverse_sqrt" or "constant"
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    batch_size: int = 32  # examples per micro-batch
    mix_tasks_every: int = 0  # > 0: every N steps, draw tasks by their loss on a held-out slice
    # of the training data (minitune/data/mixing.py) instead of uniformly; instruction data only
    length_bucketing: bool = False  # batch similar lengths: less padding, but same-task batches
    bucket_batches: int = 50  # with length_bucketing: batches sorted together (small = mixed tasks)
    packing: bool = False  # several examples per row, each attending only to itself
    # (minitune/data/packing.py): rows of fixed lengths, nearly no padding; batch_size then
    # counts rows, and length_bucketing does not apply
    packed_source_length: int = 0  # with packing: source positions per row (0: max_source_length)
    packed_target_length: int = 0  # with packing: target positions per row (0: max_target_length)
    grad_accum: int = 1  # micro-batches per optimizer step
    clip_grad: float = 1.0  # max global gradient norm; 0 = no clipping
    label_smoothing: float = 0.0  # ε of the smoothed target distribution

    max_steps: int = 2000  # optimizer steps (the schedule's length)
    max_minutes: float | None = None  # stop earlier when this much wall time has passed
    eval_every: int = 500  # steps between validation runs (and best-checkpoint choices)
    save_every: int = 100  # steps between saves of last/ (what --resume and a crash fall back to)
    on_nonfinite: str = "stop"  # a NaN/inf loss: "stop" (keep last/) or "skip" the step
    log_every: int = 10  # steps between lines of metrics.jsonl
    precision: str = "fp32"  # "fp32", "bf16" (autocast), "fp16" (CUDA + scaler), "auto" (bf16
    # where it is faster: CUDA with bf16, or a CPU with AVX512-BF16/AMX whose bf16 matmuls time
    # faster than fp32 at start, device.bf16_speedup; else fp32)
    device: str = "auto"  # "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "mps"
    fsdp: bool = False  # under torchrun: shard weights, gradients, optimizer state (else DDP)
    compile: bool = False  # torch.compile the model (slow start, faster steps; mostly on GPUs)
    activation_checkpointing: bool = False  # recompute each layer in backward: less memory
    fused_kernels: str = "auto"  # attention's and the feed-forward's fused branches (SDPA,
    # stacked projections): "on", "off" (the explicit arithmetic; the same numbers) or "auto":
    # on with CUDA, off elsewhere (on a 2-core CPU they trained slower: benchmarks/README.md)
    tf32: bool = True  # CUDA: TensorFloat-32 matmuls for float32 (much faster, 10-bit mantissa)
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    report_to: list[str] = field(default_factory=list)  # also log to: "tensorboard" (optional)
    seed: int = 0  # seeds Python, torch (and CUDA); recorded in every checkpoint
    out: str = "runs/laptop"  # run folder: checkpoints, metrics.jsonl, loss.png

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            self.data = [self.data]
        _check_types(self)
        # the shipped files are found from any folder (minitune/paths.py); paths are saved whole
        self.data = [resolve_file(p) for p in self.data]
        for name in ("valid_data", "tokenizer", "init"):
            if getattr(self, name) == "":  # `--set train.valid_data=''`: none
                setattr(self, name, None)
            if getattr(self, name) is not None:
                setattr(self, name, resolve_file(getattr(self, name)))
        for target in self.report_to:
            if target not in REPORT_TO:
                raise ValueError(
                    f"TrainConfig.report_to: {target!r} is not one of: "
                    f"{', '.join(map(repr, REPORT_TO))}{suggest(target, REPORT_TO)}"
                )
        choices = {
            "objective": OBJECTIVES,
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "precision": PRECISIONS,
            "on_nonfinite": NONFINITE,
            "adamw_impl": ADAMW_IMPLS,
            "fused_kernels": FUSED_KERNELS,
        }
        _check_choices(self, choices)
        for name in (
            "max_source_length",
            "max_target_length",
            "batch_size",
            "grad_accum",
            "max_steps",
            "eval_every",
            "log_every",
            "save_every",
            "bucket_batches",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.mix_tasks_every, int) or self.mix_tasks_every < 0:
            raise ValueError(
                f"TrainConfig.mix_tasks_every must be an integer >= 0 (0 = uniform batches), "
                f"got {self.mix_tasks_every!r}"
            )
        for name in ("packed_source_length", "packed_target_length"):
            value, least = getattr(self, name), getattr(self, name.replace("packed", "max"))
            if not isinstance(value, int) or (value and value < least):
                raise ValueError(
                    f"TrainConfig.{name} must be 0 (= {name.replace('packed', 'max')}) or at "
                    f"least {name.replace('packed', 'max')} = {least}, so that every example "
                    f"fits in a row; got {value!r}"
                )
        if self.packing and self.mix_tasks_every:
            raise ValueError(
                "TrainConfig: packing with mix_tasks_every is not supported (the "
                "mixer draws padded batches); set one of them off"
            )
        if self.fresh_per_task < 0:
            raise ValueError(
                f"TrainConfig.fresh_per_task must be >= 0 (0 = train on `data`), "
                f"got {self.fresh_per_task!r}"
            )
        if not 0.0 <= self.copy_fraction <= 1.0:
            raise ValueError(
                f"TrainConfig.copy_fraction must be in [0, 1], got {self.copy_fraction!r}"
            )
        if not 0.0 <= self.spell_prompts < 1.0:
            raise ValueError(
                f"TrainConfig.spell_prompts must be in [0, 1), got {self.spell_prompts!r}"
            )
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:  # a budget: > 0, or none
            raise ValueError(
                f"TrainConfig.max_minutes must be > 0 (leave it unset for no time "
                f"limit), got {self.max_minutes!r}"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(
                f"TrainConfig.threads must be a positive integer (unset: torch's "
                f"default), got {self.threads!r}"
            )
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(
                f"TrainConfig.valid_fraction must be in [0, 1), got {self.valid_fraction!r}"
            )
        if self.valid_fraction and self.valid_data:
            raise ValueError(
                "TrainConfig: give either valid_data (a file) or valid_fraction (a held-out "
                f"share of the training data), not both (valid_data={self.valid_data!r}, "
                f"valid_fraction={self.valid_fraction})"
            )
        for name in ("weight_decay", "clip_grad", "label_smoothing", "lora_dropout"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.lora_rank < 0:
            raise ValueError(
                f"TrainConfig.lora_rank must be an integer >= 0, got {self.lora_rank!r}"
            )
        if self.fsdp and self.lora_rank:
            raise ValueError("TrainConfig: fsdp with lora_rank is not supported; use DDP for LoRA")
        if self.lora_rank:
            self.lora_settings()  # ValueError naming a bad target or place
            if not self.init:
                raise ValueError(
                    "TrainConfig.lora_rank > 0 adapts a trained model: give train.init "
                    "(--init DIR, a minitune checkpoint or a T5 folder)"
                )

    def lora_settings(self):
        """The LoRA settings of this run (`minitune.lora.LoRASettings`)."""
        from minitune.lora import LoRASettings

        alpha = self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_rank
        return LoRASettings(
            rank=self.lora_rank,
            alpha=alpha,
            targets=tuple(self.lora_targets),
            where=tuple(self.lora_where),
            dropout=self.lora_dropout,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
