"""The `minitune` command line: `main`, and the parser assembled from one module per family.

    minitune pipeline                 the laptop pipeline: (pretrain,) train, evaluate, examples
    minitune train / pretrain         instruction tuning / span-corruption pretraining
    minitune eval                     exact match, token F1, ROUGE-L, code pass rate per task
    minitune generate / chat          use a checkpoint
    minitune check                    run the conformance kit on a layer variant
    minitune inspect                  attention pictures for a prompt
    minitune lora merge               fold a LoRA adapter into its base model
    minitune presets                  the named model presets and their sizes
    minitune data generate            write the generated instruction suite and corpus
    minitune data fresh               draw fresh training data (many more examples per task)
    minitune tokenizer train          train a SentencePiece tokenizer on data files

One module per family of sub-commands adds its own to the parser (pipeline.py, training.py,
use.py, models.py, data.py); docs/layout.md, the project's one module index, says what each holds.
"""

from __future__ import annotations

import argparse
import sys

from minitune import __version__
from minitune.cli import data, models, pipeline, training, use
from minitune.cli.shared import UserError


def build_parser() -> argparse.ArgumentParser:
    """The `minitune` parser: every family's sub-commands, in the order --help lists them."""
    parser = argparse.ArgumentParser(
        prog="minitune",
        description="A readable encoder-decoder Transformer (T5 family) for instruction tuning.",
    )
    parser.add_argument("--version", action="version", version=f"minitune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for family in (pipeline, training, use, models, data):
        family.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `minitune` command; returns its exit status (2: a user mistake, printed in one
    line; 1: a check failed or training diverged; 128 + a signal's number: stopped by it, e.g.
    130 for Ctrl-C (SIGINT), 143 for SIGTERM)."""
    import os

    # As `python -m` does: a config may name a layer as "my_module:MyClass" in the current folder.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # e.g. to print a resume command
    if args.command is None:
        parser.print_help()
        return 2
    from minitune.config import ConfigError
    from minitune.data.formats import DataError
    from minitune.run.checkpoint import CheckpointError
    from minitune.run.errors import DivergenceError, RunError

    try:
        return args.func(args)
    except DivergenceError as err:  # not a mistake in the command, but nothing to trace either
        print(f"minitune: error: {err}", file=sys.stderr)
        return 1
    except (UserError, ConfigError, DataError, CheckpointError, RunError, FileNotFoundError) as err:
        print(f"minitune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (which stops between steps, saves, returns 130)
        print("minitune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
