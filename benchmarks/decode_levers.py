"""A/B of the fast decoder's levers: one decoding step written in alternative ways, timed
alternately in one process on the same weights (benchmarks/README.md, "the fast decoder's levers").

    taskset -c 1 python benchmarks/decode_levers.py --threads 1 --rows 1 8
    taskset -c 1 python benchmarks/decode_levers.py --threads 1 --rows 1 8 --compile
    taskset -c 1 python benchmarks/decode_levers.py --threads 1 --eval 128   # the eval path

Each variant is minitune.fast.decode.FastDecodeStep with one of its three operations (`project`,
`attend`, `norm`) replaced, or the model's own decode (ModelStep). For each number of rows it
runs 64 steps after a 128-token source's encoding (the encoder is not timed) and reports the
median ms per step over the repeats, with the process's CPU time (--clock cpu, the default: on a
shared machine the time the process waits for a core is then not counted) or the wall clock.
A benchmark: it asserts nothing but checks that each variant's logits match the default's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench import model_config

from minitune import Seq2SeqTransformer
from minitune.fast.decode import FastDecodeStep
from minitune.generate import ModelStep

STEPS, SRC = 64, 128


class UntransposedLinear(FastDecodeStep):
    """F.linear on (out, in) weights, as nn.Linear stores them (instead of x @ Wᵀ stored)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.untransposed: dict[int, torch.Tensor] = {}

    def weight(self, w_t):
        """W (out, in), contiguous, made once from the stored Wᵀ."""
        w = self.untransposed.get(id(w_t))
        if w is None:
            w = self.untransposed[id(w_t)] = w_t.t().contiguous()
        return w

    def project(self, x, w_t):
        return F.linear(x, self.weight(w_t))


class RowByRow(FastDecodeStep):
    """One matrix-vector product per row (the weight is re-read from cache for rows 2..B)."""

    def project(self, x, w_t):
        return torch.cat([x[i : i + 1] @ w_t for i in range(x.shape[0])])


class WeightTimesColumns(UntransposedLinear):
    """(W xᵀ)ᵀ with W (out, in): the small dimension is the GEMM's N instead of its M."""

    def project(self, x, w_t):
        return (self.weight(w_t) @ x.t()).t()  # (out, B) -> (B, out)


