"""From records to padded tensors: tokenize once, truncate (and say so), bucket by length, pad.

Shapes: a batch has input_ids and attention_mask (B, S) and labels (B, T). Padding in the source
is pad_id with attention_mask 0; padding in the labels is -100, which the loss ignores. (The
decoder's inputs are the labels shifted right, `minitune.shift_right`, made by the training
loop.) Every target ends with EOS, so the model learns where to stop.

Length bucketing: examples are sorted by length inside large random chunks and cut into batches
there, so a batch holds examples of similar length (little padding), while the order of batches
stays random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from minitune.data.formats import Record
from minitune.data.templates import format_prompt

IGNORE_INDEX = -100


@dataclass
class EncodedExample:
    source: list[int]  # prompt ids, EOS included
    target: list[int]  # answer ids, EOS included
    index: int  # position in the original list of records


@dataclass
class TruncationReport:
    """How many examples were cut to the maximum lengths (never silently)."""

    n_examples: int = 0
    n_source_truncated: int = 0
    n_target_truncated: int = 0

    def __str__(self) -> str:
        if not (self.n_source_truncated or self.n_target_truncated):
            return f"{self.n_examples} examples, none truncated"
        return (
            f"{self.n_examples} examples: {self.n_source_truncated} prompts and "
            f"{self.n_target_truncated} answers truncated to the maximum length"
        )


def encode_records(
    records: list[Record],
    tokenizer,
    max_source_length: int,
    max_target_length: int,
    spell_prompts: float = 0.0,
    seed: int = 0,
) -> tuple[list[EncodedExample], TruncationReport]:
    """Tokenize prompts and answers (adding EOS), truncating to the maximum lengths.

    spell_prompts > 0 (training only): each prompt piece is spelled letter by letter with that
    probability (`Tokenizer.encode_spelled`), drawn from `seed`, so the same call gives the same
    ids; the prompt still decodes to the same text, and answers are never spelled."""
    report = TruncationReport(n_examples=len(records))
    rng = random.Random(f"spell-prompts-{seed}")
    encoded = []
    for i, record in enumerate(records):
        prompt = format_prompt(record.instruction, record.input)
        if spell_prompts > 0:
            source = tokenizer.encode_spelled(prompt, spell_prompts, rng)
        else:
            source = tokenizer.encode(prompt)
        target = tokenizer.encode(record.output)
        if len(source) + 1 > max_source_length:
            source = source[: max_source_length - 1]
            report.n_source_truncated += 1
        if len(target) + 1 > max_target_length:
            target = target[: max_target_length - 1]
            report.n_target_truncated += 1
        encoded.append(EncodedExample([*source, tokenizer.eos_id], [*target, tokenizer.eos_id], i))
    return encoded, report


def collate(examples: list[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of examples to the longest in the batch (dynamic padding)."""
    B = len(examples)
    S = max(len(e.source) for e in examples)
    T = max(len(e.target) for e in examples)
    input_ids = torch.full((B, S), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, S), dtype=torch.long)
    labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    for b, e in enumerate(examples):
        input_ids[b, : len(e.source)] = torch.tensor(e.source)
        attention_mask[b, : len(e.source)] = 1
        labels[b, : len(e.target)] = torch.tensor(e.target)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def length_bucketed_batches(
    lengths: list[int], batch_size: int, seed: int, chunk_batches: int = 50
) -> list[list[int]]:
    """Batches of indices: shuffle, sort by length within chunks of `chunk_batches` batches,
    cut into batches, shuffle the batches. Every index appears exactly once."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches
