"""The training loop, top to bottom: instruction tuning (or span-corruption pretraining).

    model_cfg, train_cfg = load_run_config("laptop")   # minitune/run/settings.py
    summary = train(model_cfg, train_cfg)   # writes OUT/{best,last}/, metrics.jsonl, loss.png

One optimizer step (`train_step(model, optimizer, micro_batches, lr, setup)`):
  1. take `grad_accum` micro-batches and count their target tokens N (padding excluded);
  2. for each micro-batch: logits = model(x, shift_right(y)); loss = Σ -log p(y_t) / N; backward
     (so the accumulated gradient is that of the mean over all N tokens, as one big batch);
  3. clip the gradient norm, set the learning rate from the schedule, step, zero the gradients.
What every step shares (device, precision and fp16's scaler, clipping, processes) is one
`StepSetup`, made once before the loop.

Every `eval_every` steps the validation loss is measured and the best checkpoint kept; every
`save_every` steps last/ is saved (what --resume continues from, exactly: weights, optimizer,
random states, data position, and the loss log). Stops at `max_steps` or `max_minutes`, or
when told to: SIGTERM, SIGINT (Ctrl-C), SIGHUP or SIGUSR1, received by any process, is noted and
obeyed between two steps, where every process stops and last/ is saved (stop_signals.py). The
loop owns the run's state: a step's data position and counts are taken into it once the step
is done.
A NaN or infinite loss stops the run before the weights change (or, with
on_nonfinite="skip", skips that step and counts it).

This file is the loop and the step; the shell around them has its own files: the data and the
batch stream (data/stream.py), and in run/: the device and precision (device.py), the run's
state, saving and exact resume (state.py), metrics.jsonl and the loss picture (metrics_log.py),
the errors a user can fix (errors.py), DDP/FSDP (distributed.py).
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from minitune.config import ModelConfig, TrainConfig
from minitune.data.batching import EncodedExample, collate
from minitune.data.mixing import FLOOR, task_weights
from minitune.data.stream import (
    batch_stream,
    load_data,
    next_micro_batches,
    packed_lengths,
    task_mixer,
)
from minitune.lora import add_lora, count_parameters
from minitune.loss import IGNORE_INDEX, token_nll_sum
from minitune.model import Segments, Seq2SeqTransformer, shift_right
from minitune.optim import build_optimizer, lr_factor
from minitune.run.checkpoint import load_pretrained, weights_fingerprint
from minitune.run.device import fused_kernels_on, pick_device, precision_context, resolve_precision
from minitune.run.distributed import Distributed, no_sync, teardown, unwrap, wrap
from minitune.run.distributed import setup as join_processes
from minitune.run.errors import DivergenceError, RunError
from minitune.run.metrics_log import open_metrics_log, plot_losses, steps_by_deadline
from minitune.run.paths import find_shipped
from minitune.run.state import Run, StepSetup, TrainState, check_writable, resume_from, save
from minitune.run.stop_signals import StopSignals
from minitune.tokenizer import Tokenizer

if TYPE_CHECKING:
    from minitune.run.report import RunRecord

DEFAULT_TOKENIZER = "tokenizer/minitune.model"
MAX_SKIPS_IN_A_ROW = 20  # with on_nonfinite="skip", this many bad steps in a row still stop


class StepResult(NamedTuple):
    """What one optimizer step reports: its loss (mean per target token), the gradient norm
    before clipping, the tokens processed, and whether the weights were updated."""

    loss: float
    grad_norm: torch.Tensor | None
    tokens: int
    updated: bool


def train_step(
    model, optimizer, micro_batches: list[dict], lr: float, setup: StepSetup
) -> StepResult:
    """One optimizer step: forward, loss and backward of each micro-batch, clip, step.

    If the loss or the gradient norm is not a finite number, the gradient is thrown away and the
    weights are left as they were (`updated` is False); the caller decides to stop or go on."""
    # 1.-3. forward, loss, backward (accumulated over the micro-batches)
    loss, tokens = forward_backward(model, micro_batches, setup)
    # 4. clip: g <- g · min(1, clip_grad / ||g||)  (unscaled first, if fp16 scaled the loss)
    setup.scaler.unscale_(optimizer)
    max_norm = setup.clip_grad or math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(unwrap(model).parameters(), max_norm)
    if hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor (PyTorch's sharded tensor)
        grad_norm = grad_norm.full_tensor()
    # the NaN guard (fp16's scaler skips a step with an inf gradient itself, and lowers its scale)
    if not math.isfinite(loss) or (not setup.scaler.is_enabled() and not grad_norm.isfinite()):
        optimizer.zero_grad(set_to_none=True)
        return StepResult(loss, grad_norm, tokens, updated=False)
    # 5. step with the schedule's learning rate, then forget the gradient (a group with its own
    #    peak rate, Muon's matrices at muon_lr, holds it as "lr_scale" = its peak / train.lr)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    setup.scaler.step(optimizer)  # optimizer.step(), unless fp16 found an inf
    setup.scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss, grad_norm, tokens, updated=True)


def forward_backward(model, micro_batches: list[dict], setup: StepSetup) -> tuple[float, int]:
    """Steps 1-3 of `train_step`: the forward, loss and backward of each micro-batch, the
    gradient left in each parameter's .grad. Returns the loss (mean per target token, over
    every micro-batch and process) and the number of tokens processed (source and target).

    Each micro-batch's summed token loss is divided by N, the number of target tokens of all
    micro-batches together (of all processes, when distributed), so the gradient equals that of
    one big batch, whatever the padding and however the batch is split."""
    dist, device = setup.dist, setup.device
    n_tokens = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in micro_batches)
    (n_tokens,) = dist.sum([n_tokens])  # N, over every process
    loss, processed = 0.0, 0
    for i, batch in enumerate(micro_batches):
        x, y, mask, segments = to_device(batch, device)
        start = unwrap(model).config.decoder_start_id
        targets = None if segments is None else segments.target  # packed: restart each example
        decoder_input_ids = shift_right(y, start, setup.pad_id, targets)
        with no_sync(model, last_micro_batch=i == len(micro_batches) - 1):  # DDP: sync at last
            with setup.autocast:  # the forward in low precision; the backward follows its dtypes
                # 1. forward: a distribution over the vocabulary at every target position
                logits = model(x, decoder_input_ids, mask, segments)  # (B, T, V)
                # 2. loss: Σ_t -log p(y_t) over this micro-batch's target tokens
                loss_sum, _ = token_nll_sum(logits, y, setup.label_smoothing)
            # 3. backward, of loss_sum / N (DDP/FSDP average the gradients over the processes;
            #    × world_size makes that a sum)
            setup.scaler.scale(loss_sum / n_tokens * dist.world_size).backward()
        loss += loss_sum.item() / n_tokens
        source_tokens = mask if segments is None else segments.source != 0
        processed += int(source_tokens.sum()) + int((y != IGNORE_INDEX).sum())
    loss, processed = dist.sum([loss, processed])
    return loss, int(processed)


def to_device(
    batch: dict, device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, Segments | None]:
    """A micro-batch's source ids x (B, S), labels y (B, T) and either its source padding mask
    (padded rows) or its Segments (packed rows, minitune/data/packing.py), on `device`."""
    x, y = (batch[k].to(device, non_blocking=True) for k in ("input_ids", "labels"))
    if "source_segments" not in batch:
        return x, y, batch["attention_mask"].to(device, non_blocking=True), None
    source, target = (
        batch[k].to(device, non_blocking=True) for k in ("source_segments", "target_segments")
    )
    return x, y, None, Segments(source, target)


@torch.no_grad()
def validation_loss(model, examples, batch_size: int, setup: StepSetup) -> float:
    """Mean per-token loss over `examples` (teacher forcing), dropout off, on the steps' device,
    precision and processes (`setup`). Distributed: each process takes every world_size-th
    example and the sums are added up."""
    dist, pad_id = setup.dist, setup.pad_id
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    mine = examples[dist.rank :: dist.world_size]
    # every process runs as many batches as the largest share (FSDP's forwards are collective)
    n_batches = math.ceil(math.ceil(len(examples) / dist.world_size) / batch_size)
    for i in range(n_batches):
        part = mine[i * batch_size : (i + 1) * batch_size]
        batch = collate(part or examples[:1], pad_id)  # an empty share: a dummy, not counted
        x, mask, y = (batch[k].to(setup.device) for k in ("input_ids", "attention_mask", "labels"))
        with setup.autocast:
            logits = model(x, shift_right(y, unwrap(model).config.decoder_start_id, pad_id), mask)
        loss_sum, n = token_nll_sum(logits, y)
        if part:
            total, count = total + loss_sum.item(), count + n.item()
    model.train(was_training)
    total, count = dist.sum([total, count])
    return total / max(count, 1)


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    resume: bool = False,
    log=tqdm.write,
    progress: bool = True,
    record: RunRecord | None = None,
) -> dict:
    """Run (or resume) training; returns a summary. See the module docstring. `record` (the
    commands give one, minitune/run/report.py) keeps every log line, and at the end (also of a
    diverged or signalled run) writes OUT/run.json and the run's page, OUT/report.html."""
    with StopSignals() as stop:  # from here on a stop signal is noted, and obeyed between steps
        # ---- 1. processes, device, seeds, output folder -----------------------------------------
        dist, device = start(train_cfg)
        if record is not None:
            log = record.log  # every line printed and kept for the run's record (run.json)
        if not dist.is_main:
            log, progress = (lambda *a: None), False  # rank 0 speaks for all
        out = Path(train_cfg.out)
        if dist.is_main:
            check_writable(out)  # before any work: a run that cannot save is a run lost

        # ---- 2. model, tokenizer, precision ------------------------------------------------------
        model, tokenizer_file, base = build_model(model_cfg, train_cfg, log)
        width = (model.config.d_model, model.config.d_ff)
        # "auto": bf16 if its matmuls time faster here than fp32's, else fp32
        precision, why = resolve_precision(train_cfg.precision, device, width, dist)
        autocast, use_scaler = precision_context(precision, device)
        tok = checked_tokenizer(tokenizer_file, model)  # ids that fit the embedding
        model = model.to(device).train()
        model.set_activation_checkpointing(train_cfg.activation_checkpointing)
        # attention's fused branch, or the explicit steps
        model.use_fused_kernels(fused_kernels_on(train_cfg.fused_kernels, device))
        log(model_line(model, device, precision, why, dist))  # "model: 0.91M parameters on cpu"
        facts = {"device": str(device), "precision": precision, "precision_why": why}
        facts |= {"threads": torch.get_num_threads(), "processes": dist.world_size}
        wrapped = wrap(model, dist, device)  # DDP/FSDP around the model, or the model itself
        if train_cfg.compile:
            wrapped = torch.compile(wrapped)  # saved from `model`: no "_orig_mod." names
        if dist.enabled:
            torch.manual_seed(train_cfg.seed + dist.rank)  # dropout differs between processes

        # ---- 3. data (every file read and checked whole before the first step) -----------------
        make_epoch, valid, tasks = load_data(train_cfg, tok, out, dist, log)
        mixer = None  # mix_tasks_every: batches drawn by task loss (minitune/data/mixing.py)
        if train_cfg.mix_tasks_every:
            mixer = task_mixer(make_epoch(0), tasks, train_cfg, dist, log)

        # ---- 4. optimizer, metrics log, and the state to resume ----------------------------------
        optimizer = build_optimizer(model, train_cfg)  # after FSDP has sharded the parameters
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        setup = StepSetup(
            device,
            tok.pad_id,
            autocast,
            scaler,
            train_cfg.clip_grad,
            train_cfg.label_smoothing,
            dist,
        )
        metrics = open_metrics_log(out, train_cfg.report_to, dist.is_main)  # OUT/metrics.jsonl
        run = Run(
            train_cfg,
            model,
            wrapped,
            optimizer,
            setup,
            tok,
            tokenizer_file,
            log,
            metrics,
            base,
            mixer,
        )
        state = TrainState()
        if resume:
            resume_from(out / "last", run, state)
        elif run.metrics.path.exists() and dist.is_main:
            run.metrics.path.unlink()  # a fresh run starts a fresh log

        # ---- 5. the loop -------------------------------------------------------------------------
        # one stream of global batches (batch_size per process), the same in every process
        window = train_cfg.bucket_batches if train_cfg.length_bucketing else 1
        packed = packed_lengths(train_cfg)  # (S, T) of a packed row, or None: padded batches
        stream = mixer or batch_stream(
            make_epoch,
            train_cfg.batch_size * dist.world_size,
            train_cfg.seed,
            state.epoch,
            state.index,
            window,
            packed,
            log,
        )
        bar = tqdm(
            total=train_cfg.max_steps, initial=state.step, disable=not progress, dynamic_ncols=True
        )
        state.started, session_start = time.time(), state.step
        last_row = (state.tokens, state.examples, time.time())  # for the speed since the last row
        stop_reason = "max_steps"
        try:
            while state.step < train_cfg.max_steps:
                if stop.agreed(dist):  # a stop signal, in any process: every process stops here
                    stop_reason = "signal"
                    break
                if train_cfg.max_minutes and state.seconds() > train_cfg.max_minutes * 60:
                    stop_reason = "max_minutes"
                    break
                micro, drawn = next_micro_batches(
                    stream,
                    train_cfg.grad_accum,
                    tok.pad_id,
                    dist,
                    device,
                    packed,
                    train_cfg.batch_size,
                )
                fraction = (
                    state.seconds() / (60 * train_cfg.max_minutes) if train_cfg.max_minutes else 0.0
                )
                # the schedule's learning rate: it ends with the steps or with the minutes
                lr = train_cfg.lr * lr_factor(state.step, train_cfg, fraction)
                # forward, loss, backward, clip, step (or not, if the loss is not a finite number)
                result = train_step(wrapped, optimizer, micro, lr, setup)
                # the step is done (taken or skipped): its batches are used, its tokens counted
                state.epoch, state.index = drawn.epoch, drawn.index  # where --resume continues
                state.examples += drawn.examples
                state.tokens += result.tokens
                if not result.updated:
                    skip_or_stop(result, run, state)  # raises DivergenceError unless skipping
                    continue
                state.in_a_row = 0
                state.step += 1
                state.losses.append(result.loss)

                # logging, evaluation, checkpoints
                if state.step % train_cfg.log_every == 0 or state.step == train_cfg.max_steps:
                    last_row = log_row(
                        run, state, bar, lr, result.grad_norm, last_row, session_start
                    )
                bar.update(1)
                if mixer and state.step % train_cfg.mix_tasks_every == 0:
                    remix(run, state)  # the next batches follow each task's loss
                if valid and (
                    state.step % train_cfg.eval_every == 0 or state.step == train_cfg.max_steps
                ):
                    eval_and_keep_best(run, state, valid)
                if state.step % train_cfg.save_every == 0 and state.step < train_cfg.max_steps:
                    save(run, state, "last", with_trainer=True)  # what a crash or --resume uses
        except DivergenceError as err:  # the NaN guard stopped the run: record it, then raise
            if record is not None:
                record.end(train_cfg, error=f"diverged: {err}")
            raise
        finally:
            bar.close()
        if stop_reason == "signal":
            result = stop_here(run, state, stop, facts)
            if record is not None:
                record.end(train_cfg, result)  # run.json and the page, quickly (no new picture)
            return result

        # ---- 6. the end: a last evaluation, last/ (and best/), the loss picture ------------------
        if valid and state.last_eval_step != state.step:
            eval_and_keep_best(run, state, valid)  # stopped by the clock between two evaluations
        save(run, state, "last", with_trainer=True)
        if not valid:
            save(run, state, "best", with_trainer=False)  # nothing to choose by: best is last
        if dist.is_main:
            log(plot_losses(run.metrics.path, out / "loss.png"))
            run.metrics.close()
        signum = stop.agreed(dist)  # one that came after the last step (the pipeline stops on it)
        teardown(dist)
        result = summary(state, stop_reason, out, state.seconds() / 60, facts, signal=signum)
        if record is not None:
            record.end(train_cfg, result)  # OUT/run.json and the run's page, OUT/report.html
        return result


