"""What the sub-command families share: the one-line user error, argparse helpers, and loading a
checkpoint for a job.

    raise UserError("--top-p must be in (0, 1], got 2.0")   # main prints it, exit status 2
    model, tok, info = load_checkpoint("runs/laptop/best", "auto")
"""

from __future__ import annotations

import argparse

DEVICES = ["auto", "cpu", "cuda", "mps"]


class UserError(Exception):
    """A mistake the user can fix; the command line prints it without a traceback (exit 2)."""


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def sub_parser(sub, name: str, help: str, description: str, examples: list[str]):
    """A sub-command's parser with its description and an "examples:" epilog, as written."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def load_checkpoint(checkpoint: str, device: str, fused_kernels: str = "auto"):
    """(model, tokenizer, info) of a minitune checkpoint folder or a Hugging Face T5 / Flan-T5
    folder; LoRA adapters are merged in. `fused_kernels` (--fused-kernels): "on", "off" (the
    explicit arithmetic) or "auto" (on with CUDA only), model.use_fused_kernels."""
    from minitune.checkpoint import load_pretrained
    from minitune.device import fused_kernels_on, pick_device
    from minitune.lora import merge_lora
    from minitune.tokenizer import Tokenizer

    device = pick_device(device)
    model, tokenizer_file, info = load_pretrained(checkpoint, device)
    if model.lora is not None:
        merge_lora(model)  # an adapter checkpoint: fold the adapters in, as fast as the base
    model.use_fused_kernels(fused_kernels_on(fused_kernels, device))
    return model, Tokenizer(tokenizer_file), info
