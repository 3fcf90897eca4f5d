"""Compare two checkouts of minitune on the same weights: a training step and greedy decoding.

Run it once per tree, alternating, with the tree first on the path (one pinned thread):

    for i in 1 2 3; do
      PYTHONPATH=/path/to/old taskset -c 1 python benchmarks/tree_ab.py
      PYTHONPATH=.            taskset -c 1 python benchmarks/tree_ab.py
    done

Prints one JSON line of seconds: a training step (forward, loss, backward, AdamW) on
8 × (128 + 32) tokens, and 32 greedy tokens at batch 1 and 8 (EOS suppressed). The model is the
bench-tiny shape (d_model 256, 4+4 layers, vocabulary 8000, gated-GELU), seed 0, with the fused
kernels as the commands set them on a CPU: off (FUSED=1: on). Trees from before the one-path
change (d2193bc and older) had two paths: IMPL=reference|fast picks one there (default fast),
and NOFAST=1 passes fast_decode=False (their `model.decode`, not their separate fast decoder).
"""

import json
import os
import time

import torch
from bench import CONFIGS  # benchmarks/bench.py, next to this file

import minitune

torch.set_num_threads(1)
KW = {"fast_decode": False} if os.environ.get("NOFAST") else {}
torch.manual_seed(0)
cfg = minitune.ModelConfig(**CONFIGS["bench-tiny"], dropout=0.0)
model = minitune.Seq2SeqTransformer(cfg)
if hasattr(model, "use_fused_kernels"):  # this tree: one path, the fused switch
    model.use_fused_kernels(os.environ.get("FUSED", "0") == "1")
else:  # an older tree: two paths
    model.set_impl(os.environ.get("IMPL", "fast"))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
x, y = torch.randint(3, 8000, (8, 128)), torch.randint(3, 8000, (8, 32))
decoder_input_ids = minitune.shift_right(y, 0, 0)


def train(n: int = 3) -> float:
    model.train()
    start = time.perf_counter()
    for _ in range(n):
        minitune.cross_entropy_loss(model(x, decoder_input_ids), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    return (time.perf_counter() - start) / n


def greedy(rows: int, n: int = 2) -> float:
    model.eval()
    start = time.perf_counter()
    for _ in range(n):
        with torch.inference_mode():
            model.generate(x[:rows], max_new_tokens=32, min_new_tokens=32, **KW)
    return (time.perf_counter() - start) / n


train(1), greedy(1, 1)  # warm-up
print(json.dumps({"train_s": train(), "greedy_b1_s": greedy(1), "greedy_b8_s": greedy(8)}))