class OneDNNPacked(FastDecodeStep):
    """oneDNN's linear with weights packed once for 8 rows (a private PyTorch operator)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.packed: dict[int, torch.Tensor] = {}

    def project(self, x, w_t):
        p = self.packed.get(id(w_t))
        if p is None:
            p = torch.ops.mkldnn._reorder_linear_weight(w_t.t().contiguous(), 8)
            self.packed[id(w_t)] = p
        return torch.ops.mkldnn._linear_pointwise(x, p, None, "none", [], "")


class ExplicitAttention(FastDecodeStep):
    """softmax(s · q kᵀ + bias) v written out instead of scaled_dot_product_attention."""

    def attend(self, q, k, v, bias):
        scores = q @ k.transpose(-1, -2)  # (B, H, 1, T)
        if self.scale != 1.0:
            scores = scores * self.scale
        if bias is not None:
            scores = scores + bias
        return scores.softmax(dim=-1) @ v  # (B, H, 1, D)


class HandWrittenNorm(FastDecodeStep):
    """RMSNorm as pow, mean, rsqrt, two products (layers/norm.py) instead of F.rms_norm."""

    def norm(self, x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps))


VARIANTS = {
    "fast (default)": FastDecodeStep,
    "model.decode": None,  # ModelStep
    "F.linear, untransposed": UntransposedLinear,
    "oneDNN packed": OneDNNPacked,
    "row by row": RowByRow,
    "W @ xᵀ": WeightTimesColumns,
    "explicit attention": ExplicitAttention,
    "hand-written RMSNorm": HandWrittenNorm,
}


def measure(model, rows: int, args, clock) -> dict[str, list[float]]:
    """ms per step of every variant for `rows` rows, the variants alternating."""
    src = torch.randint(3, model.config.vocab_size, (rows, SRC))
    memory = model.encode(src)
    tokens = torch.zeros(rows, 1, dtype=torch.long)

    def make(cls):
        if cls is None:
            return ModelStep(model, memory, None, src, STEPS, use_cache=True)
        return cls(model, memory, None, src, STEPS)

    runs = {name: (lambda cls=cls: make(cls)) for name, cls in VARIANTS.items()}
    if args.compile:
        compiled = torch.compile(FastDecodeStep.__call__, dynamic=True)

        class Compiled(FastDecodeStep):
            def __call__(self, tokens):
                return compiled(self, tokens)

        start = time.perf_counter()
        step = Compiled(model, memory, None, src, STEPS)
        for _ in range(STEPS):  # compiles (and recompiles while the cache grows)
            step(tokens)
        print(f"rows {rows}: torch.compile warm-up (64 steps) {time.perf_counter() - start:.1f} s")
        runs["torch.compile (dynamic)"] = lambda: make(Compiled)
    reference = runs["fast (default)"]()(tokens)
    for make_step in runs.values():  # each variant computes the same logits
        torch.testing.assert_close(make_step()(tokens), reference, rtol=1e-4, atol=1e-4)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, make_step in runs.items():
            step = make_step()
            start = clock()
            for _ in range(STEPS):
                step(tokens)
            times[name].append((clock() - start) / STEPS * 1e3)
    return times


def eval_path(n: int, clock) -> None:
    """Seconds of `minitune.evaluate.predict` (the eval command's and the pipeline's generation:
    prompts sorted by length, batches of `batch_size`) on the first n prompts of the shipped test
    split, for the laptop preset (copy head) with random weights, fast decoder on and off."""
    from minitune import Tokenizer
    from minitune.config import ModelConfig
    from minitune.data.formats import read_records
    from minitune.data.templates import format_prompt
    from minitune.evaluate import predict
    from minitune.paths import find_shipped

    torch.manual_seed(0)
    model = Seq2SeqTransformer(ModelConfig.preset("laptop")).eval()
    model.set_impl("fast")  # the path measured: the command line's (a new model runs the core)
    tok = Tokenizer(str(find_shipped("tokenizer/minitune.model")))
    records = read_records(str(find_shipped("data/test.jsonl")))[:n]
    prompts = [format_prompt(r.instruction, r.input) for r in records]
    for batch_size in (16, 64):
        for fast in (True, False):
            start = clock()
            predict(model, tok, prompts, batch_size=batch_size, fast_decode=fast)
            print(
                f"eval {n} prompts | batch {batch_size:3d} | fast_decode={fast!s:5} | "
                f"{clock() - start:6.1f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="bench-tiny")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clock", default="cpu", choices=["cpu", "wall"])
    parser.add_argument("--compile", action="store_true", help="also torch.compile the step")
    parser.add_argument(
        "--eval",
        type=int,
        default=0,
        metavar="N",
        help="only: time the eval path on N test prompts",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.eval:
        return eval_path(args.eval, clock)
    torch.manual_seed(0)
    model = Seq2SeqTransformer(model_config(args.config)).eval()
    model.set_impl("fast")  # the path measured: the command line's (a new model runs the core)
    print(
        f"# {args.config}, {args.threads} thread(s), {args.clock} clock, ms per decoding step "
        f"(median of {args.repeats}; {STEPS} steps from a {SRC}-token source)"
    )
    for rows in args.rows:
        with torch.inference_mode():
            times = measure(model, rows, args, clock)
        base = statistics.median(times["fast (default)"])
        for name, t in times.items():
            med = statistics.median(t)
            print(f"rows {rows:2d} | {name:24s} | {med:6.2f} ms | {med / base:.2f}x the default")


if __name__ == "__main__":
    main()
