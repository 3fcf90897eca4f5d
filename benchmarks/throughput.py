"""Training throughput of the laptop recipe: examples and real tokens per second, lever by lever.

    python benchmarks/throughput.py                           # configs/laptop.toml as it is
    python benchmarks/throughput.py --set train.packing=false # today's padded batches instead
    python benchmarks/throughput.py --set train.packing=true --set train.batch_size=8
    python benchmarks/throughput.py --compile                 # torch.compile of the model
    python benchmarks/throughput.py --set train.adamw_impl=fused

It runs the training loop's own pieces (`minitune.data.stream`: the batch stream,
`next_micro_batches`; `minitune.train`: `train_step` with the run's optimizer and precision) on
the shipped training split, encoded as the run encodes it, for `--steps` optimizer steps after
`--warmup` steps, and prints one JSON line: examples/s, real tokens/s (source + target, padding
not counted), the share of row positions that are real tokens, the seconds per step (median and
mean) and, with --compile, the warm-up's seconds (what compiling costs a run). The fused kernels
follow `train.fused_kernels` as train() does (auto: off on a CPU; `--set train.fused_kernels=on`). A
benchmark: it asserts nothing; results with their commands are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import cpu_flags, cpu_model  # noqa: E402

from minitune.data.batching import IGNORE_INDEX, encode_records  # noqa: E402
from minitune.data.formats import read_records  # noqa: E402
from minitune.data.stream import batch_stream, next_micro_batches, packed_lengths  # noqa: E402
from minitune.model import Seq2SeqTransformer  # noqa: E402
from minitune.optim import build_optimizer  # noqa: E402
from minitune.run.device import fused_kernels_on, precision_context, resolve_precision  # noqa: E402
from minitune.run.distributed import Distributed  # noqa: E402
from minitune.run.paths import find_shipped  # noqa: E402
from minitune.run.settings import load_run_config, parse_override  # noqa: E402
from minitune.tokenizer import Tokenizer  # noqa: E402
from minitune.train import DEFAULT_TOKENIZER, StepSetup, train_step  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/laptop.toml")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--steps", type=int, default=60, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default="data/train.jsonl")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, dict] = {}
    for item in args.set:
        section, key, value = parse_override(item)
        overrides.setdefault(section, {})[key] = value
    model_cfg, train_cfg = load_run_config(args.config, overrides)
    torch.manual_seed(train_cfg.seed)
    tok = Tokenizer(find_shipped(DEFAULT_TOKENIZER))
    records = read_records(find_shipped(args.data))
    examples, _ = encode_records(
        records, tok, train_cfg.max_source_length, train_cfg.max_target_length
    )
    model = Seq2SeqTransformer(model_cfg).train()
    model.use_fused_kernels(
        fused_kernels_on(train_cfg.fused_kernels, torch.device("cpu"))
    )  # as train()
    wrapped = torch.compile(model) if args.compile else model
    optimizer = build_optimizer(model, train_cfg)
    device = torch.device("cpu")
    precision, _ = resolve_precision(
        train_cfg.precision, device, (model_cfg.d_model, model_cfg.d_ff)
    )
    autocast, _ = precision_context(precision, device)
    packed = packed_lengths(train_cfg)
    window = train_cfg.bucket_batches if train_cfg.length_bucketing else 1
    stream = batch_stream(
        lambda epoch: examples, train_cfg.batch_size, train_cfg.seed, 0, 0, window, packed
    )
    setup = StepSetup(device, tok.pad_id, autocast, clip_grad=train_cfg.clip_grad)
    times, counted, positions, real = [], [], 0, 0
    started = time.perf_counter()
    warmup_seconds = 0.0
    for step in range(args.warmup + args.steps):
        micro, drawn = next_micro_batches(
            stream,
            train_cfg.grad_accum,
            tok.pad_id,
            Distributed(),
            device,
            packed,
            train_cfg.batch_size,
        )
        t0 = time.perf_counter()
        result = train_step(wrapped, optimizer, micro, train_cfg.lr * 0.5, setup)
        t1 = time.perf_counter()
        if step == args.warmup - 1 or (args.warmup == 0 and step == 0):
            warmup_seconds = t1 - started
        if step >= args.warmup:
            times.append(t1 - t0)
            counted.append((drawn.examples, result.tokens))
            for b in micro:
                positions += b["input_ids"].numel() + b["labels"].numel()
                real += int((b["labels"] != IGNORE_INDEX).sum())
                real += int((b.get("source_segments", b.get("attention_mask")) != 0).sum())
    seconds = sum(times)
    print(
        json.dumps(
            {
                "config": args.config,
                "set": args.set,
                "compile": args.compile,
                "threads": torch.get_num_threads(),
                "precision": precision,
                "fused_kernels": train_cfg.fused_kernels,
                "packing": train_cfg.packing,
                "packed": packed,
                "batch_size": train_cfg.batch_size,
                "examples_per_s": round(sum(e for e, _ in counted) / seconds, 1),
                "tokens_per_s": round(sum(t for _, t in counted) / seconds),
                "real_share": round(real / positions, 3),
                "step_ms_median": round(1000 * statistics.median(times), 1),
                "step_ms_mean": round(1000 * seconds / len(times), 1),
                "warmup_s": round(warmup_seconds, 1),
                "steps": args.steps,
                "cpu": cpu_model(),
                "flags": cpu_flags(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
