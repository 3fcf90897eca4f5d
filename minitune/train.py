"""The training loop, top to bottom: instruction tuning (or span-corruption pretraining).

    model_cfg, cfg = load_run_config("configs/laptop.toml")
    summary = train(model_cfg, cfg)           # writes cfg.out/{best,last}/, metrics.jsonl, loss.png

One optimizer step:
  1. take `grad_accum` micro-batches and count their target tokens N (padding excluded);
  2. for each micro-batch: logits = model(x, shift_right(y)); loss = Σ -log p(y_t) / N; backward
     (so the accumulated gradient is that of the mean over all N tokens, as one big batch);
  3. clip the gradient norm, set the learning rate from the schedule, step, zero the gradients.

Every `eval_every` steps the validation loss is measured and the best checkpoint kept; every
`save_every` steps last/ is saved (what --resume continues from, exactly: weights, optimizer,
random states, data position, and the loss log). Stops at `max_steps` or `max_minutes`; Ctrl-C
saves last/ first (one process; under torchrun the last periodic save is the resume point).
A NaN or infinite loss stops the run before the weights change (or, with
on_nonfinite="skip", skips that step and counts it).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from minitune.checkpoint import (
    load_model,
    load_pretrained,
    load_trainer_state,
    recover,
    save_checkpoint,
    weights_fingerprint,
)
from minitune.config import ModelConfig, TrainConfig
from minitune.data.batching import (
    EncodedExample,
    collate,
    encode_records,
    length_bucketed_batches,
)
from minitune.data.corpus import read_documents
from minitune.data.formats import read_records
from minitune.data.mixing import FLOOR, PROBE_SIZE, TaskMixer, task_weights
from minitune.data.packing import collate_packed, packed_batches
from minitune.data.span_corruption import span_corrupt
from minitune.distributed import (
    Distributed,
    full_state,
    load_full_state,
    no_sync,
    setup,
    teardown,
    unwrap,
    wrap,
)
from minitune.lora import add_lora, count_parameters
from minitune.loss import IGNORE_INDEX, token_nll_sum
from minitune.model import Segments, Seq2SeqTransformer, shift_right
from minitune.optim import build_optimizer, lr_factor
from minitune.paths import find_shipped
from minitune.tokenizer import Tokenizer

DEFAULT_TOKENIZER = "tokenizer/minitune.model"
HOLDOUT_MIN = 32  # a held-out validation slice has at least this many examples (if it can)
MAX_SKIPS_IN_A_ROW = 20  # with on_nonfinite="skip", this many bad steps in a row still stop


class RunError(ValueError):
    """A problem with a run that the user can fix (folders, tokenizer, settings); the command
    line prints it without a traceback."""


class DivergenceError(RunError):
    """The loss or the gradient stopped being a finite number (the weights were not updated)."""


def pick_device(name: str) -> torch.device:
    """ "auto" -> CUDA if present, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("device 'cuda' was asked for, but no CUDA GPU is available")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (x86 AVX512-BF16 or AMX-BF16 on Linux).
    Without those instructions bf16 matmuls are emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: do not guess
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(
    precision: str, device: torch.device, width: tuple[int, int] = (256, 1024),
    d: Distributed | None = None,
) -> tuple[str, str]:  # fmt: skip
    """ "auto" -> "bf16" where it is faster, else "fp32"; other values are returned unchanged.
    Returns (precision, why) - why says what "auto" found ("" for an explicit choice).

    CUDA: bf16 where the GPU supports it. CPU: bf16 instructions (AVX512-BF16, AMX) are
    necessary but not enough - on some CPUs that have them, bf16 matmuls still run at half the
    fp32 speed - so "auto" times one matmul of the model's width (d_model x d_ff, `width`) in
    both dtypes (`bf16_speedup`, ~0.2 s) and takes bf16 only when it is clearly faster."""
    if precision != "auto":
        return precision, ""
    if device.type == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp32"), "auto"
    if device.type != "cpu" or not cpu_has_bf16():
        return "fp32", "auto: no bf16 instructions"
    speedup = bf16_speedup(*width)
    if d is not None and d.enabled:  # every process the same choice: the mean of their timings
        (total,) = d.sum([speedup])
        speedup = total / d.world_size
    choice = "bf16" if speedup > BF16_MIN_SPEEDUP else "fp32"
    return choice, f"auto: bf16 matmuls {speedup:.2f}x the fp32 speed on this CPU"


BF16_MIN_SPEEDUP = 1.1  # "auto" takes bf16 on a CPU when its matmuls are this much faster


def bf16_speedup(d_model: int, d_ff: int, rows: int = 2048) -> float:
    """fp32 time / bf16 time of a (rows x d_model) @ (d_model x d_ff) matmul on this CPU (the
    best of a few runs each, after a warm-up): > 1 means bf16 is faster."""
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(rows, d_model, dtype=dtype), torch.randn(d_model, d_ff, dtype=dtype)
        a @ b  # warm-up: oneDNN picks and prepares its kernel
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(4):
                a @ b
            times.append(time.perf_counter() - start)
        best[dtype] = min(times)
    return best[torch.float32] / best[torch.bfloat16]