# ---- the pieces of train(), in the order it calls them -----------------------------------------


def start(train_cfg: TrainConfig) -> tuple[Distributed, torch.device]:
    """Join torchrun's processes (if any), pick the device, seed every random generator."""
    # one process, or one of torchrun's
    dist, device_name = join_processes(train_cfg.device, train_cfg.fsdp)
    device = pick_device(device_name)
    if device.type == "cuda":  # TensorFloat-32 matmuls: ~8x the fp32 speed, 10-bit mantissa
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = train_cfg.tf32
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    random.seed(train_cfg.seed)
    np.random.seed(train_cfg.seed)
    torch.manual_seed(train_cfg.seed)  # also seeds CUDA; the same initial weights in every process
    return dist, device


def build_model(
    model_cfg: ModelConfig, train_cfg: TrainConfig, log
) -> tuple[Seq2SeqTransformer, Path, dict | None]:
    """The model (from --init, or new), its tokenizer file, and (LoRA) the base it adapts."""
    if train_cfg.init:  # a minitune checkpoint or a Hugging Face T5 / Flan-T5 folder
        model, tokenizer_file, init_info = load_pretrained(train_cfg.init)  # its own config
        log(f"initialised from {train_cfg.init} (step {init_info.get('step')})")
        if (
            train_cfg.tokenizer
            and Tokenizer(train_cfg.tokenizer).fingerprint()
            != Tokenizer(tokenizer_file).fingerprint()
        ):
            raise RunError(
                f"train.tokenizer={train_cfg.tokenizer} is not the tokenizer {train_cfg.init} was "
                f"trained with ({tokenizer_file}); its ids would mean other words. Leave "
                "train.tokenizer unset to use the checkpoint's own"
            )
    else:
        model = Seq2SeqTransformer(model_cfg)
        tokenizer_file = Path(train_cfg.tokenizer or find_shipped(DEFAULT_TOKENIZER))
    base = None
    if train_cfg.lora_rank:  # freeze the model, train low-rank adapters (minitune/lora.py)
        add_lora(model, train_cfg.lora_settings())
        trainable, total = count_parameters(model)
        log(
            f"LoRA rank {train_cfg.lora_rank} on {'/'.join(train_cfg.lora_targets)} "
            f"({', '.join(train_cfg.lora_where)}): {trainable:,} trainable of {total:,} parameters "
            f"({100 * trainable / total:.2f}%)"
        )
        base = {
            "path": str(Path(train_cfg.init).resolve()),
            "sha": weights_fingerprint(train_cfg.init),
        }
    if (
        train_cfg.precision == "fp16" and not model.config.scale_attention
    ):  # (auto never picks fp16)
        raise RunError(
            "precision 'fp16' with a T5-style model (scale_attention=False): T5's activations "
            "overflow float16's range (max 65504); use 'bf16' or 'fp32'"
        )
    return model, tokenizer_file, base


def model_line(
    model: Seq2SeqTransformer, device: torch.device, precision: str, why: str, dist: Distributed
) -> str:
    """The run's first line about the model: its size, where it runs, in which precision (and
    why, when "auto" chose it), with fused kernels or the explicit arithmetic, and how many
    processes share it."""
    processes = (
        f", {dist.world_size} processes ({'FSDP' if dist.fsdp else 'DDP'})" if dist.enabled else ""
    )
    why = f" ({why})" if why else ""
    kernels = "fused kernels" if model.fused_kernels else "explicit arithmetic (no fused kernels)"
    return (
        f"model: {model.num_parameters() / 1e6:.2f}M parameters on {device}, {precision}{why}, "
        f"{kernels}{processes}"
    )


def checked_tokenizer(tokenizer_file: Path, model: Seq2SeqTransformer) -> Tokenizer:
    """The run's tokenizer, refused if it has more ids than the model has embeddings."""
    tok = Tokenizer(tokenizer_file)
    if tok.vocab_size > model.config.vocab_size:
        raise RunError(
            f"the tokenizer {tokenizer_file} has {tok.vocab_size} ids but the model only "
            f"{model.config.vocab_size}; set model.vocab_size to at least the tokenizer's size"
        )
    return tok


def skip_or_stop(result: StepResult, run: Run, state: TrainState) -> None:
    """The NaN guard, after a step whose loss or gradient was not finite (the weights did not
    change): with on_nonfinite="skip" count it and go on, else raise DivergenceError."""
    step = state.step + 1  # the step that failed
    what = f"loss {result.loss}" if not math.isfinite(result.loss) else "gradient norm inf"
    state.in_a_row += 1
    if run.train_cfg.on_nonfinite == "skip" and state.in_a_row < MAX_SKIPS_IN_A_ROW:
        run.setup.scaler.update()  # a new step may unscale again (fp16)
        state.skipped += 1
        run.log(f"step {step}: {what}; skipped ({state.skipped} so far)")
        run.metrics.write({"step": step, "skipped_nonfinite": state.skipped})
        return
    kept = (
        f"{run.out / 'last'} holds step {state.saved_step}, the last good checkpoint"
        if (run.out / "last").exists()
        else "no checkpoint was saved yet"
    )
    raise DivergenceError(
        f"{what} at step {step}"
        + (f" ({state.in_a_row} steps in a row)" if state.in_a_row > 1 else "")
        + f": stopped before updating the weights; {kept}. Try a lower train.lr, "
        "more warmup_steps, fp32, or --set train.on_nonfinite=skip"
    )


