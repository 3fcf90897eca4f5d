"""Speed benchmarks: training and decoding throughput of minitune's presets on this machine.

    python benchmarks/bench.py                       # tiny and laptop presets, all measurements
    python benchmarks/bench.py --presets laptop --skip-cache-scaling

What it measures (fp32, random weights, random token ids):
- training tokens/s: forward + backward + AdamW step on a batch of 16 × (source 128 + target 32);
  "tokens" counts source and target tokens;
- greedy decoding tokens/s at batch 1 and 8 (64 new tokens, EOS suppressed so every row runs the
  full length); "tokens" counts new tokens of all rows;
- decoding time per new token at 32 and 256 new tokens, with and without the KV cache (batch 1).

Each figure is the median of several timed repetitions after a warm-up. This is a benchmark,
not a test: it asserts nothing. Results for reference machines are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from minitune import ModelConfig, Seq2SeqTransformer, cross_entropy_loss, shift_right


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_training(
    model: Seq2SeqTransformer, batch: int, src: int, tgt: int, repeats: int
) -> float:
    """Training tokens (source + target) per second."""
    V = model.config.vocab_size
    input_ids = torch.randint(3, V, (batch, src))
    labels = torch.randint(3, V, (batch, tgt))
    decoder_input_ids = shift_right(labels, model.config.decoder_start_id, model.config.pad_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        loss = cross_entropy_loss(model(input_ids, decoder_input_ids), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch * (src + tgt) / median_seconds(step, repeats)


def bench_decoding(
    model: Seq2SeqTransformer, batch: int, src: int, new_tokens: int, use_cache: bool, repeats: int
) -> float:
    """Seconds per generation call of `new_tokens` greedy tokens for `batch` rows."""
    input_ids = torch.randint(3, model.config.vocab_size, (batch, src))

    def run():
        out = model.generate(
            input_ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, use_cache=use_cache
        )
        assert out.shape == (batch, new_tokens)

    return median_seconds(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "laptop"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--skip-cache-scaling", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cpu = platform.processor() or platform.machine()
    print(f"# minitune benchmark: torch {torch.__version__}, {cpu}, ", end="")
    print(f"{torch.get_num_threads()} threads, fp32\n")
    print("| preset | params | train tok/s (16×(128+32)) | greedy tok/s b=1 | greedy tok/s b=8 |")
    print("|---|---|---|---|---|")
    for name in args.presets:
        model = Seq2SeqTransformer(ModelConfig.preset(name, dropout=0.0))
        train = bench_training(model, 16, 128, 32, args.repeats)
        b1 = 64 / bench_decoding(model, 1, 128, 64, True, args.repeats)
        b8 = 8 * 64 / bench_decoding(model, 8, 128, 64, True, args.repeats)
        size = f"{model.num_parameters() / 1e6:.2f}M"
        print(f"| {name} | {size} | {train:,.0f} | {b1:,.0f} | {b8:,.0f} |")

    if args.skip_cache_scaling:
        return
    print("\n| preset | new tokens | ms/token, cache | ms/token, no cache | speed-up |")
    print("|---|---|---|---|---|")
    for name in args.presets:
        model = Seq2SeqTransformer(ModelConfig.preset(name, dropout=0.0))
        for n in (32, 256):
            reps = max(1, args.repeats // 2) if n == 256 else args.repeats
            cached = bench_decoding(model, 1, 128, n, True, reps) / n * 1e3
            uncached = bench_decoding(model, 1, 128, n, False, reps) / n * 1e3
            print(f"| {name} | {n} | {cached:.2f} | {uncached:.2f} | {uncached / cached:.1f}× |")


if __name__ == "__main__":
    main()