def precision_context(precision: str, device: torch.device):
    """The autocast context for a precision (fp32: none) and whether a GradScaler is needed."""
    if precision == "fp32":
        return contextlib.nullcontext(), False
    if precision == "fp16" and device.type != "cuda":
        raise RunError("precision 'fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype), precision == "fp16"


def span_examples(
    documents: list[list[int]], tok: Tokenizer, cfg: TrainConfig, epoch: int
) -> list[EncodedExample]:
    """Span-corruption examples for one epoch: chunks of each document, corrupted afresh. With
    `cfg.copy_fraction`, that share of chunks are shorter (they fit the target) and their target
    is the whole chunk: the model reads the corrupted text and writes all of it back."""
    rng = random.Random(f"span-{cfg.seed}-{epoch}")
    chunk = cfg.max_source_length - 1  # room for EOS; corruption only shortens the input
    copy_chunk = min(chunk, cfg.max_target_length - 1)
    examples = []
    for ids in documents:
        start = 0
        while start < len(ids):
            copy = cfg.copy_fraction > 0 and rng.random() < cfg.copy_fraction
            piece = ids[start : start + (copy_chunk if copy else chunk)]
            start += len(piece)
            if len(piece) < 8:
                continue
            inputs, targets = span_corrupt(piece, tok.sentinel_ids, rng)
            targets = piece if copy else targets[: cfg.max_target_length - 1]
            examples.append(
                EncodedExample([*inputs, tok.eos_id], [*targets, tok.eos_id], len(examples))
            )
    return examples


def hold_out(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """Split records into (train, validation): a seeded random `fraction` of them, at least
    HOLDOUT_MIN but never more than half. Example: 1000 records, 0.05 -> 950 and 50."""
    n = min(max(math.ceil(fraction * len(records)), HOLDOUT_MIN), len(records) // 2)
    order = list(range(len(records)))
    random.Random(f"holdout-{seed}").shuffle(order)
    chosen = set(order[:n])
    train_part = [r for i, r in enumerate(records) if i not in chosen]
    return train_part, [r for i, r in enumerate(records) if i in chosen]


def batch_stream(
    make_epoch, batch_size: int, seed: int, epoch: int = 0, index: int = 0, window: int = 50,
    packed: tuple[int, int] | None = None, log=None,
):  # fmt: skip
    """Endless (epoch, index, batch) in a fixed order; resumable at (epoch, index).

    The examples are shuffled, then sorted by length within windows of `window` batches and
    cut into batches: a batch holds examples of similar length (less padding). A large window
    gives nearly same-task batches; a small one (4) keeps tasks mixed; 1 is plain random draws.
    packed = (S, T): a batch is instead `batch_size` rows, each a list of the examples packed
    into S source and T target positions (minitune/data/packing.py); `log` hears how full."""
    while True:
        examples = make_epoch(epoch)
        if packed:
            batches, report = packed_batches(examples, *packed, batch_size, seed * 1000 + epoch)
            if log is not None:
                log(f"packing, epoch {epoch}: {report}")
                log = None  # once per session
            for i in range(index, len(batches)):
                yield epoch, i, [[examples[j] for j in row] for row in batches[i]]
        else:
            lengths = [len(e.source) + len(e.target) for e in examples]
            batches = length_bucketed_batches(lengths, batch_size, seed * 1000 + epoch, window)
            for i in range(index, len(batches)):
                yield epoch, i, [examples[j] for j in batches[i]]
        epoch, index = epoch + 1, 0


class StepResult(NamedTuple):
    """What one optimizer step reports: its loss (mean per target token), the gradient norm
    before clipping, the tokens processed, and whether the weights were updated."""

    loss: float
    grad_norm: torch.Tensor | None  # None when no optimizer was given (gradients only)
    tokens: int
    updated: bool


def train_step(
    model, micro_batches: list[dict], optimizer, scaler, lr: float, pad_id: int, device,
    autocast=None, clip_grad: float = 1.0, label_smoothing: float = 0.0,
    d: Distributed | None = None,
) -> StepResult:  # fmt: skip
    """One optimizer step: forward, loss and backward of each micro-batch, clip, step.

    Each micro-batch's summed token loss is divided by N, the number of target tokens of all
    micro-batches together (of all processes, when distributed), so the gradient equals that of
    one big batch, whatever the padding and however the batch is split.
    If the loss or the gradient norm is not a finite number, the gradient is thrown away and the
    weights are left as they were (`updated` is False); the caller decides to stop or go on.
    `scaler`: a torch.amp.GradScaler (disabled unless fp16), or None; `autocast`: the
    precision's context (None: float32); `optimizer` None: stop after the backward, leaving the
    gradient in each parameter's .grad (what `forward_backward` returns).
    """
    d, autocast = d or Distributed(), autocast or contextlib.nullcontext()
    scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)  # scale(loss) is then loss
    n_tokens = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in micro_batches)
    (n_tokens,) = d.sum([n_tokens])  # N, over every process
    loss, processed = 0.0, 0
    for i, batch in enumerate(micro_batches):
        x, y = (batch[k].to(device, non_blocking=True) for k in ("input_ids", "labels"))
        mask, segments = None, None  # padded rows have a padding mask; packed rows, segments
        if "source_segments" in batch:  # packed rows (minitune/data/packing.py)
            segments = Segments(*(batch[k].to(device, non_blocking=True)
                                  for k in ("source_segments", "target_segments")))  # fmt: skip
            source_tokens = segments.source != 0
        else:
            mask = source_tokens = batch["attention_mask"].to(device, non_blocking=True)
        decoder_input_ids = shift_right(y, unwrap(model).config.decoder_start_id, pad_id,
                                        None if segments is None else segments.target)  # fmt: skip
        with no_sync(model, last_micro_batch=i == len(micro_batches) - 1):  # DDP: sync at last
            with autocast:  # the forward in low precision; the backward follows its dtypes
                # 1. forward: a distribution over the vocabulary at every target position
                logits = model(x, decoder_input_ids, mask, segments)  # (B, T, V)
                # 2. loss: Σ_t -log p(y_t) over this micro-batch's target tokens
                loss_sum, _ = token_nll_sum(logits, y, label_smoothing)
            # 3. backward, of loss_sum / N (DDP/FSDP average the gradients over the processes;
            #    × world_size makes that a sum)
            scaler.scale(loss_sum / n_tokens * d.world_size).backward()
        loss += loss_sum.item() / n_tokens
        processed += int(source_tokens.sum()) + int((y != IGNORE_INDEX).sum())
    loss, processed = d.sum([loss, processed])
    if optimizer is None:
        return StepResult(loss, None, int(processed), updated=False)
    # 4. clip: g <- g · min(1, clip_grad / ||g||)  (unscaled first, if fp16 scaled the loss)
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        unwrap(model).parameters(), clip_grad if clip_grad else math.inf
    )
    if hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor (PyTorch's sharded tensor)
        grad_norm = grad_norm.full_tensor()
    # (fp16's GradScaler skips a step with an inf gradient itself, and lowers its scale)
    if not math.isfinite(loss) or (not scaler.is_enabled() and not grad_norm.isfinite()):
        optimizer.zero_grad(set_to_none=True)
        return StepResult(loss, grad_norm, int(processed), updated=False)
    # 5. step with the schedule's learning rate, then forget the gradient
    for group in optimizer.param_groups:
        group["lr"] = lr
    scaler.step(optimizer)  # optimizer.step(), unless fp16 found an inf
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss, grad_norm, int(processed), updated=True)