def log_row(
    run: Run,
    state: TrainState,
    bar,
    lr: float,
    grad_norm: torch.Tensor,
    last_row: tuple[int, int, float],
    session_start: int,
) -> tuple[int, int, float]:
    """A metrics row (mean loss since the last row), and the progress bar's numbers. `last_row`:
    (state.tokens, state.examples, time) at the last row, for the speed since then: real tokens
    (source + target, no padding) and examples per second. Returns the same for this row."""
    train_cfg, now = run.train_cfg, time.time()
    seconds = max(now - last_row[2], 1e-9)
    row = {
        "step": state.step,
        "loss": sum(state.losses) / len(state.losses),
        "lr": lr,
        "grad_norm": round(float(grad_norm), 4),  # this step's, before clipping
        "tokens_per_s": round((state.tokens - last_row[0]) / seconds),
        "examples_per_s": round((state.examples - last_row[1]) / seconds, 1),
        "epoch": state.epoch,
        "examples": state.examples,
        "elapsed_s": round(state.seconds(now), 1),
    }
    run.metrics.write(row)
    bar.set_postfix(
        loss=f"{row['loss']:.3f}",
        lr=f"{lr:.2e}",
        gnorm=f"{row['grad_norm']:.2f}",
        ex_s=row["examples_per_s"],
        tok_s=row["tokens_per_s"],
    )
    if train_cfg.max_minutes:  # the bar's end (and ETA) is the clock's, if that comes first
        seconds_left = train_cfg.max_minutes * 60 - row["elapsed_s"]
        bar.total = steps_by_deadline(
            state.step,
            train_cfg.max_steps,
            state.step - session_start,
            now - state.started,
            seconds_left,
        )
        bar.refresh()
    state.losses = []
    return state.tokens, state.examples, now


