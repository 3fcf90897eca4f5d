"""What the sub-command families share: the one-line user error and argparse helpers.

raise UserError("--top-p must be in (0, 1], got 2.0")   # main prints it, exit status 2
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
