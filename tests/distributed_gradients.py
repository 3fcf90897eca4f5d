"""Helper of test_distributed.py (not a test module): the raw gradient of one training step.

Run as one process (`python tests/distributed_gradients.py OUT ddp`) or under torchrun; each
process takes its share of two global micro-batches of 8 examples, as `train` does, and runs
`train.forward_backward` on the wrapped model (DDP or FSDP). Each process saves the step's loss
and its gradients (OUT.rank<r>; under FSDP its shard of each, rows of dim 0), before any clipping
or optimizer step: a gradient off by a constant factor shows here, where Adam's scale-invariant
update would hide it.
"""

import sys
from pathlib import Path

import torch

from minitune.data.batching import collate, encode_records
from minitune.data.formats import read_records
from minitune.model import Seq2SeqTransformer
from minitune.run.distributed import setup, teardown, wrap
from minitune.run.settings import load_run_config
from minitune.tokenizer import Tokenizer
from minitune.train import StepSetup, forward_backward

ROOT = Path(__file__).resolve().parents[1]


def main(out: str, mode: str) -> None:
    dist, _ = setup("cpu", fsdp=mode == "fsdp")
    torch.manual_seed(0)  # the same initial weights in every process
    net = Seq2SeqTransformer(load_run_config(ROOT / "configs" / "tiny.toml")[0]).train()
    model = wrap(net, dist, torch.device("cpu"))
    tok = Tokenizer(ROOT / "tokenizer" / "minitune.model")
    examples, _ = encode_records(
        read_records(ROOT / "data" / "valid.jsonl")[::37][:16], tok, 64, 32
    )
    micro = []
    for start in (0, 8):  # two micro-batches of a global batch of 8, split between processes
        batch = examples[start : start + 8]
        n = len(batch)
        micro.append(
            collate(
                batch[dist.rank * n // dist.world_size : (dist.rank + 1) * n // dist.world_size],
                tok.pad_id,
            )
        )
    loss, _ = forward_backward(model, micro, StepSetup("cpu", tok.pad_id, dist=dist))
    grads = {}
    for name, p in net.named_parameters():
        grad = p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad  # FSDP: this shard
        grads[name] = grad.detach().clone()
    torch.save(
        {"loss": loss, "grads": grads, "world_size": dist.world_size}, f"{out}.rank{dist.rank}"
    )
    dist.barrier()  # nobody leaves the process group while another still works in it
    teardown(dist)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
