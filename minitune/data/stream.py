"""What the training loop reads: the examples of a run, and the stream of batches it steps through.

    make_epoch, valid, tasks = load_data(cfg, tok, out, dist, log)
    stream = batch_stream(make_epoch, batch_size, seed)             # endless (epoch, index, batch)
    micro, drawn = next_micro_batches(stream, grad_accum, pad_id, dist, device)  # one step's share

Instruction tuning reads JSONL records (or draws fresh ones from the suite's generators), holds
out a validation slice if asked, and tokenizes everything once, before the first step; span
pretraining cuts a corpus into chunks and corrupts them afresh every epoch. The stream is a fixed
function of (seed, epoch, index), so a resumed run continues with the very batch it would have
had; with mix_tasks_every the stream is a `TaskMixer` (minitune/data/mixing.py) instead.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import NamedTuple

from minitune.config import TrainConfig
from minitune.data.batching import (
    EncodedExample,
    collate,
    encode_records,
    length_bucketed_batches,
)
from minitune.data.documents import read_documents
from minitune.data.formats import read_records
from minitune.data.mixing import FLOOR, PROBE_SIZE, TaskMixer
from minitune.data.packing import collate_packed, packed_batches
from minitune.data.span_corruption import span_corrupt
from minitune.run.distributed import Distributed
from minitune.run.errors import RunError
from minitune.tokenizer import Tokenizer

HOLDOUT_MIN = 32  # a held-out validation slice has at least this many examples (if it can)


def load_data(cfg: TrainConfig, tok: Tokenizer, out: Path, dist: Distributed, log):
    """(make_epoch, valid, tasks): a function epoch -> the training examples of that epoch (the
    same every epoch for instruction tuning, corrupted afresh for span pretraining), the
    validation examples (possibly none), and each training example's task (None: span)."""
    if cfg.objective == "instruct":
        files = cfg.data
        if cfg.fresh_per_task:  # fresh examples from the suite's generators, none seen in eval
            files = [
                str(
                    fresh_training_file(
                        out, cfg.fresh_per_task, dist, log, cfg.fresh_shared, cfg.fresh_grammar
                    )
                )
            ]
        records = [r for path in files for r in read_records(path)]
        held_out = []
        if cfg.valid_fraction and not cfg.valid_data:  # no validation file: a seeded slice
            records, held_out = hold_out(records, cfg.valid_fraction, cfg.seed)
            log(
                f"validation: {len(held_out)} of {len(records) + len(held_out)} training "
                f"examples held out (valid_fraction {cfg.valid_fraction}, at least "
                f"{HOLDOUT_MIN}, seed {cfg.seed}); they choose best/"
            )
        examples, report = encode_records(
            records,
            tok,
            cfg.max_source_length,
            cfg.max_target_length,
            cfg.spell_prompts,
            cfg.seed,
        )
        spelled = f"; {cfg.spell_prompts:.0%} of prompt pieces spelled" if cfg.spell_prompts else ""
        log(f"train data: {report}{spelled}")
        valid = []
        if held_out or cfg.valid_data:
            valid, report = encode_records(
                held_out or read_records(cfg.valid_data),
                tok,
                cfg.max_source_length,
                cfg.max_target_length,
            )
            log(f"validation data: {report}")
        tasks = [records[e.index].meta.get("task", "?") for e in examples]
        return (lambda epoch: examples), valid, tasks
    documents = [tok.encode(doc) for path in cfg.data for doc in read_documents(path)]
    log(f"pretraining corpus: {len(documents)} documents, {sum(map(len, documents))} tokens")
    valid = span_examples(documents[:200], tok, cfg, epoch=-1)
    return (lambda epoch: span_examples(documents, tok, cfg, epoch)), valid, None


def data_line(cfg: TrainConfig) -> str:
    """Where the run's training and validation examples come from, in one line, e.g. "training
    data: 177,000 fresh examples drawn from the suite's generators (fresh_per_task = 5000, 48
    tasks, ...) into OUT/fresh_train.jsonl; train.data is not read; validation: data/valid.jsonl".
    """
    if cfg.objective == "span":
        return f"training data: span corruption of {', '.join(cfg.data)}"
    if cfg.valid_data or not cfg.valid_fraction:
        valid = f"validation: {cfg.valid_data or 'none'}"
    else:
        valid = f"validation: a held-out {cfg.valid_fraction:.0%} of it (train.valid_fraction)"
    if not cfg.fresh_per_task:
        return f"training data: {', '.join(cfg.data)}; {valid}"
    from minitune.suite.tasks import asked_count, fresh_families

    families = fresh_families(cfg.fresh_shared)
    n_tasks, n = len(families), sum(asked_count(f.name, cfg.fresh_per_task) for f in families)
    shared = ", the training-only families too (fresh_shared)" if cfg.fresh_shared else ""
    if cfg.fresh_grammar:
        shared += f", {cfg.fresh_grammar:.0%} with grammar phrasings (fresh_grammar)"
    return (
        f"training data: {n:,} fresh examples drawn from the "
        f"suite's generators (fresh_per_task = {cfg.fresh_per_task}, {n_tasks} tasks{shared}) "
        f"into {Path(cfg.out) / 'fresh_train.jsonl'}; train.data is not read; {valid}"
    )


