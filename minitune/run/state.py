"""A run and where it is: what its steps share (`StepSetup`), what the loop's helpers share
(`Run`), and what --resume needs to continue exactly as if the run had never stopped.

    save(run, state, "last", with_trainer=True)   # OUT/last/: weights + trainer.pt
    resume_from(out / "last", run, state)         # ... and back, in a new process

OUT/last/trainer.pt holds, next to the weights: the optimizer's moments, the GradScaler, the
`TrainState` (step, data position, losses since the last metrics row, best validation loss), the
task mixer's weights, and the random states of every process (Python, NumPy, torch, CUDA), so the
next batch, the next dropout mask and the next learning rate are the ones an uninterrupted run
would have had (tests/test_train.py checks resume == uninterrupted). A stop signal while a
checkpoint is being written waits until the folder is complete: train() holds them all while it
runs, and obeys them between two steps (minitune/run/stop_signals.py).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from minitune.config import TrainConfig
from minitune.data.mixing import TaskMixer
from minitune.model import Seq2SeqTransformer
from minitune.run.checkpoint import load_model, load_trainer_state, recover, save_checkpoint
from minitune.run.distributed import Distributed, full_state, load_full_state
from minitune.run.errors import RunError
from minitune.run.metrics_log import MetricsLog, truncate_metrics
from minitune.run.report import model_card
from minitune.tokenizer import Tokenizer


@dataclass
class StepSetup:
    """What every step of a run uses and no step changes: where the batches go, the precision
    (an autocast context, and fp16's gradient scaler), the loss's settings, the processes."""

    device: torch.device | str
    pad_id: int
    autocast: contextlib.AbstractContextManager = field(default_factory=contextlib.nullcontext)
    scaler: torch.amp.GradScaler = field(
        default_factory=lambda: torch.amp.GradScaler("cpu", enabled=False)  # scale(x) is x
    )
    clip_grad: float = 1.0  # 0: no clipping
    label_smoothing: float = 0.0
    dist: Distributed = field(default_factory=Distributed)  # one process unless torchrun


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
        return {
            "step": self.step,
            "examples": self.examples,
            "tokens": self.tokens,
            "epoch": self.epoch,
            "index": self.index,
            "best_valid_loss": self.best_valid_loss,
            "elapsed": self.seconds(),
            "losses": list(self.losses),
            "skipped": self.skipped,
            "rng": self.rng,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.index = state["step"], state["epoch"], state["index"]
        self.examples = state.get("examples", 0)  # 0 when the saved state has no count
        self.tokens = state.get("tokens", 0)
        self.best_valid_loss, self.elapsed = state["best_valid_loss"], state["elapsed"]
        self.losses, self.skipped, self.rng = list(state["losses"]), state["skipped"], state["rng"]
        self.saved_step, self.started = self.step, time.time()


@dataclass
class Run:
    """What the helpers of the loop (saving, resuming, evaluating, logging) share, fixed for the
    whole run; where the batches go and the precision are the steps' own `setup`."""

    train_cfg: TrainConfig
    model: Seq2SeqTransformer  # the model itself: its config, what is saved
    wrapped: torch.nn.Module  # what the loop calls: DDP/FSDP/torch.compile around model, or model
    optimizer: torch.optim.Optimizer
    setup: StepSetup  # device, pad id, autocast, GradScaler, the processes
    tok: Tokenizer
    tokenizer_file: Path
    log: Callable
    metrics: MetricsLog
    base: dict | None = None  # LoRA: the base checkpoint's path and hash
    mixer: TaskMixer | None = None  # mix_tasks_every: the batch stream, and its loss slice

    @property
    def out(self) -> Path:
        return Path(self.train_cfg.out)


def save(run: Run, state: TrainState, name: str, with_trainer: bool) -> None:
    """Save OUT/name/: the weights and run info, and (with_trainer) the optimizer, GradScaler and
    `state` for an exact --resume. Every process takes part (FSDP gathers the shards)."""
    dist, best = run.setup.dist, state.best_valid_loss
    info = {
        "train": run.train_cfg.to_dict(),
        "step": state.step,
        "examples_seen": state.examples,
        "tokenizer_sha": run.tok.fingerprint(),
        "best_valid_loss": best if math.isfinite(best) else None,
        "seed": run.train_cfg.seed,
    }
    if run.base is not None:
        info["base"] = run.base  # an adapter checkpoint names (and hashes) its base
    model_state, optim_state = full_state(run.model, run.optimizer if with_trainer else None, dist)
    state.rng = dist.gather(get_rng_states())  # one entry per process
    trainer = None
    if with_trainer:
        trainer = {
            "optimizer": optim_state,
            "scaler": run.setup.scaler.state_dict(),
            **state.state_dict(),
        }
        if run.mixer is not None:
            trainer["mixer"] = run.mixer.state_dict()
    if dist.is_main:
        # best/ carries a model card (README.md); the pipeline adds its scores after evaluating
        card = (
            model_card(run.out / name, info, run.model.config.to_dict()) if name == "best" else None
        )
        save_checkpoint(
            run.out / name, run.model, info, run.tokenizer_file, trainer, model_state, card
        )
    dist.barrier()  # nobody runs ahead of (or exits before) the save
    if name == "last":
        state.saved_step = state.step


def resume_from(last: Path, run: Run, state: TrainState) -> None:
    """Load last/ into the model, the optimizer, the GradScaler, `state` and the random
    generators, so that the run continues exactly as if it had never stopped."""
    dist = run.setup.dist
    if dist.is_main:
        recover(last)  # a crash in the middle of a save leaves last.tmp or last.old
        truncate_metrics(run.metrics.path, load_trainer_state(last)["step"])  # redo later rows
    dist.barrier()
    resumed, info = load_model(last, "cpu")  # a CPU copy, loaded into the model below
    check_resumable(last, info, run.model, run.tok)
    trainer = load_trainer_state(last)
    if len(trainer["rng"]) != dist.world_size:
        raise RunError(
            f"{last} was saved by {len(trainer['rng'])} process(es); resume it "
            f"with as many (this run has {dist.world_size})"
        )
    load_full_state(run.model, run.optimizer, resumed.state_dict(), trainer["optimizer"], dist)
    run.setup.scaler.load_state_dict(trainer["scaler"])
    state.load_state_dict(trainer)
    if run.mixer is not None:
        if "mixer" not in trainer:
            raise RunError(f"{last} was trained without mix_tasks_every; resume it without")
        run.mixer.load_state_dict(trainer["mixer"])
    set_rng_states(state.rng[dist.rank])
    run.log(f"resumed from {last} at step {state.step}")


# ---- the pieces: the run folder, resume checks, random states ---------------------------------


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
    """A fresh run needs an empty (or new) --out; `overwrite` (--overwrite) removes a previous
    run's files, and only those (`RUN_OUTPUTS`)."""
    if os.environ.get("RANK", "0") != "0":  # under torchrun, process 0 checks (and clears)
        return
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        held = ", ".join(sorted(p.name for p in out.iterdir())[:6])
        raise RunError(
            f"{out} is not empty ({held}); continue that run with --resume, choose another "
            "--out, or pass --overwrite to replace it"
        )
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


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
        raise RunError(
            f"{last} holds a model with other settings ({diffs}); "
            "resume with the run's own config, or start a new --out"
        )


def get_rng_states() -> dict:
    """Python, NumPy, torch and CUDA random states as plain data (safe to load)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict) -> None:
    """Put back the random states that `get_rng_states` returned."""
    random.setstate(_as_tuples(states["python"]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuples(x):
    """random.setstate wants the nested tuples that a safe load may return as lists."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
