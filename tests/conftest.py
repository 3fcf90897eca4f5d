"""Shared helpers for the tests: tiny models and random batches."""

from __future__ import annotations

import importlib
import os
import random

import pytest
import torch
from hypothesis import settings

from minitune import ModelConfig, Seq2SeqTransformer

# Every test starts from the same random state, so a failure replays; MINITUNE_TEST_SEED=n runs
# the suite from another one. The seed is in the report header and in every failure's report.
TEST_SEED = int(os.environ.get("MINITUNE_TEST_SEED", "0"))
settings.register_profile("minitune", derandomize=True)  # hypothesis: the same examples each run
settings.load_profile("minitune")

POSITIONS = ["relative", "relative+sinusoidal", "sinusoidal", "learned", "rotary", "alibi", "none"]


def tiny_model(seed: int = 0, fused: bool = True, **overrides) -> Seq2SeqTransformer:
    """A tiny float32 model in eval mode (no dropout), deterministic for a seed; `fused` False:
    the explicit arithmetic instead of attention's fused branch (model.use_fused_kernels)."""
    torch.manual_seed(seed)
    model = Seq2SeqTransformer(ModelConfig.preset("tiny", **overrides))
    model.use_fused_kernels(fused)
    return model.eval()


def import_or_skip(name: str):
    """`pytest.importorskip`, except where the extras must be there: with
    MINITUNE_REQUIRE_EXTRAS=1 (set by .ci/run, which installs them) a missing module is an error,
    so that a whole module of tests cannot turn into skips and leave CI green."""
    if os.environ.get("MINITUNE_REQUIRE_EXTRAS") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name)


def random_batch(vocab: int = 128, B: int = 3, S: int = 9, T: int = 6, seed: int = 1):
    """Source ids with ragged padding (row b has S - b real tokens), a mask, and target ids."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab, (B, S), generator=g)
    mask = torch.ones(B, S, dtype=torch.long)
    for b in range(B):
        mask[b, S - b :] = 0
    input_ids = input_ids.masked_fill(mask == 0, 0)
    decoder_input_ids = torch.randint(3, vocab, (B, T), generator=g)
    decoder_input_ids[:, 0] = 0  # the start token
    return input_ids, mask, decoder_input_ids


@pytest.fixture(autouse=True)
def _fixed_threads_and_seed():
    torch.set_num_threads(2)
    random.seed(TEST_SEED)
    torch.manual_seed(TEST_SEED)
    yield


def pytest_report_header(config):
    return f"minitune test seed: MINITUNE_TEST_SEED={TEST_SEED}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(("minitune test seed", f"MINITUNE_TEST_SEED={TEST_SEED}"))


def interrupt_at(
    monkeypatch, call: int, where: str = "next_micro_batches", signum: int = 0
) -> None:
    """Ctrl-C during the `call`-th optimizer step of the process: a real SIGINT (or `signum`)
    that the process sends itself as the step draws its batches ("next_micro_batches") or after
    it drew them ("train_step"). train() notes it, finishes the step and stops there: one
    process or several save last/ at step `call`."""
    import signal

    import minitune.train as training

    real, calls = getattr(training, where), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            signal.raise_signal(signum or signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, where, interrupted)