def fresh_training_file(
    out: Path,
    per_task: int,
    dist: Distributed,
    log=print,
    shared: bool = False,
    grammar: float = 0.0,
) -> Path:
    """OUT/fresh_train.jsonl: `per_task` fresh examples of every seen task of the shipped suite
    (and, with `shared`, of every training-only family; `grammar`: that share asked with
    generated phrasings), by
    minitune.suite.tasks.write_training_set: none shares an input or a prompt with an
    evaluation example. Deterministic, so a resumed run draws the same file; process 0 writes it."""
    from minitune.suite.tasks import write_training_set

    path = out / "fresh_train.jsonl"
    if dist.is_main:
        start = time.time()
        counts = write_training_set(path, per_task, seed=0, shared=shared, grammar=grammar)
        log(
            f"fresh training data: {sum(counts.values()):,} examples of {len(counts)} tasks "
            f"drawn in {time.time() - start:.0f} s into {path}"
        )
    dist.barrier()
    return path


def hold_out(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """Split records into (train, validation): a seeded random `fraction` of them, at least
    HOLDOUT_MIN but never more than half. Example: 1000 records, 0.05 -> 950 and 50."""
    n = min(max(math.ceil(fraction * len(records)), HOLDOUT_MIN), len(records) // 2)
    order = list(range(len(records)))
    random.Random(f"holdout-{seed}").shuffle(order)
    chosen = set(order[:n])
    train_part = [r for i, r in enumerate(records) if i not in chosen]
    return train_part, [r for i, r in enumerate(records) if i in chosen]


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


def task_mixer(
    examples: list[EncodedExample],
    tasks: list[str] | None,
    cfg: TrainConfig,
    dist: Distributed,
    log,
) -> TaskMixer:
    """The batch stream of mix_tasks_every (minitune/data/mixing.py): tasks drawn by their loss
    on a few held-out training examples each, which are never trained on."""
    if tasks is None:
        raise RunError(
            "train.mix_tasks_every mixes the tasks of instruction data; span "
            "pretraining has none: set it to 0"
        )
    window = cfg.bucket_batches if cfg.length_bucketing else 1
    mixer = TaskMixer(examples, tasks, cfg.batch_size * dist.world_size, window, cfg.seed)
    log(
        f"task mixing: every {cfg.mix_tasks_every} steps, {len(mixer.probe)} tasks weighted "
        f"by their loss on {PROBE_SIZE} held-out training examples each (floor {FLOOR} x the "
        "mean)"
    )
    return mixer


def batch_stream(
    make_epoch,
    batch_size: int,
    seed: int,
    epoch: int = 0,
    index: int = 0,
    window: int = 50,
    packed: tuple[int, int] | None = None,
    log=None,
):
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


def packed_lengths(cfg: TrainConfig) -> tuple[int, int] | None:
    """A packed row's (source, target) positions, or None when the run pads its batches."""
    if not cfg.packing:
        return None
    return (
        cfg.packed_source_length or cfg.max_source_length,
        cfg.packed_target_length or cfg.max_target_length,
    )


class Drawn(NamedTuple):
    """Where the stream stands after one step's batches, and how many examples they hold: the
    loop moves its TrainState here once the step is done (so a step cut short by Ctrl-C does
    not count, and --resume draws its batches again)."""

    epoch: int
    index: int  # the next batch of `epoch`
    examples: int


def next_micro_batches(
    stream,
    grad_accum: int,
    pad_id: int,
    dist: Distributed,
    device,
    packed: tuple[int, int] | None = None,
    rows: int = 0,
) -> tuple[list[dict], Drawn]:
    """The `grad_accum` micro-batches of one step, this process's share of each global batch,
    and where the stream stands after them (`Drawn`). packed = (S, T): the stream's batches are
    rows of examples, collated to `rows` rows of S and T positions (a fixed shape)."""
    micro, examples = [], 0
    for _ in range(grad_accum):
        epoch, i, batch_examples = next(stream)
        # an epoch's last batch too small to give every process an example: skip it (a packed
        # batch never is: a process without a row gets empty rows, which add nothing)
        while not packed and len(batch_examples) < dist.world_size:
            epoch, i, batch_examples = next(stream)
        n = len(batch_examples)  # this process's share of the global batch:
        mine = batch_examples[
            dist.rank * n // dist.world_size : (dist.rank + 1) * n // dist.world_size
        ]
        if packed:
            examples += sum(map(len, batch_examples))
            batch = collate_packed(mine, pad_id, *packed, n_rows=rows)
        else:
            examples += n
            batch = collate(mine, pad_id)
        if device.type == "cuda":  # page-locked memory: the copy to the GPU overlaps
            batch = {k: v.pin_memory() for k, v in batch.items()}
        micro.append(batch)
    return micro, Drawn(epoch, i + 1, examples)
