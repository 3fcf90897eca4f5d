"""The `minitune` command line.

Sub-commands arrive with the features they drive (training, evaluation, generation, tokenizer);
for now: `minitune presets` shows the named model presets and their sizes.

User mistakes (a bad argument or value) print one line and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys

from minitune import __version__
from minitune.config import PRESETS, ModelConfig


class UserError(Exception):
    """A mistake the user can fix; the command line prints it without a traceback (exit 2)."""


def cmd_presets(args: argparse.Namespace) -> int:
    """Print every preset (or one) with its shape and parameter count."""
    from minitune.model import Seq2SeqTransformer

    names = [args.name] if args.name else list(PRESETS)
    for name in names:
        if name not in PRESETS:
            raise UserError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        cfg = ModelConfig.preset(name)
        n_params = Seq2SeqTransformer(cfg).num_parameters()
        print(
            f"{name:14s} {n_params / 1e6:7.2f}M parameters  d_model={cfg.d_model} "
            f"n_heads={cfg.n_heads} d_ff={cfg.d_ff} layers={cfg.n_encoder_layers}+"
            f"{cfg.n_decoder_layers} vocab={cfg.vocab_size} ffn={cfg.ffn} position={cfg.position}"
        )
        if args.verbose:
            for key, value in cfg.to_dict().items():
                print(f"    {key} = {value!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minitune",
        description="A readable encoder-decoder Transformer (T5 family) for instruction tuning.",
    )
    parser.add_argument("--version", action="version", version=f"minitune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "presets",
        help="list the named model presets and their sizes",
        description="List the named model presets with their shapes and parameter counts.",
        epilog="examples:\n  minitune presets\n  minitune presets laptop --verbose",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", help="show only this preset")
    p.add_argument("-v", "--verbose", action="store_true", help="print every config field")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UserError as err:
        print(f"minitune: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