def forward_backward(
    model, micro_batches: list[dict], pad_id: int, device, autocast, scaler=None,
    label_smoothing: float = 0.0, d: Distributed | None = None,
) -> tuple[float, int]:  # fmt: skip
    """The gradient of one step without the update: `train_step`'s forward, loss and backward
    (the gradient is left in each parameter's .grad). Returns the step's loss (mean per target
    token) and the number of tokens processed."""
    result = train_step(model, micro_batches, None, scaler, 0.0, pad_id, device, autocast,
                        label_smoothing=label_smoothing, d=d)  # fmt: skip
    return result.loss, result.tokens


@torch.no_grad()
def validation_loss(model, examples, pad_id, batch_size, device, autocast,
                    d: Distributed | None = None) -> float:  # fmt: skip
    """Mean per-token loss over `examples` (teacher forcing), dropout off. Distributed: each
    process takes every world_size-th example and the sums are added up."""
    d = d or Distributed()
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    mine = examples[d.rank :: d.world_size]
    # every process runs as many batches as the largest share (FSDP's forwards are collective)
    n_batches = math.ceil(math.ceil(len(examples) / d.world_size) / batch_size)
    for i in range(n_batches):
        part = mine[i * batch_size : (i + 1) * batch_size]
        batch = collate(part or examples[:1], pad_id)  # an empty share: a dummy, not counted
        x, mask, y = (batch[k].to(device) for k in ("input_ids", "attention_mask", "labels"))
        with autocast:
            logits = model(x, shift_right(y, unwrap(model).config.decoder_start_id, pad_id), mask)
        loss_sum, n = token_nll_sum(logits, y)
        if part:
            total, count = total + loss_sum.item(), count + n.item()
    model.train(was_training)
    total, count = d.sum([total, count])
    return total / max(count, 1)


def plot_losses(metrics_file: Path, out_png: Path) -> str:
    """Draw train and validation loss from metrics.jsonl, against optimizer steps (left) and
    wall-clock minutes (right)."""
    if not metrics_file.is_file():  # stopped before the first log line
        return f"no {metrics_file.name} yet: no {out_png.name}"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
    train_rows = [r for r in rows if "loss" in r]
    valid_rows = [r for r in rows if "valid_loss" in r]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, x, label in ((axes[0], "step", "optimizer step"), (axes[1], "elapsed_s", "minutes")):
        scale = 1 / 60 if x == "elapsed_s" else 1
        for part, key, style, name in ((train_rows, "loss", "-", "train"),
                                       (valid_rows, "valid_loss", "o-", "validation")):  # fmt: skip
            points = [(r[x] * scale, r[key]) for r in part if x in r]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=name)
        ax.set(xlabel=label, yscale="log")
        ax.legend()
    axes[0].set_ylabel("loss per target token")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return f"wrote {out_png}"


