"""Training on several processes (GPUs, or CPU cores) with torch.distributed, launched by torchrun.

    torchrun --nproc_per_node 4 -m minitune train --config configs/laptop.toml
    torchrun --nproc_per_node 4 -m minitune train --fsdp ...          # shard the model too

torchrun starts one process per device and tells each its RANK, LOCAL_RANK and WORLD_SIZE through
environment variables; `setup` reads them (one process, no variables: nothing to do). Then:

- data parallel (DistributedDataParallel): every process holds the whole model and takes its own
  slice of each global batch; after backward the gradients are averaged across processes (an
  all-reduce), so every process makes the same update;
- fully sharded (FSDP, `--fsdp`): each process holds only a 1/WORLD_SIZE shard of every weight,
  gradient and optimizer state, and gathers a layer's full weights just when it computes it: for
  training state that does not fit one device (with AdamW, weights + gradients + two moments are
  4× the weights). Each process still builds the whole model once before sharding it, so the
  weights alone must fit. Checkpoints gather the full weights, so they load on one device like
  any other.

The global batch is batch_size × WORLD_SIZE × grad_accum examples, drawn in the same order as one
process would draw them; the loss of every process is divided by the token count of the whole
global batch, so N processes compute the same update as one process with an N times larger batch
(tests/test_distributed.py checks it to 1e-6 with 2 CPU processes). Only rank 0 writes logs and
checkpoints. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed
from torch import nn


@dataclass
class Distributed:
    """Where this process stands: rank among world_size processes (1 process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    fsdp: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """The element-wise sum of `values` over all processes (the same list on every one)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        if torch.distributed.get_backend() == "nccl":
            t = t.cuda()
        torch.distributed.all_reduce(t)
        return t.tolist()

    def max(self, value: int) -> int:
        """The largest `value` over all processes (the same number on every one)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64)
        if torch.distributed.get_backend() == "nccl":
            t = t.cuda()
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj) -> list:
        """`obj` of every process, in rank order (on every process)."""
        if not self.enabled:
            return [obj]
        result = [None] * self.world_size
        torch.distributed.all_gather_object(result, obj)
        return result

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def setup(device_name: str, fsdp: bool = False) -> tuple[Distributed, str]:
    """Join the process group torchrun set up (if any); returns it and the device name to use
    ("cuda:LOCAL_RANK" for a CUDA process group)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(fsdp=fsdp), device_name
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    else:
        device_name = "cpu"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, world_size, local_rank, fsdp), device_name


def teardown(dist: Distributed) -> None:
    """Leave the process group together: every process waits for the others first, so none
    tears down its communication threads while another still talks to it."""
    if dist.enabled and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def wrap(model: nn.Module, dist: Distributed, device: torch.device) -> nn.Module:
    """The model as the training loop calls it: DDP or FSDP around it, or itself."""
    if not dist.enabled:
        return model
    if dist.fsdp:
        from torch.distributed.fsdp import fully_shard

        for stack in (model.encoder, model.decoder):
            for layer in stack.layers:
                fully_shard(layer)  # gather one layer's weights at a time
        fully_shard(model)  # the rest: embeddings, final norms, head
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP's and torch.compile's wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def no_sync(model: nn.Module, last_micro_batch: bool):
    """While accumulating gradients, synchronise them only after the last micro-batch: DDP's
    all-reduce (its no_sync context), FSDP's reduce-scatter (set_requires_gradient_sync)."""
    inner = getattr(model, "_orig_mod", model)  # under torch.compile
    if hasattr(inner, "set_requires_gradient_sync"):  # FSDP2
        inner.set_requires_gradient_sync(last_micro_batch)
    elif isinstance(inner, nn.parallel.DistributedDataParallel) and not last_micro_batch:
        return inner.no_sync()
    return contextlib.nullcontext()


def full_state(model: nn.Module, optimizer, dist: Distributed) -> tuple[dict, dict | None]:
    """Full (unsharded) model and optimizer state dicts on CPU, for a checkpoint (optimizer None:
    the weights only). Under FSDP every process must call it (it gathers); complete on rank 0."""
    if not dist.fsdp or not dist.enabled:
        return model.state_dict(), optimizer.state_dict() if optimizer is not None else None
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    if optimizer is None:
        return model_state, None
    return model_state, get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(
    model: nn.Module, optimizer, model_state: dict, optim_state: dict, dist: Distributed
) -> None:
    """Load full state dicts (from a checkpoint) into a possibly sharded model and optimizer."""
    if not dist.fsdp or not dist.enabled:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optim_state, options=options)
