"""Speed benchmarks: minitune against the reference T5 on the same weights, and against the
machine's own matmul peak.

    python benchmarks/bench.py                          # bench-tiny and t5-small, CPU, fp32
    python benchmarks/bench.py --configs bench-tiny --repeats 3
    python benchmarks/bench.py --device cuda --precision bf16 --configs t5-small t5-base
    taskset -c 1 python benchmarks/bench.py --configs bench-tiny --threads 1 --decode-only \
        --both-kernels --clock cpu --repeats 5     # decoding: explicit, fused, reference

Configs: `bench-tiny` (d_model 256, 4+4 layers, vocabulary 8000, gated-GELU: T5 v1.1 style) and
the presets `t5-small`, `t5-base`, `laptop`, `tiny`. For each, with random weights:

- training tokens/s: forward + backward + AdamW step on 16 × (source 128 + target 32) tokens
  ("tokens" counts source and target), and its model FLOP/s as a fraction of the measured matmul
  peak (MFU: model FLOPs, 3 × the forward's matmul FLOPs, not counting recomputation);
- greedy decoding tokens/s at batch 1 and 8, and 4-beam search tokens/s at batch 1 and 8 (64 new
  tokens from a 128-token source; EOS suppressed so every row runs the full length);
- minitune runs as the commands do on the device (`--fused-kernels auto`: fused kernels with
  CUDA, the explicit arithmetic on a CPU); `--both-kernels` also runs a copy with the other
  setting (`model.use_fused_kernels`), A/B in the same run;
- the floor of each decoding figure: the time no implementation can beat on this machine, from
  the measured streaming bandwidth (a large tensor summed) and matmul peak: per step the larger
  of (decoder + head weights + KV caches read) / bandwidth and the step's matmul FLOPs / peak,
  plus the encoder's and the cross-attention keys'/values' FLOPs / peak once per generation;
  reported as "x floor" (measured time / floor: 1.0 would be the floor itself);
- peak memory: CUDA's max_memory_allocated, or the process's peak resident size on CPU;
- with the `parity` extra installed (Hugging Face transformers), the same for the reference T5 on
  the same weights (written by minitune.export_t5, read by transformers), runs alternating between
  the two implementations, reported as ratios minitune / reference;
- the machine's fp32 and bf16 matmul peak (a 2048 × 2048 matmul), and bf16 autocast training
  against fp32 where the CPU has bf16 instructions (or on CUDA).

Each figure is the median of several timed runs after a warm-up; `--clock cpu` times with the
process's CPU time instead of the wall clock (with one thread, time the process was descheduled by
other work on a shared machine is then not counted; both implementations are timed the same
way). A benchmark, not a test: it asserts nothing. Results and commands: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import resource
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from minitune import ModelConfig, Seq2SeqTransformer, cross_entropy_loss, export_t5, shift_right
from minitune.run.device import fused_kernels_on

CONFIGS = {
    "bench-tiny": dict(
        vocab_size=8000,
        d_model=256,
        n_heads=4,
        d_ff=1024,
        n_encoder_layers=4,
        n_decoder_layers=4,
        ffn="gated-gelu",
        scale_attention=False,
        tie_embeddings=False,
    ),
}
BATCH, SRC, TGT, NEW = 16, 128, 32, 64


def model_config(name: str) -> ModelConfig:
    if name in CONFIGS:
        return ModelConfig(**CONFIGS[name], dropout=0.0)
    return ModelConfig.preset(name, dropout=0.0)


def build(cfg: ModelConfig, device: torch.device) -> Seq2SeqTransformer:
    """A model with random weights, with the fused kernels as the commands set them (auto)."""
    model = Seq2SeqTransformer(cfg)
    model.use_fused_kernels(fused_kernels_on("auto", device))
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


CLOCK = time.perf_counter  # --clock cpu: time.process_time


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = CLOCK()
    fn()
    sync(device)
    return CLOCK() - start


def alternate(runs: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each run, the runs interleaved (a, b, a, b, ...) after a warm-up each,
    so that a slow moment of the machine does not favour one implementation."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048) -> float:
    """FLOP/s of an n × n × n matmul in `dtype` (the best of a few runs)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    reps = 20 if device.type == "cuda" else 2
    best = min(timed(lambda: [a @ b for _ in range(reps)], device) for _ in range(3))
    return 2 * n**3 * reps / best