@dataclass
class TrainState:
    """Where a run is: everything --resume needs besides the weights, the optimizer and the
    GradScaler. `state_dict()` is what trainer.pt holds next to those (plain data only)."""

    step: int = 0  # optimizer steps done
    examples: int = 0  # training examples seen (all processes, all micro-batches)
    tokens: int = 0  # real tokens processed (source + target, no padding; all processes)
    epoch: int = 0  # the data stream's epoch ...
    index: int = 0  # ... and the next batch in it
    best_valid_loss: float = math.inf
    elapsed: float = 0.0  # seconds of training in earlier sessions of this run
    losses: list[float] = field(default_factory=list)  # train losses since the last metrics row
    skipped: int = 0  # steps skipped for a non-finite loss (on_nonfinite="skip")
    rng: list = field(default_factory=list)  # random states, one per process, at the last save
    # of this session only (not saved):
    started: float = field(default_factory=time.time)  # when this session's loop started
    saved_step: int = 0  # the step last/ holds
    last_eval_step: int | None = None
    in_a_row: int = 0  # non-finite steps in a row

    def seconds(self, now: float | None = None) -> float:
        """Seconds of training so far, all sessions together."""
        return self.elapsed + (time.time() if now is None else now) - self.started

    def state_dict(self) -> dict:
        return {"step": self.step, "examples": self.examples, "tokens": self.tokens,
                "epoch": self.epoch,
                "index": self.index,
                "best_valid_loss": self.best_valid_loss, "elapsed": self.seconds(),
                "losses": list(self.losses), "skipped": self.skipped, "rng": self.rng}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.index = state["step"], state["epoch"], state["index"]
        self.examples = state.get("examples", 0)  # runs saved before it was counted: 0
        self.tokens = state.get("tokens", 0)
        self.best_valid_loss, self.elapsed = state["best_valid_loss"], state["elapsed"]
        self.losses, self.skipped, self.rng = list(state["losses"]), state["skipped"], state["rng"]
        self.saved_step, self.started = self.step, time.time()


@dataclass
class Run:
    """What the helpers of the loop share, fixed for the whole run."""

    cfg: TrainConfig
    out: Path
    model: Seq2SeqTransformer  # the model itself: its config, what is saved
    wrapped: torch.nn.Module  # what the loop calls: DDP/FSDP/torch.compile around model, or model
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    tok: Tokenizer
    tokenizer_file: Path
    device: torch.device
    autocast: contextlib.AbstractContextManager
    d: Distributed
    log: Callable
    metrics: MetricsLog
    base: dict | None = None  # LoRA: the base checkpoint's path and hash
    mixer: TaskMixer | None = None  # mix_tasks_every: the batch stream, and its loss slice


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    resume: bool = False,
    stop_at_step: int | None = None,
    log=tqdm.write,
    progress: bool = True,
) -> dict:
    """Run (or resume) training; returns a summary. See the module docstring."""
    # ---- 1. processes, device, seeds, output folder -----------------------------------------
    d, device = start(cfg)
    if not d.is_main:
        log, progress = (lambda *a: None), False  # rank 0 speaks for all
    out = Path(cfg.out)
    if d.is_main:
        check_writable(out)  # before any work: a run that cannot save is a run lost

    # ---- 2. model, tokenizer, precision ------------------------------------------------------
    model, tokenizer_file, base = build_model(model_cfg, cfg, log)
    width = (model.config.d_model, model.config.d_ff)
    precision, why = resolve_precision(cfg.precision, device, width, d)  # "auto": the faster
    autocast, use_scaler = precision_context(precision, device)
    tok = Tokenizer(tokenizer_file)
    if tok.vocab_size > model.config.vocab_size:
        raise RunError(
            f"the tokenizer {tokenizer_file} has {tok.vocab_size} ids but the model only "
            f"{model.config.vocab_size}; set model.vocab_size to at least the tokenizer's size"
        )
    model = model.to(device).train()
    model.set_activation_recompute(cfg.activation_checkpointing)
    processes = f", {d.world_size} processes ({'FSDP' if d.fsdp else 'DDP'})" if d.enabled else ""
    why = f" ({why})" if why else ""
    log(f"model: {model.num_parameters() / 1e6:.2f}M parameters on {device}, {precision}{why}"
        f"{processes}")  # fmt: skip
    wrapped = wrap(model, d, device)  # DDP/FSDP around the model, or the model itself
    if cfg.compile:
        wrapped = torch.compile(wrapped)  # saved from `model`: no "_orig_mod." names
    if d.enabled:
        torch.manual_seed(cfg.seed + d.rank)  # dropout differs between processes

    # ---- 3. data (every file read and checked whole before the first step) -----------------
    make_epoch, valid, tasks = load_data(cfg, tok, out, d, log)
    mixer = None  # mix_tasks_every: batches drawn by task loss (minitune/data/mixing.py)
    if cfg.mix_tasks_every:
        mixer = task_mixer(make_epoch(0), tasks, cfg, d, log)

    # ---- 4. optimizer, metrics log, and the state to resume ----------------------------------
    optimizer = build_optimizer(model, cfg)  # after FSDP has sharded the parameters
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    board = None  # --report-to tensorboard: rank 0 writes the rows there too
    if "tensorboard" in cfg.report_to and d.is_main:
        board = tensorboard_writer(out / "tensorboard")
    metrics = MetricsLog(out / "metrics.jsonl", d.is_main, board)
    run = Run(cfg, out, model, wrapped, optimizer, scaler, tok, tokenizer_file, device,
              autocast, d, log, metrics, base, mixer)  # fmt: skip
    state = TrainState()
    if resume:
        resume_from(out / "last", run, state)
    elif run.metrics.path.exists() and d.is_main:
        run.metrics.path.unlink()  # a fresh run starts a fresh log

    # ---- 5. the loop --------------------------------------------------------------------------
    # one stream of global batches (batch_size per process), the same in every process
    window = cfg.bucket_batches if cfg.length_bucketing else 1
    packed = packed_lengths(cfg)  # (S, T) of a packed row, or None: padded batches
    stream = mixer or batch_stream(make_epoch, cfg.batch_size * d.world_size, cfg.seed,
                                   state.epoch, state.index, window, packed, log)  # fmt: skip
    bar = tqdm(total=cfg.max_steps, initial=state.step, disable=not progress, dynamic_ncols=True)
    state.started, session_start = time.time(), state.step
    window_tokens, window_examples, window_start = 0, state.examples, time.time()
    stop_reason = "max_steps"
    try:
        while state.step < cfg.max_steps:
            if stop_at_step is not None and state.step >= stop_at_step:
                stop_reason = "stop_at_step"
                break
            if cfg.max_minutes and state.seconds() > cfg.max_minutes * 60:
                stop_reason = "max_minutes"
                break
            micro = next_micro_batches(stream, state, cfg.grad_accum, tok.pad_id, d, device,
                                       packed, cfg.batch_size)  # fmt: skip
            fraction = state.seconds() / (60 * cfg.max_minutes) if cfg.max_minutes else 0.0
            lr = cfg.lr * lr_factor(state.step, cfg, fraction)  # ends with steps or minutes
            # forward, loss, backward, clip, step (or not, if the loss is not a finite number)
            result = train_step(wrapped, micro, optimizer, scaler, lr, tok.pad_id, device,
                                autocast, cfg.clip_grad, cfg.label_smoothing, d)  # fmt: skip
            window_tokens += result.tokens
            state.tokens += result.tokens
            if not result.updated:
                skip_or_stop(result, run, state)  # raises DivergenceError unless skipping
                continue
            state.in_a_row = 0
            state.step += 1
            state.losses.append(result.loss)

            # logging, evaluation, checkpoints
            if state.step % cfg.log_every == 0 or state.step == cfg.max_steps:
                now = time.time()
                seconds = max(now - window_start, 1e-9)
                speed = (window_tokens / seconds, (state.examples - window_examples) / seconds)
                log_row(run, state, bar, lr, result.grad_norm, speed, now, session_start)
                window_tokens, window_examples, window_start = 0, state.examples, now
            bar.update(1)
            if mixer and state.step % cfg.mix_tasks_every == 0:
                remix(run, state)  # the next batches follow each task's loss
            if valid and (state.step % cfg.eval_every == 0 or state.step == cfg.max_steps):
                evaluate(run, state, valid)
            if state.step % cfg.save_every == 0 and state.step < cfg.max_steps:
                save(run, state, "last", with_trainer=True)  # what a crash or --resume uses
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        if d.enabled:  # saving needs every process, and not all may have been interrupted
            log(f"interrupted at step {state.step}; {out / 'last'} holds step {state.saved_step}")
            teardown(d)
            return summary(state, stop_reason, out, minutes=0.0)
        log(f"interrupted at step {state.step}: saving {out / 'last'}")
    finally:
        bar.close()

    # ---- 6. the end: a last evaluation, last/ (and best/), the loss picture ------------------
    if valid and stop_reason in ("max_steps", "max_minutes") and state.last_eval_step != state.step:
        evaluate(run, state, valid)  # stopped by the clock between two evaluations
    save(run, state, "last", with_trainer=True)
    if not valid:
        save(run, state, "best", with_trainer=False)  # nothing to choose by: best is last
    if d.is_main:
        log(plot_losses(run.metrics.path, out / "loss.png"))
        run.metrics.close()
    teardown(d)
    return summary(state, stop_reason, out, minutes=state.seconds() / 60)


