"""Span corruption, T5's pretraining objective (Raffel et al. 2020, §3.1.4).

About 15% of the tokens of a text are removed, in spans of about 3 tokens. The encoder reads
the text with each removed span replaced by a sentinel; the decoder writes the removed spans,
each after its sentinel, and a final sentinel:

    original: Thank you for inviting me to your party last week .
    inputs:   Thank you <extra_id_0> me to your party <extra_id_1> week .
    targets:  <extra_id_0> for inviting <extra_id_1> last <extra_id_2>

`reconstruct(inputs, targets)` puts the spans back, so the two together lose nothing.
"""

from __future__ import annotations

import itertools
import random


def _random_segments(total: int, n: int, rng: random.Random) -> list[int]:
    """Split `total` items into `n` non-empty segments at random; returns the segment lengths."""
    cuts = sorted(rng.sample(range(1, total), n - 1))
    edges = [0, *cuts, total]
    return [b - a for a, b in itertools.pairwise(edges)]


def noise_spans(
    length: int, rng: random.Random, noise_density: float = 0.15, mean_span_length: float = 3.0
) -> list[tuple[int, int]]:
    """(start, end) of the spans to remove from a sequence of `length` tokens, in order."""
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = max(round(n_noise / mean_span_length), 1)
    n_spans = min(n_spans, n_noise, length - n_noise)
    noise_lengths = _random_segments(n_noise, n_spans, rng)
    keep_lengths = _random_segments(length - n_noise, n_spans, rng)
    spans, pos = [], 0
    for keep, noise in zip(keep_lengths, noise_lengths, strict=True):  # text first, then a span
        pos += keep
        spans.append((pos, pos + noise))
        pos += noise
    return spans


def span_corrupt(
    ids: list[int],
    sentinel_ids: list[int],
    rng: random.Random,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
) -> tuple[list[int], list[int]]:
    """(inputs, targets) for one sequence of at least 2 tokens (see the module docstring)."""
    if len(ids) < 2:
        raise ValueError("span corruption needs a sequence of at least 2 tokens")
    spans = noise_spans(len(ids), rng, noise_density, mean_span_length)
    if len(spans) + 1 > len(sentinel_ids):
        raise ValueError(f"{len(spans)} spans need more than {len(sentinel_ids)} sentinels")
    inputs, targets, pos = [], [], 0
    for i, (start, end) in enumerate(spans):
        inputs += [*ids[pos:start], sentinel_ids[i]]
        targets += [sentinel_ids[i], *ids[start:end]]
        pos = end
    inputs += ids[pos:]
    targets.append(sentinel_ids[len(spans)])
    return inputs, targets


def reconstruct(inputs: list[int], targets: list[int], sentinel_ids: list[int]) -> list[int]:
    """Undo `span_corrupt`: put each target span back where its sentinel stands."""
    sentinel_index = {s: i for i, s in enumerate(sentinel_ids)}
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets:
        if token in sentinel_index:
            current = sentinel_index[token]
            spans[current] = []
        elif current is not None:
            spans[current].append(token)
    out = []
    for token in inputs:
        out.extend(spans[sentinel_index[token]] if token in sentinel_index else [token])
    return out