def remix(run: Run, state: TrainState) -> None:
    """Set the mixer's task weights from each task's loss on its held-out slice, and log them."""
    train_cfg = run.train_cfg
    losses = {
        task: validation_loss(run.wrapped, part, train_cfg.batch_size, run.setup)
        for task, part in run.mixer.probe.items()
    }
    weights = run.mixer.weights = task_weights(losses, FLOOR)
    run.metrics.write(
        {
            "step": state.step,
            "task_loss": {t: round(v, 4) for t, v in losses.items()},
            "task_weight": {t: round(w, 4) for t, w in weights.items()},
        }
    )


def eval_and_keep_best(run: Run, state: TrainState, valid: list[EncodedExample]) -> None:
    """Validation loss now; keep the checkpoint as best/ if it is the lowest so far."""
    state.last_eval_step = state.step
    valid_loss = validation_loss(run.wrapped, valid, run.train_cfg.batch_size, run.setup)
    run.metrics.write(
        {
            "step": state.step,
            "valid_loss": valid_loss,
            "examples": state.examples,
            "elapsed_s": round(state.seconds(), 1),
        }
    )
    run.log(f"step {state.step}: validation loss {valid_loss:.4f}")
    if run.train_cfg.score_valid:
        score_sample(run, state, valid)  # exact match now, for the report's curve
    if valid_loss < state.best_valid_loss:
        state.best_valid_loss = valid_loss
        save(run, state, "best", with_trainer=False)


