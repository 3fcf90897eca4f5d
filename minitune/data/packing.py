"""Packing: several examples one after another in each row, so a batch is nearly all real tokens.

Padded batches (batching.py) give every example its own row, as long as the batch's longest: on
the suite about a third of what the model computes is padding even with length bucketing. A
packed batch has rows of fixed lengths instead, S source and T target positions, and fills each
with whole examples, sources in the source row and targets in the target row, in the same order:

    source row   [ prompt 1 ........ | prompt 2 ..... | prompt 3 ...... | pad ]
    target row   [ answer 1 .. | answer 2 | answer 3 ..... | pad ............. ]
    segments        1 1 1 1 1    2 2 2 2    3 3 3 3 3 3 3   0 0 0 ...

Each token is labelled with its example's number along the row (its segment; 0 = padding). The
model keeps every attention inside one example (`minitune.layers.attention.make_segment_mask`)
and counts positions from each example's first token, so a packed batch computes the same loss
and gradients as the same examples padded one per row (tests/test_packing.py). Rows of fixed
lengths also give every batch the same shape, which `torch.compile` wants.

An example enters a row only if both its source and its target fit; the row lengths are at
least the maximum lengths (max_source_length, max_target_length), so every example fits in an
empty row. Rows are filled first-fit-decreasing inside chunks of examples drawn at random, then
shuffled and cut into batches of `rows` rows: the order is random, and a seed fixes it (exact
resume). A batch counts rows, not examples; the epoch's last batch is topped up with empty rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from minitune.data.batching import IGNORE_INDEX, EncodedExample

CHUNK_ROWS = 64  # examples are packed in chunks of about this many rows' worth


@dataclass
class PackingReport:
    """How full the rows are: real tokens over row positions, on each side."""

    n_examples: int
    n_rows: int
    source_fill: float
    target_fill: float

    def __str__(self) -> str:
        per_row = self.n_examples / max(self.n_rows, 1)
        return (
            f"{self.n_examples} examples in {self.n_rows} rows ({per_row:.1f} per row; "
            f"{self.source_fill:.0%} of source and {self.target_fill:.0%} of target positions "
            "are real tokens)"
        )


def pack_rows(
    source_lengths: list[int], target_lengths: list[int], source_length: int, target_length: int
) -> list[list[int]]:
    """Indices of the examples in each row, first-fit-decreasing: the longest source first, each
    into the first row with room for both its source and its target."""
    order = sorted(range(len(source_lengths)), key=lambda i: -source_lengths[i])
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (source, target) positions still free in each row
    for i in order:
        s, t = source_lengths[i], target_lengths[i]
        if s > source_length or t > target_length:
            raise ValueError(
                f"an example of {s}+{t} tokens does not fit a packed row of "
                f"{source_length}+{target_length}; rows must be at least the maximum lengths"
            )
        for r, (free_s, free_t) in enumerate(room):
            if s <= free_s and t <= free_t:
                rows[r].append(i)
                room[r] = (free_s - s, free_t - t)
                break
        else:
            rows.append([i])
            room.append((source_length - s, target_length - t))
    return rows


def packed_batches(
    examples: list[EncodedExample],
    source_length: int,
    target_length: int,
    rows: int,
    seed: int,
) -> tuple[list[list[list[int]]], PackingReport]:
    """All examples packed into rows, cut into batches of `rows` rows (the last one shorter):
    batches[b][r] is the list of example indices of row r. Deterministic from `seed`."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    mean_source = sum(len(e.source) for e in examples) / max(len(examples), 1)
    chunk = max(1, round(CHUNK_ROWS * source_length / max(mean_source, 1)))  # examples per chunk
    all_rows = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        packed = pack_rows(
            [len(examples[i].source) for i in part],
            [len(examples[i].target) for i in part],
            source_length,
            target_length,
        )
        all_rows.extend([part[j] for j in row] for row in packed)
    rng.shuffle(all_rows)
    batches = [all_rows[i : i + rows] for i in range(0, len(all_rows), rows)]
    n_rows = max(len(all_rows), 1)
    report = PackingReport(
        n_examples=len(examples),
        n_rows=len(all_rows),
        source_fill=sum(len(e.source) for e in examples) / (n_rows * source_length),
        target_fill=sum(len(e.target) for e in examples) / (n_rows * target_length),
    )
    return batches, report


def collate_packed(
    rows: list[list[EncodedExample]],
    pad_id: int,
    source_length: int,
    target_length: int,
    n_rows: int | None = None,
) -> dict[str, torch.Tensor]:
    """Packed rows -> tensors of fixed shapes: input_ids and source_segments (R, S), labels and
    target_segments (R, T), with R = n_rows (empty rows added at the end) or len(rows).

    Segments number the examples of a row 1, 2, ...; padding is 0 (and -100 in the labels)."""
    R = n_rows or len(rows)
    input_ids = torch.full((R, source_length), pad_id, dtype=torch.long)
    source_segments = torch.zeros((R, source_length), dtype=torch.long)
    labels = torch.full((R, target_length), IGNORE_INDEX, dtype=torch.long)
    target_segments = torch.zeros((R, target_length), dtype=torch.long)
    for r, row in enumerate(rows):
        sizes = (sum(len(e.source) for e in row), sum(len(e.target) for e in row))
        if sizes[0] > source_length or sizes[1] > target_length:
            raise ValueError(
                f"row {r} holds {sizes[0]}+{sizes[1]} tokens, more than a packed "
                f"row's {source_length}+{target_length}"
            )
        s = t = 0  # where the next example starts in this row
        for number, e in enumerate(row, start=1):
            input_ids[r, s : s + len(e.source)] = torch.tensor(e.source)
            source_segments[r, s : s + len(e.source)] = number
            labels[r, t : t + len(e.target)] = torch.tensor(e.target)
            target_segments[r, t : t + len(e.target)] = number
            s, t = s + len(e.source), t + len(e.target)
    return {
        "input_ids": input_ids,
        "source_segments": source_segments,
        "labels": labels,
        "target_segments": target_segments,
    }
