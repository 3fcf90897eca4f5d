"""The training loop, top to bottom: instruction tuning (or span-corruption pretraining).

    model_cfg, cfg = load_run_config("configs/laptop.toml")
    summary = train(model_cfg, cfg)           # writes cfg.out/{best,last}/, metrics.jsonl, loss.png

One optimizer step:
  1. take `grad_accum` micro-batches and count their target tokens N (padding excluded);
  2. for each micro-batch: logits = model(x, shift_right(y)); loss = Σ -log p(y_t) / N; backward
     (so the accumulated gradient is that of the mean over all N tokens, as one big batch);
  3. clip the gradient norm, set the learning rate from the schedule, step, zero the gradients.

Every `eval_every` steps the validation loss is measured; the best and the last checkpoints are
kept. Stops at `max_steps` or `max_minutes`; Ctrl-C saves the last checkpoint first.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from minitune.checkpoint import (
    load_model,
    load_pretrained,
    load_trainer_state,
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
from minitune.data.span_corruption import span_corrupt
from minitune.lora import add_lora, count_parameters
from minitune.loss import token_nll_sum
from minitune.model import Seq2SeqTransformer, shift_right
from minitune.optim import build_optimizer, lr_factor
from minitune.tokenizer import Tokenizer


def pick_device(name: str) -> torch.device:
    """ "auto" -> CUDA if present, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but no CUDA GPU is available")
    return torch.device(name)


def precision_context(precision: str, device: torch.device):
    """The autocast context for a precision (fp32: none) and whether a GradScaler is needed."""
    if precision == "fp32":
        return contextlib.nullcontext(), False
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype), precision == "fp16"


def span_examples(
    documents: list[list[int]], tok: Tokenizer, cfg: TrainConfig, epoch: int
) -> list[EncodedExample]:
    """Span-corruption examples for one epoch: chunks of each document, corrupted afresh."""
    rng = random.Random(f"span-{cfg.seed}-{epoch}")
    chunk = cfg.max_source_length - 1  # room for EOS; corruption only shortens the input
    examples = []
    for ids in documents:
        for start in range(0, len(ids), chunk):
            piece = ids[start : start + chunk]
            if len(piece) < 8:
                continue
            inputs, targets = span_corrupt(piece, tok.sentinel_ids, rng)
            targets = targets[: cfg.max_target_length - 1]
            examples.append(
                EncodedExample([*inputs, tok.eos_id], [*targets, tok.eos_id], len(examples))
            )
    return examples


def batch_stream(
    make_epoch, batch_size: int, seed: int, epoch: int = 0, index: int = 0, bucketing: bool = True
):
    """Endless (epoch, index, batch examples) in a fixed order; resumable at (epoch, index).

    With bucketing, batches hold examples of similar length (sorted within chunks of 50
    batches); without, batches are plain random draws (more padding, but mixed tasks)."""
    chunk = 50 if bucketing else 1
    while True:
        examples = make_epoch(epoch)
        lengths = [len(e.source) + len(e.target) for e in examples]
        batches = length_bucketed_batches(lengths, batch_size, seed * 1000 + epoch, chunk)
        for i in range(index, len(batches)):
            yield epoch, i, [examples[j] for j in batches[i]]
        epoch, index = epoch + 1, 0


def forward_backward(
    model, micro_batches: list[dict], pad_id: int, device, autocast, scaler=None,
    label_smoothing: float = 0.0,
) -> tuple[float, int]:  # fmt: skip
    """Accumulate the gradient of one optimizer step over its micro-batches.

    Each micro-batch's summed token loss is divided by N, the number of target tokens of all
    micro-batches together, so the gradient equals that of one big batch, whatever the padding.
    Returns the step's loss (mean per target token) and the number of tokens processed.
    """
    n_tokens = sum(int((b["labels"] != -100).sum()) for b in micro_batches)  # N
    step_loss, processed = 0.0, 0
    for b in micro_batches:
        x, mask, y = (b[k].to(device) for k in ("input_ids", "attention_mask", "labels"))
        decoder_input_ids = shift_right(y, model.config.decoder_start_id, pad_id)
        with autocast:
            logits = model(x, decoder_input_ids, mask)  # (B, T, V)
        loss_sum, _ = token_nll_sum(logits, y, label_smoothing)
        loss = loss_sum / n_tokens
        (scaler.scale(loss) if scaler is not None else loss).backward()
        step_loss += loss.item()
        processed += int(mask.sum()) + int((y != -100).sum())
    return step_loss, processed