def stream_bandwidth(device: torch.device, mb: int = 512) -> float:
    """Bytes/s of reading a large float32 tensor (a sum over `mb` MB, far beyond the caches):
    the rate at which weights can stream from memory, the bound of batch-1 decoding."""
    a = torch.ones(mb * 2**20 // 4, device=device)
    best = min(timed(lambda: a.sum(), device) for _ in range(5))
    return a.numel() * 4 / best


def decode_floor(cfg: ModelConfig, rows: int, bandwidth: float, peak: float) -> float:
    """Seconds below which no implementation can generate NEW tokens for `rows` rows (beams
    included) from a SRC-token source: encoder and cross-attention K/V FLOPs at the matmul peak,
    then per step the larger of the bytes read (decoder and head weights, KV caches) at the
    streaming bandwidth and the step's matmul FLOPs at the peak."""
    C, F, HD, KV, V = cfg.d_model, cfg.d_ff, cfg.inner_dim, cfg.kv_dim, cfg.vocab_size
    L = cfg.n_decoder_layers
    ff = (3 if cfg.ffn in ("gated-gelu", "swiglu") else 2) * C * F
    enc = SRC * (C * HD + 2 * C * KV + HD * C + ff) + 2 * SRC * SRC * HD
    once = 2 * rows * (cfg.n_encoder_layers * enc + L * SRC * 2 * C * KV)  # FLOPs
    weights = (L * (C * HD + 2 * C * KV + HD * C + C * HD + HD * C + ff) + C * V) * 4  # bytes
    step_time = 0.0
    for t in range(1, NEW + 1):
        cache_bytes = rows * L * (t + SRC) * 2 * KV * 4  # self and cross keys and values
        macs = rows * (L * (C * HD + 2 * C * KV + 3 * HD * C + ff + 2 * (t + SRC) * HD) + C * V)
        step_time += max((weights + cache_bytes) / bandwidth, 2 * macs / peak)
    return once / peak + step_time


def has_bf16_instructions() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo (Linux), else the platform's processor."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """Which of the vector extensions that matter for matmuls the CPU reports (detected)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    return ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in wanted)


def training_flops(cfg: ModelConfig, batch: int, src: int, tgt: int) -> float:
    """Model FLOPs of one training step: 3 × (2 × multiply-adds of the forward's matmuls)."""
    C, F, HD, KV, V = cfg.d_model, cfg.d_ff, cfg.inner_dim, cfg.kv_dim, cfg.vocab_size
    ff = (3 if cfg.ffn in ("gated-gelu", "swiglu") else 2) * C * F  # per token
    enc = src * (C * HD + 2 * C * KV + HD * C + ff) + 2 * src * src * HD  # projections + attention
    dec = tgt * (C * HD + 2 * C * KV + HD * C + ff) + 2 * tgt * tgt * HD  # self-attention, FF
    dec += tgt * (2 * C * HD) + src * 2 * C * KV + 2 * tgt * src * HD  # cross-attention
    macs = batch * (cfg.n_encoder_layers * enc + cfg.n_decoder_layers * dec + tgt * C * V)
    return 3 * 2 * macs


class Ours:
    """minitune's model behind the three operations the benchmark times."""

    def __init__(self, model, device):
        self.model, self.device = model.to(device), device

    def train_step_fn(self, x, dec, y, autocast):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5)

        def step():
            self.model.train()
            with autocast:
                loss = self.loss(x, dec, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def loss(self, x, dec, y):
        return cross_entropy_loss(self.model(x, dec), y)

    def generate_fn(self, src, num_beams):
        def run():
            out = self.model.generate(
                src,
                max_new_tokens=NEW,
                min_new_tokens=NEW,
                num_beams=num_beams,
            )
            assert out.shape[1] == NEW

        return run


class OursOtherKernels(Ours):
    """minitune with the other setting of the fused kernels (a copy of the same weights)."""

    def __init__(self, model, device):
        other = copy.deepcopy(model)
        other.use_fused_kernels(not model.fused_kernels)
        super().__init__(other, device)


class Reference(Ours):
    """The Hugging Face T5 with the same weights (written by export_t5)."""

    def __init__(self, model, device):
        from transformers import T5ForConditionalGeneration

        folder = tempfile.mkdtemp(prefix="minitune-bench-")
        export_t5(model, folder)
        self.model = T5ForConditionalGeneration.from_pretrained(folder).to(device)
        self.device = device

    def loss(self, x, dec, y):
        return self.model(input_ids=x, decoder_input_ids=dec, labels=y).loss

    def generate_fn(self, src, num_beams):
        def run():
            with torch.inference_mode():
                out = self.model.generate(
                    src,
                    max_new_tokens=NEW,
                    min_new_tokens=NEW,
                    num_beams=num_beams,
                    do_sample=False,
                    early_stopping=True,
                )
            assert out.shape[1] == NEW + 1  # the reference returns the start token too

        return run


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def bench_config(
    name,
    device,
    precision,
    repeats,
    with_reference,
    peak,
    floors=None,
    decode_only=False,
    both_kernels=False,
    train_only=False,
):
    cfg = model_config(name)
    torch.manual_seed(0)
    model = build(cfg, device)
    impls = {"minitune": Ours(model, device)}
    if both_kernels:
        other = "explicit" if model.fused_kernels else "fused"
        impls[f"minitune ({other})"] = OursOtherKernels(model, device)
    if with_reference:
        try:
            impls["reference"] = Reference(model, device)
        except ValueError as err:  # not a T5-shaped config
            print(f"({name}: no reference run: {err})")
    V = cfg.vocab_size
    x = torch.randint(3, V, (BATCH, SRC), device=device)
    y = torch.randint(3, V, (BATCH, TGT), device=device)
    dec = shift_right(y, cfg.decoder_start_id, cfg.pad_id)
    autocast = contextlib.nullcontext()
    if precision == "bf16":
        autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    rows = {}
    if not decode_only:
        train = alternate(
            {n: i.train_step_fn(x, dec, y, autocast) for n, i in impls.items()}, repeats, device
        )
        rows["train tok/s"] = {n: BATCH * (SRC + TGT) / s for n, s in train.items()}
        flops = training_flops(cfg, BATCH, SRC, TGT)
        rows["train MFU"] = {n: flops / s / peak for n, s in train.items()}
    for label, batch, beams in (
        ("greedy tok/s b=1", 1, 1),
        ("greedy tok/s b=8", 8, 1),
        ("beam-4 tok/s b=1", 1, 4),
        ("beam-4 tok/s b=8", 8, 4),
    ):
        if train_only:
            break
        src = torch.randint(3, V, (batch, SRC), device=device)
        secs = alternate({n: i.generate_fn(src, beams) for n, i in impls.items()}, repeats, device)
        rows[label] = {n: batch * NEW / s for n, s in secs.items()}
        if floors is not None:  # (bandwidth, peak): measured time as a multiple of the floor
            floor = decode_floor(cfg, batch * beams, *floors)
            rows[label.replace("tok/s", "x floor")] = {n: s / floor for n, s in secs.items()}
    return cfg, model.num_parameters(), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["bench-tiny", "t5-small"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--no-reference", action="store_true", help="minitune only")
    parser.add_argument("--cache-scaling", action="store_true", help="also: KV cache speed-up")
    parser.add_argument("--decode-only", action="store_true", help="skip the training figures")
    parser.add_argument("--train-only", action="store_true", help="skip the decoding figures")
    parser.add_argument(
        "--both-kernels", action="store_true", help="also minitune with the other kernels"
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="wall clock, or the process's CPU time (shared machines)",
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        name = torch.cuda.get_device_name()
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    with_reference = not args.no_reference
    if with_reference:
        try:
            import transformers  # noqa: F401
        except ImportError:
            print("(transformers is not installed: minitune only; pip install -e '.[parity]')")
            with_reference = False

    peak32 = matmul_peak(torch.float32, device)
    bf16_ok = device.type == "cuda" or has_bf16_instructions()
    peak16 = matmul_peak(torch.bfloat16, device) if bf16_ok or args.precision == "bf16" else None
    peak = peak16 if args.precision == "bf16" else peak32
    bandwidth = stream_bandwidth(device)
    print(
        f"# minitune benchmark: torch {torch.__version__}, {name}, {args.precision}, "
        f"{args.clock} clock"
    )
    print(f"# CPU: {cpu_model()}; flags: {cpu_flags()}")
    print(
        f"# matmul peak (2048³): fp32 {peak32 / 1e9:,.1f} GFLOP/s"
        + (
            f", bf16 {peak16 / 1e9:,.1f} GFLOP/s"
            if peak16
            else ", bf16 not measured (no bf16 instructions)"
        )
        + f"; streaming bandwidth (512 MB sum): {bandwidth / 1e9:,.1f} GB/s\n"
    )
    for config in args.configs:
        cfg, n_params, rows = bench_config(
            config,
            device,
            args.precision,
            args.repeats,
            with_reference,
            peak,
            (bandwidth, peak),
            args.decode_only,
            args.both_kernels,
            args.train_only,
        )
        print(
            f"## {config}: {n_params / 1e6:.2f}M parameters, d_model {cfg.d_model}, "
            f"{cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, {cfg.ffn}"
        )
        impls = list(next(reversed(rows.values())))  # a decoding row: every implementation
        ratios = [n for n in impls if n != "reference"] if "reference" in impls else []
        print(
            "| measure | "
            + " | ".join(impls)
            + "".join(f" | {n} / reference" for n in ratios)
            + " |"
        )
        print("|---" * (len(impls) + 1 + len(ratios)) + "|")
        for label, values in rows.items():
            fmt = "{:.1%}" if "MFU" in label else "{:.2f}" if "floor" in label else "{:,.0f}"
            cells = [fmt.format(values[i]) if i in values else "" for i in impls]
            for n in ratios:
                ok = n in values and "floor" not in label
                cells.append(f"{values[n] / values['reference']:.2f}×" if ok else "")
            print(f"| {label} | " + " | ".join(cells) + " |")
        print(f"| peak memory (process) | {peak_memory_mb(device):,.0f} MB |\n")

    if args.decode_only or args.train_only:
        pass
    elif device.type == "cpu" and args.precision == "fp32" and has_bf16_instructions():
        cfg = model_config(args.configs[0])
        torch.manual_seed(0)
        ours = Ours(build(cfg, device), device)
        x = torch.randint(3, cfg.vocab_size, (BATCH, SRC))
        y = torch.randint(3, cfg.vocab_size, (BATCH, TGT))
        dec = shift_right(y, cfg.decoder_start_id, cfg.pad_id)
        bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
        runs = {
            "fp32": ours.train_step_fn(x, dec, y, contextlib.nullcontext()),
            "bf16": ours.train_step_fn(x, dec, y, bf16),
        }
        secs = alternate(runs, args.repeats, device)
        print(f"bf16 autocast training on CPU: {secs['fp32'] / secs['bf16']:.2f}× fp32")
    elif device.type == "cpu":
        print("bf16 autocast on CPU: not measured (this CPU has no bf16 instructions)")
    if args.cache_scaling:
        cache_scaling(args.configs, device, args.repeats)


def cache_scaling(configs: list[str], device: torch.device, repeats: int) -> None:
    """Decoding time per new token at 32 and 256 new tokens, with and without the KV cache."""
    print("\n| config | new tokens | ms/token, cache | ms/token, no cache | speed-up |")
    print("|---|---|---|---|---|")
    for config in configs:
        torch.manual_seed(0)
        model = build(model_config(config)).to(device).eval()
        src = torch.randint(3, model.config.vocab_size, (1, SRC), device=device)
        for n in (32, 256):
            runs = {
                use_cache: partial(
                    model.generate, src, max_new_tokens=n, min_new_tokens=n, use_cache=use_cache
                )
                for use_cache in (True, False)
            }
            secs = alternate(runs, max(1, repeats // 2) if n == 256 else repeats, device)
            cached, uncached = secs[True] / n * 1e3, secs[False] / n * 1e3
            print(f"| {config} | {n} | {cached:.2f} | {uncached:.2f} | {uncached / cached:.1f}× |")


if __name__ == "__main__":
    main()