# ---- the pieces of train(), in the order it calls them -----------------------------------------


def start(cfg: TrainConfig) -> tuple[Distributed, torch.device]:
    """Join torchrun's processes (if any), pick the device, seed every random generator."""
    d, device_name = setup(cfg.device, cfg.fsdp)  # one process, or one of torchrun's
    device = pick_device(device_name)
    if device.type == "cuda":  # TensorFloat-32 matmuls: ~8x the fp32 speed, 10-bit mantissa
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # also seeds CUDA; the same initial weights in every process
    return d, device


def build_model(
    model_cfg: ModelConfig, cfg: TrainConfig, log
) -> tuple[Seq2SeqTransformer, Path, dict | None]:
    """The model (from --init, or new), its tokenizer file, and (LoRA) the base it adapts."""
    if cfg.init:  # a minitune checkpoint or a Hugging Face T5 / Flan-T5 folder
        model, tokenizer_file, init_info = load_pretrained(cfg.init)  # its own config
        log(f"initialised from {cfg.init} (step {init_info.get('step')})")
        if (
            cfg.tokenizer
            and Tokenizer(cfg.tokenizer).fingerprint() != Tokenizer(tokenizer_file).fingerprint()
        ):
            raise RunError(
                f"train.tokenizer={cfg.tokenizer} is not the tokenizer {cfg.init} was trained "
                f"with ({tokenizer_file}); its ids would mean other words. Leave train.tokenizer "
                "unset to use the checkpoint's own"
            )
    else:
        model = Seq2SeqTransformer(model_cfg)
        tokenizer_file = Path(cfg.tokenizer or find_shipped(DEFAULT_TOKENIZER))
    base = None
    if cfg.lora_rank:  # freeze the model, train low-rank adapters (minitune/lora.py)
        add_lora(model, cfg.lora_settings())
        trainable, total = count_parameters(model)
        log(f"LoRA rank {cfg.lora_rank} on {'/'.join(cfg.lora_targets)} "
            f"({', '.join(cfg.lora_where)}): {trainable:,} trainable of {total:,} parameters "
            f"({100 * trainable / total:.2f}%)")  # fmt: skip
        base = {"path": str(Path(cfg.init).resolve()), "sha": weights_fingerprint(cfg.init)}
    if cfg.precision == "fp16" and not model.config.scale_attention:  # (auto never picks fp16)
        raise RunError(
            "precision 'fp16' with a T5-style model (scale_attention=False): T5's activations "
            "overflow float16's range (max 65504); use 'bf16' or 'fp32'"
        )
    return model, tokenizer_file, base