@torch.no_grad()
def validation_loss(model, examples, pad_id, batch_size, device, autocast) -> float:
    """Mean per-token loss over `examples` (teacher forcing), dropout off."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i : i + batch_size], pad_id)
        x, mask, y = (batch[k].to(device) for k in ("input_ids", "attention_mask", "labels"))
        with autocast:
            logits = model(x, shift_right(y, model.config.decoder_start_id, pad_id), mask)
        loss_sum, n = token_nll_sum(logits, y)
        total, count = total + loss_sum.item(), count + n.item()
    model.train(was_training)
    return total / max(count, 1)


def plot_losses(metrics_file: Path, out_png: Path) -> str:
    """Draw train and validation loss from metrics.jsonl (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: skipping loss.png (pip install matplotlib)"
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    valid = [(r["step"], r["valid_loss"]) for r in rows if "valid_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train")
    if valid:
        ax.plot(*zip(*valid, strict=True), "o-", label="validation")
    ax.set(xlabel="optimizer step", ylabel="loss per target token", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return f"wrote {out_png}"


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    resume: bool = False,
    stop_at_step: int | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    """Run (or resume) training; returns a summary. See the module docstring."""
    # ---- 1. device, seeds, output folder (precision once the model is known) ----------------
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # also seeds CUDA
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / "metrics.jsonl"

    # ---- 2. model and tokenizer (from --init, or new) ------------------------------------
    if cfg.init:  # a minitune checkpoint or a Hugging Face T5 / Flan-T5 folder
        model, tokenizer_file, init_info = load_pretrained(cfg.init)  # its own config
        log(f"initialised from {cfg.init} (step {init_info.get('step')})")
    else:
        model = Seq2SeqTransformer(model_cfg)
        tokenizer_file = Path(cfg.tokenizer)
    if cfg.lora_rank:  # freeze the model, train low-rank adapters (minitune/lora.py)
        add_lora(model, cfg.lora_settings())
        trainable, total = count_parameters(model)
        log(f"LoRA rank {cfg.lora_rank} on {'/'.join(cfg.lora_targets)} "
            f"({', '.join(cfg.lora_where)}): {trainable:,} trainable of {total:,} parameters "
            f"({100 * trainable / total:.2f}%)")  # fmt: skip
        base_info = {"path": str(Path(cfg.init).resolve()), "sha": weights_fingerprint(cfg.init)}
    if cfg.precision == "fp16" and not model.config.scale_attention:
        raise ValueError(
            "precision 'fp16' with a T5-style model (scale_attention=False): T5's activations "
            "overflow float16's range (max 65504); use 'bf16' or 'fp32'"
        )
    autocast, use_scaler = precision_context(cfg.precision, device)
    tok = Tokenizer(tokenizer_file)
    if tok.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tok.vocab_size} ids but the model only {model.config.vocab_size}"
            "; set model.vocab_size to at least the tokenizer's size"
        )
    model.to(device).train()
    log(f"model: {model.num_parameters() / 1e6:.2f}M parameters on {device}, {cfg.precision}")

    # ---- 3. data --------------------------------------------------------------------------
    if cfg.objective == "instruct":
        records = [r for path in cfg.data for r in read_records(path)]
        examples, report = encode_records(
            records, tok, cfg.max_source_length, cfg.max_target_length
        )
        log(f"train data: {report}")

        def make_epoch(epoch):
            return examples
    else:
        documents = [tok.encode(d) for path in cfg.data for d in read_documents(path)]
        log(f"pretraining corpus: {len(documents)} documents, {sum(map(len, documents))} tokens")

        def make_epoch(epoch):
            return span_examples(documents, tok, cfg, epoch)

    valid = []
    if cfg.valid_data and cfg.objective == "instruct":
        valid, report = encode_records(
            read_records(cfg.valid_data), tok, cfg.max_source_length, cfg.max_target_length
        )
    elif cfg.objective == "span":
        valid = span_examples(documents[:200], tok, cfg, epoch=-1)

    # ---- 4. optimizer, and the state to resume ---------------------------------------------
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    step, epoch, index, best, elapsed_before = 0, 0, 0, math.inf, 0.0
    last_eval_step = None
    if resume:
        last = out / "last"
        resumed, _ = load_model(last, device)
        model.load_state_dict(resumed.state_dict())
        state = load_trainer_state(last)
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, index = state["step"], state["epoch"], state["index"]
        best, elapsed_before = state["best_valid_loss"], state["elapsed"]
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        log(f"resumed from {last} at step {step}")
    elif metrics_file.exists():
        metrics_file.unlink()  # a fresh run starts a fresh log

    def checkpoint(name: str, with_trainer: bool) -> None:
        info = {"train": cfg.to_dict(), "step": step, "tokenizer_sha": tok.fingerprint(),
                "best_valid_loss": best if math.isfinite(best) else None,
                "seed": cfg.seed}  # fmt: skip
        if cfg.lora_rank:
            info["base"] = base_info  # an adapter checkpoint names (and hashes) its base
        trainer = None
        if with_trainer:
            trainer = {
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "epoch": epoch, "index": index, "best_valid_loss": best,
                "elapsed": elapsed_before + time.time() - start,
                "python_rng": random.getstate(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            }  # fmt: skip
        save_checkpoint(out / name, model, info, tokenizer_file, trainer)

    def evaluate() -> None:
        """Validation loss now; keep the checkpoint as best/ if it is the lowest so far."""
        nonlocal best, last_eval_step
        last_eval_step = step
        valid_loss = validation_loss(model, valid, tok.pad_id, cfg.batch_size, device, autocast)
        with open(metrics_file, "a") as f:
            f.write(json.dumps({"step": step, "valid_loss": valid_loss}) + "\n")
        log(f"step {step}: validation loss {valid_loss:.4f}")
        if valid_loss < best:
            best = valid_loss
            checkpoint("best", with_trainer=False)

    # ---- 5. the loop --------------------------------------------------------------------------
    stream = batch_stream(make_epoch, cfg.batch_size, cfg.seed, epoch, index, cfg.length_bucketing)
    start = time.time()
    stop_reason = "max_steps"
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not progress, dynamic_ncols=True)
    window_tokens, window_start, losses = 0, time.time(), []
    try:
        while step < cfg.max_steps:
            if stop_at_step is not None and step >= stop_at_step:
                stop_reason = "stop_at_step"
                break
            if cfg.max_minutes and elapsed_before + time.time() - start > cfg.max_minutes * 60:
                stop_reason = "max_minutes"
                break
            # 1. the micro-batches of this step
            micro = []
            for _ in range(cfg.grad_accum):
                epoch, i, batch_examples = next(stream)
                micro.append(collate(batch_examples, tok.pad_id))
                index = i + 1  # where to continue after a resume
            # 2. forward and backward, each micro-batch's loss normalised by all N tokens
            step_loss, tokens = forward_backward(
                model, micro, tok.pad_id, device, autocast, scaler, cfg.label_smoothing
            )
            window_tokens += tokens
            # 3. clip, schedule, step
            scaler.unscale_(optimizer)
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            lr = cfg.lr * lr_factor(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(step_loss)
            if not math.isfinite(step_loss):
                raise FloatingPointError(f"loss is {step_loss} at step {step}; stopping")

            # logging, evaluation, checkpoints
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                now = time.time()
                tokens_per_s = window_tokens / max(now - window_start, 1e-9)
                row = {"step": step, "loss": sum(losses) / len(losses), "lr": lr,
                       "tokens_per_s": round(tokens_per_s), "epoch": epoch,
                       "elapsed_s": round(elapsed_before + now - start, 1)}  # fmt: skip
                with open(metrics_file, "a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.set_postfix(
                    loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}", tok_s=row["tokens_per_s"]
                )
                window_tokens, window_start, losses = 0, now, []
            bar.update(1)
            if valid and (step % cfg.eval_every == 0 or step == cfg.max_steps):
                evaluate()
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        log(f"interrupted at step {step}: saving {out / 'last'}")
    finally:
        bar.close()
    if valid and stop_reason != "interrupted" and last_eval_step != step:
        evaluate()  # stopped by the clock between two evaluations
    checkpoint("last", with_trainer=True)
    if not valid:
        checkpoint("best", with_trainer=False)  # nothing to choose by: best is last
    log(plot_losses(metrics_file, out / "loss.png"))
    return {"step": step, "stop_reason": stop_reason, "best_valid_loss": best,
            "minutes": (elapsed_before + time.time() - start) / 60, "out": str(out)}  # fmt: skip