@torch.no_grad()
def score_sample(run: Run, state: TrainState, valid: list[EncodedExample]) -> None:
    """Decode `score_valid` validation examples (greedy, spread evenly over the file) and log
    their exact match, so the report can draw exact match against minutes; the validation loss
    alone does not say when answers turn right. The first process decodes with the model
    itself (the others wait at the sum below); the seconds it took are left out of the clock
    (`state.started` moves forward by them in every process), so max_minutes still buys the
    same training."""
    from minitune.evaluate import exact_match

    dist, setup, started = run.setup.dist, run.setup, time.time()
    sample = valid[:: max(1, len(valid) // run.train_cfg.score_valid)][: run.train_cfg.score_valid]
    right = 0
    if dist.is_main:
        model = run.model  # unwrapped: generate is the model's own (DDP holds full weights)
        model.eval()
        for i in range(0, len(sample), run.train_cfg.batch_size):
            part = sample[i : i + run.train_cfg.batch_size]
            batch = collate(part, setup.pad_id)
            x, mask = (batch[k].to(setup.device) for k in ("input_ids", "attention_mask"))
            with setup.autocast:
                answers = model.generate(x, mask, max_new_tokens=run.train_cfg.max_target_length)
            for example, answer in zip(part, answers, strict=True):
                right += exact_match(run.tok.decode(answer), run.tok.decode(example.target))
        model.train()
    seconds, right = dist.sum([time.time() - started if dist.is_main else 0.0, right])
    state.started += seconds  # the clock (max_minutes) counts training, not this measurement
    run.metrics.write(
        {
            "step": state.step,
            "valid_exact_match": round(100 * right / len(sample), 2),
            "valid_scored": len(sample),
            "score_s": round(seconds, 2),
            "elapsed_s": round(state.seconds(), 1),
        }
    )


def stop_here(run: Run, state: TrainState, stop: StopSignals, facts: dict) -> dict:
    """Obey a stop signal, between two steps: save last/ (timed), unless it holds this step
    already (no step done yet, or the periodic save just wrote it), and leave. No last
    evaluation, no best/, no loss picture: a scheduler's grace period is short, and the resumed
    run writes them at its end."""
    dist, seconds = run.setup.dist, None
    if state.step > state.saved_step:
        began = time.time()
        save(run, state, "last", with_trainer=True)
        seconds = time.time() - began
    if dist.is_main:
        run.metrics.close()
    teardown(dist)
    minutes = state.seconds() / 60
    return summary(
        state, "signal", run.out, minutes, facts, signal=stop.signum, save_seconds=seconds
    )


def summary(
    state: TrainState,
    stop_reason: str,
    out: Path,
    minutes: float,
    facts: dict,
    signal: int = 0,
    save_seconds: float | None = None,
) -> dict:
    """What train() returns. stop_reason: "max_steps", "max_minutes" or "signal" (the loop
    obeyed `signal`; a signal after the last step is reported with the run's own reason);
    save_seconds: how long saving last/ took when stopping (None: nothing was saved); `facts`:
    where it ran (device, precision and why, threads, processes)."""
    seconds = max(state.seconds(), 1e-9)  # training time, every session together
    return {
        "step": state.step,
        "examples": state.examples,
        "stop_reason": stop_reason,
        "signal": signal,
        "save_seconds": save_seconds,
        "best_valid_loss": state.best_valid_loss,
        "skipped": state.skipped,
        "minutes": minutes,
        "examples_per_s": state.examples / seconds,
        "tokens_per_s": state.tokens / seconds,
        "out": str(out),
        **facts,
    }