def load_data(cfg: TrainConfig, tok: Tokenizer, out: Path, d: Distributed, log):
    """(make_epoch, valid, tasks): a function epoch -> the training examples of that epoch (the
    same every epoch for instruction tuning, corrupted afresh for span pretraining), the
    validation examples (possibly none), and each training example's task (None: span)."""
    if cfg.objective == "instruct":
        files = cfg.data
        if cfg.fresh_per_task:  # fresh examples from the suite's generators, none seen in eval
            files = [str(fresh_training_file(out, cfg.fresh_per_task, d, log, cfg.fresh_shared))]
        records = [r for path in files for r in read_records(path)]
        held_out = []
        if cfg.valid_fraction:  # own data without a validation file: a seeded slice of it
            records, held_out = hold_out(records, cfg.valid_fraction, cfg.seed)
            log(f"validation: {len(held_out)} of {len(records) + len(held_out)} training "
                f"examples held out (valid_fraction {cfg.valid_fraction}, at least "
                f"{HOLDOUT_MIN}, seed {cfg.seed}); they choose best/")  # fmt: skip
        examples, report = encode_records(
            records, tok, cfg.max_source_length, cfg.max_target_length, cfg.spell_prompts,
            cfg.seed,
        )  # fmt: skip
        spelled = f"; {cfg.spell_prompts:.0%} of prompt pieces spelled" if cfg.spell_prompts else ""
        log(f"train data: {report}{spelled}")
        valid = []
        if held_out or cfg.valid_data:
            valid, report = encode_records(
                held_out or read_records(cfg.valid_data), tok, cfg.max_source_length,
                cfg.max_target_length,
            )  # fmt: skip
            log(f"validation data: {report}")
        tasks = [records[e.index].meta.get("task", "?") for e in examples]
        return (lambda epoch: examples), valid, tasks
    documents = [tok.encode(doc) for path in cfg.data for doc in read_documents(path)]
    log(f"pretraining corpus: {len(documents)} documents, {sum(map(len, documents))} tokens")
    valid = span_examples(documents[:200], tok, cfg, epoch=-1)
    return (lambda epoch: span_examples(documents, tok, cfg, epoch)), valid, None


def task_mixer(examples: list[EncodedExample], tasks: list[str] | None, cfg: TrainConfig,
               d: Distributed, log) -> TaskMixer:  # fmt: skip
    """The batch stream of mix_tasks_every (minitune/data/mixing.py): tasks drawn by their loss
    on a few held-out training examples each, which are never trained on."""
    if tasks is None:
        raise RunError("train.mix_tasks_every mixes the tasks of instruction data; span "
                       "pretraining has none: set it to 0")  # fmt: skip
    window = cfg.bucket_batches if cfg.length_bucketing else 1
    mixer = TaskMixer(examples, tasks, cfg.batch_size * d.world_size, window, cfg.seed)
    log(f"task mixing: every {cfg.mix_tasks_every} steps, {len(mixer.probe)} tasks weighted "
        f"by their loss on {PROBE_SIZE} held-out training examples each (floor {FLOOR} x the "
        "mean)")  # fmt: skip
    return mixer


def remix(run: Run, state: TrainState) -> None:
    """Set the mixer's task weights from each task's loss on its held-out slice, and log them."""
    cfg = run.cfg
    losses = {task: validation_loss(run.wrapped, part, run.tok.pad_id, cfg.batch_size,
                                    run.device, run.autocast, run.d)
              for task, part in run.mixer.probe.items()}  # fmt: skip
    weights = run.mixer.weights = task_weights(losses, FLOOR)
    run.metrics.write({"step": state.step,
                       "task_loss": {t: round(v, 4) for t, v in losses.items()},
                       "task_weight": {t: round(w, 4) for t, w in weights.items()}})  # fmt: skip


def resume_from(last: Path, run: Run, state: TrainState) -> None:
    """Load last/ into the model, the optimizer, the GradScaler, `state` and the random
    generators, so that the run continues exactly as if it had never stopped."""
    d = run.d
    if d.is_main:
        recover(last)  # a crash in the middle of a save leaves last.tmp or last.old
        truncate_metrics(run.metrics.path, load_trainer_state(last)["step"])  # redo later rows
    d.barrier()
    resumed, info = load_model(last, "cpu")  # a CPU copy, loaded into the model below
    check_resumable(last, info, run.model, run.tok)
    trainer = load_trainer_state(last)
    if len(trainer["rng"]) != d.world_size:
        raise RunError(f"{last} was saved by {len(trainer['rng'])} process(es); resume it "
                       f"with as many (this run has {d.world_size})")  # fmt: skip
    load_full_state(run.model, run.optimizer, resumed.state_dict(), trainer["optimizer"], d)
    run.scaler.load_state_dict(trainer["scaler"])
    state.load_state_dict(trainer)
    if run.mixer is not None:
        if "mixer" not in trainer:
            raise RunError(f"{last} was trained without mix_tasks_every; resume it without")
        run.mixer.load_state_dict(trainer["mixer"])
    set_rng_states(state.rng[d.rank])
    run.log(f"resumed from {last} at step {state.step}")


def packed_lengths(cfg: TrainConfig) -> tuple[int, int] | None:
    """A packed row's (source, target) positions, or None when the run pads its batches."""
    if not cfg.packing:
        return None
    return (cfg.packed_source_length or cfg.max_source_length,
            cfg.packed_target_length or cfg.max_target_length)  # fmt: skip


