"""Where a run computes and in which precision: the device ("auto": CUDA, then MPS, then CPU)
and the autocast context of fp32 / bf16 / fp16, with "auto" timing bf16 against fp32 on a CPU.

    device = pick_device("auto")
    precision, why = resolve_precision("auto", device, (d_model, d_ff))   # -> ("bf16", "auto: ...")
    autocast, use_scaler = precision_context(precision, device)           # with autocast: forward

The training loop (minitune/train.py) sets these up once, before its first step.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from minitune.run.distributed import Distributed
from minitune.run.errors import RunError

BF16_MIN_SPEEDUP = 1.1  # "auto" takes bf16 on a CPU when its matmuls are this much faster


def pick_device(name: str) -> torch.device:
    """ "auto" -> CUDA if present, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("device 'cuda' was asked for, but no CUDA GPU is available")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (x86 AVX512-BF16 or AMX-BF16 on Linux).
    Without those instructions bf16 matmuls are emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: do not guess
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# The CPU features that decide minitune's speed and precision (AVX2/FMA: fast fp32 matmuls;
# AVX512-BF16 and AMX: native bf16), named on the run's page.
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def machine() -> dict:
    """What a run computes on, for its page: the CPU's model and the features of CPU_FEATURES it
    has, its logical cores, torch's threads and version, and the GPU if there is one.

    Example: {"cpu": "AMD EPYC 9B14", "cpu_features": ["avx2", "fma", "avx512f", "avx512_bf16"],
    "cores": 2, "torch_threads": 2, "torch": "2.13.0+cpu", "gpu": None, ...}"""
    import os
    import platform

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:  # not Linux: the model name from platform, no features
        pass
    return {
        "cpu": cpu,
        "cpu_features": [f for f in CPU_FEATURES if f in flags],
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def resolve_precision(
    precision: str,
    device: torch.device,
    width: tuple[int, int] = (256, 1024),
    dist: Distributed | None = None,
) -> tuple[str, str]:
    """ "auto" -> "bf16" where it is faster, else "fp32"; other values are returned unchanged.
    Returns (precision, why) - why says what "auto" found ("" for an explicit choice).

    CUDA: bf16 where the GPU supports it. CPU: bf16 instructions (AVX512-BF16, AMX) are
    necessary but not enough - on some CPUs that have them, bf16 matmuls still run at half the
    fp32 speed - so "auto" times one matmul of the model's width (d_model x d_ff, `width`) in
    both dtypes (`bf16_speedup`, ~0.2 s) and takes bf16 only when it is clearly faster."""
    if precision != "auto":
        return precision, ""
    if device.type == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp32"), "auto"
    if device.type != "cpu" or not cpu_has_bf16():
        return "fp32", "auto: no bf16 instructions"
    speedup = bf16_speedup(*width)
    if (
        dist is not None and dist.enabled
    ):  # every process the same choice: the mean of their timings
        (total,) = dist.sum([speedup])
        speedup = total / dist.world_size
    choice = "bf16" if speedup > BF16_MIN_SPEEDUP else "fp32"
    return choice, f"auto: bf16 matmuls {speedup:.2f}x the fp32 speed on this CPU"


def bf16_speedup(d_model: int, d_ff: int, rows: int = 2048) -> float:
    """fp32 time / bf16 time of a (rows x d_model) @ (d_model x d_ff) matmul on this CPU (the
    best of a few runs each, after a warm-up): > 1 means bf16 is faster."""
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(rows, d_model, dtype=dtype), torch.randn(d_model, d_ff, dtype=dtype)
        a @ b  # warm-up: oneDNN picks and prepares its kernel
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(4):
                a @ b
            times.append(time.perf_counter() - start)
        best[dtype] = min(times)
    return best[torch.float32] / best[torch.bfloat16]


def precision_context(precision: str, device: torch.device):
    """The autocast context for a precision (fp32: none) and whether a GradScaler is needed."""
    if precision == "fp32":
        return contextlib.nullcontext(), False
    if precision == "fp16" and device.type != "cuda":
        raise RunError("precision 'fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype), precision == "fp16"


def fused_kernels_on(setting: str, device: torch.device) -> bool:
    """Whether attention takes its fused branch, SDPA (TrainConfig.fused_kernels,
    --fused-kernels): "on", "off", or "auto": on with CUDA (PyTorch's flash and memory-efficient
    attention), off on other devices (slower on the project's 2-core CPU: benchmarks/README.md,
    "One path")."""
    if setting == "auto":
        return torch.device(device).type == "cuda"
    return setting == "on"