def next_micro_batches(
    stream, state: TrainState, grad_accum: int, pad_id: int, d: Distributed, device,
    packed: tuple[int, int] | None = None, rows: int = 0,
) -> list[dict]:  # fmt: skip
    """The `grad_accum` micro-batches of one step, this process's share of each global batch;
    moves `state` (epoch, index) past them. packed = (S, T): the stream's batches are rows of
    examples, collated to `rows` rows of S and T positions (a fixed shape)."""
    micro = []
    for _ in range(grad_accum):
        epoch, i, batch_examples = next(stream)
        # an epoch's last batch too small to give every process an example: skip it (a packed
        # batch never is: a process without a row gets empty rows, which add nothing)
        while not packed and len(batch_examples) < d.world_size:
            epoch, i, batch_examples = next(stream)
        state.epoch, state.index = epoch, i + 1  # where to continue after a resume
        n = len(batch_examples)  # this process's share of the global batch:
        mine = batch_examples[d.rank * n // d.world_size : (d.rank + 1) * n // d.world_size]
        if packed:
            state.examples += sum(map(len, batch_examples))
            batch = collate_packed(mine, pad_id, *packed, n_rows=rows)
        else:
            state.examples += n
            batch = collate(mine, pad_id)
        if device.type == "cuda":  # page-locked memory: the copy to the GPU overlaps
            batch = {k: v.pin_memory() for k, v in batch.items()}
        micro.append(batch)
    return micro


def skip_or_stop(result: StepResult, run: Run, state: TrainState) -> None:
    """The NaN guard, after a step whose loss or gradient was not finite (the weights did not
    change): with on_nonfinite="skip" count it and go on, else raise DivergenceError."""
    step = state.step + 1  # the step that failed
    what = f"loss {result.loss}" if not math.isfinite(result.loss) else "gradient norm inf"
    state.in_a_row += 1
    if run.cfg.on_nonfinite == "skip" and state.in_a_row < MAX_SKIPS_IN_A_ROW:
        run.scaler.update()  # a new step may unscale again (fp16)
        state.skipped += 1
        run.log(f"step {step}: {what}; skipped ({state.skipped} so far)")
        run.metrics.write({"step": step, "skipped_nonfinite": state.skipped})
        return
    kept = (f"{run.out / 'last'} holds step {state.saved_step}, the last good checkpoint"
            if (run.out / "last").exists() else "no checkpoint was saved yet")  # fmt: skip
    raise DivergenceError(
        f"{what} at step {step}"
        + (f" ({state.in_a_row} steps in a row)" if state.in_a_row > 1 else "")
        + f": stopped before updating the weights; {kept}. Try a lower train.lr, "
        "more warmup_steps, fp32, or --set train.on_nonfinite=skip"
    )


def log_row(run: Run, state: TrainState, bar, lr: float, grad_norm: torch.Tensor,
            speed: tuple[float, float], now: float, session_start: int) -> None:  # fmt: skip
    """A metrics row (mean loss since the last row), and the progress bar's numbers. `speed`:
    real tokens (source + target, no padding) and examples per second since the last row."""
    cfg = run.cfg
    row = {"step": state.step, "loss": sum(state.losses) / len(state.losses), "lr": lr,
           "grad_norm": round(float(grad_norm), 4),  # this step's, before clipping
           "tokens_per_s": round(speed[0]), "examples_per_s": round(speed[1], 1),
           "epoch": state.epoch, "examples": state.examples,
           "elapsed_s": round(state.seconds(now), 1)}  # fmt: skip
    run.metrics.write(row)
    bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}", gnorm=f"{row['grad_norm']:.2f}",
                    ex_s=row["examples_per_s"], tok_s=row["tokens_per_s"])  # fmt: skip
    if cfg.max_minutes:  # the bar's end (and ETA) is the clock's, if that comes first
        seconds_left = cfg.max_minutes * 60 - row["elapsed_s"]
        bar.total = steps_by_deadline(state.step, cfg.max_steps, state.step - session_start,
                                      now - state.started, seconds_left)  # fmt: skip
        bar.refresh()
    state.losses = []


def evaluate(run: Run, state: TrainState, valid: list[EncodedExample]) -> None:
    """Validation loss now; keep the checkpoint as best/ if it is the lowest so far."""
    state.last_eval_step = state.step
    valid_loss = validation_loss(run.wrapped, valid, run.tok.pad_id, run.cfg.batch_size,
                                 run.device, run.autocast, run.d)  # fmt: skip
    run.metrics.write({"step": state.step, "valid_loss": valid_loss, "examples": state.examples,
                       "elapsed_s": round(state.seconds(), 1)})  # fmt: skip
    run.log(f"step {state.step}: validation loss {valid_loss:.4f}")
    if valid_loss < state.best_valid_loss:
        state.best_valid_loss = valid_loss
        save(run, state, "best", with_trainer=False)


def save(run: Run, state: TrainState, name: str, with_trainer: bool) -> None:
    """Save OUT/name/: the weights and run info, and (with_trainer) the optimizer, GradScaler and
    `state` for an exact --resume. Every process takes part (FSDP gathers the shards)."""
    d, best = run.d, state.best_valid_loss
    info = {"train": run.cfg.to_dict(), "step": state.step, "examples_seen": state.examples,
            "tokenizer_sha": run.tok.fingerprint(),
            "best_valid_loss": best if math.isfinite(best) else None,
            "seed": run.cfg.seed}  # fmt: skip
    if run.base is not None:
        info["base"] = run.base  # an adapter checkpoint names (and hashes) its base
    model_state, optim_state = full_state(run.model, run.optimizer if with_trainer else None, d)
    state.rng = d.gather(get_rng_states())  # one entry per process
    trainer = None
    if with_trainer:
        trainer = {"optimizer": optim_state, "scaler": run.scaler.state_dict(),
                   **state.state_dict()}  # fmt: skip
        if run.mixer is not None:
            trainer["mixer"] = run.mixer.state_dict()
    if d.is_main:
        with deferred_interrupts():  # Ctrl-C waits until the folder is complete
            save_checkpoint(run.out / name, run.model, info, run.tokenizer_file, trainer,
                            model_state)  # fmt: skip
    d.barrier()  # nobody runs ahead of (or exits before) the save
    if name == "last":
        state.saved_step = state.step


def summary(state: TrainState, stop_reason: str, out: Path, minutes: float) -> dict:
    """What train() returns."""
    seconds = max(state.seconds(), 1e-9)  # training time, every session together
    return {"step": state.step, "examples": state.examples, "stop_reason": stop_reason,
            "best_valid_loss": state.best_valid_loss, "skipped": state.skipped,
            "minutes": minutes, "examples_per_s": state.examples / seconds,
            "tokens_per_s": state.tokens / seconds, "out": str(out)}  # fmt: skip


class MetricsLog:
    """OUT/metrics.jsonl, one JSON row per line (process 0 writes; the others do nothing), and
    the same numbers to TensorBoard when a writer is given."""

    def __init__(self, path: Path, is_main: bool, board=None):
        self.path, self.is_main, self.board = path, is_main, board

    def write(self, row: dict) -> None:
        if not self.is_main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.board is not None:
            for key, value in row.items():
                if key != "step":
                    self.board.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


# ---- helpers of the loop: folders, resume checks, random states, interrupts -------------------


def fresh_training_file(
    out: Path, per_task: int, d: Distributed, log=print, shared: bool = False
) -> Path:
    """OUT/fresh_train.jsonl: `per_task` fresh examples of every seen task of the shipped suite
    (and, with `shared`, of every training-only family), by
    minitune.data.tasks.write_training_set: none shares an input or a prompt with an evaluation
    example. Deterministic, so a resumed run draws the same file; process 0 writes it."""
    from minitune.data.tasks import write_training_set

    path = out / "fresh_train.jsonl"
    if d.is_main:
        start = time.time()
        counts = write_training_set(path, per_task, seed=0, shared=shared)
        log(f"fresh training data: {sum(counts.values()):,} examples of {len(counts)} tasks "
            f"drawn in {time.time() - start:.0f} s into {path}")  # fmt: skip
    d.barrier()
    return path


def steps_by_deadline(step: int, max_steps: int, steps_done: int, seconds: float,
                      seconds_left: float) -> int:  # fmt: skip
    """Where the run will end: max_steps, or the step the clock (max_minutes) stops it at, at
    the speed so far. Example: step 100, 50 steps in 10 s, 30 s left -> 250 (if below max)."""
    if steps_done <= 0 or seconds <= 0:
        return max_steps
    return max(step, min(max_steps, step + int(steps_done / seconds * max(seconds_left, 0))))


def tensorboard_writer(folder: Path):
    """A TensorBoard SummaryWriter for --report-to tensorboard (the optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RunError(
            "--report-to tensorboard needs the tensorboard package: pip install "
            "'minitune[tensorboard]' (or pip install tensorboard)"
        ) from None
    return SummaryWriter(str(folder))


def check_writable(out: Path) -> None:
    """Create the run folder and write a probe file, or raise RunError saying why not."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".minitune-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise RunError(f"cannot write to the output folder {out}: {err.strerror or err}") from None


def check_resumable(last: Path, info: dict, model, tok: Tokenizer) -> None:
    """Refuse to resume a run with another tokenizer or another model shape."""
    if info.get("tokenizer_sha") and info["tokenizer_sha"] != tok.fingerprint():
        raise RunError(
            f"{last} was trained with another tokenizer (sha {info['tokenizer_sha']}, its copy "
            f"is {last / 'tokenizer.model'}); this run's tokenizer {tok.path} has sha "
            f"{tok.fingerprint()}. Resume with the same tokenizer, or start a new --out"
        )
    saved, current = info["model"], model.config.to_dict()
    changed = sorted(k for k in current if saved.get(k, current[k]) != current[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved[k]!r} -> {current[k]!r}" for k in changed)
        raise RunError(f"{last} holds a model with other settings ({diffs}); "
                       "resume with the run's own config, or start a new --out")  # fmt: skip


def truncate_metrics(metrics_file: Path, step: int) -> None:
    """Keep the metrics rows up to `step` (later ones were written after the checkpoint)."""
    if not metrics_file.exists():
        return
    rows = [line for line in metrics_file.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["step"] <= step]
    metrics_file.write_text("".join(line + "\n" for line in kept))


def get_rng_states() -> dict:
    """Python, NumPy, torch and CUDA random states as plain data (safe to load)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(), "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }  # fmt: skip


def set_rng_states(states: dict) -> None:
    random.setstate(_as_tuples(states["python"]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuples(x):
    """random.setstate wants the nested tuples that a safe load may return as lists."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


@contextlib.contextmanager
def deferred_interrupts():
    """Hold Ctrl-C until the block ends (a checkpoint being written), then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
