"""The `minitune` command line.

    minitune presets                  the named model presets and their sizes
    minitune data generate            write the generated instruction suite and corpus
    minitune tokenizer train          train a SentencePiece tokenizer on data files

Training, evaluation and generation commands arrive with the training issue.

User mistakes (a bad argument or value) print one line and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def cmd_data_generate(args: argparse.Namespace) -> int:
    """Write the instruction suite's splits and the pretraining corpus."""
    from minitune.data.corpus import write_corpus
    from minitune.data.tasks import SPLITS, write_suite

    counts = {"train": args.train_per_task} if args.train_per_task else None
    summary = write_suite(args.out, seed=args.seed, counts=counts)
    n_docs = write_corpus(
        Path(args.out) / "pretrain.txt", seed=args.seed, n_documents=args.documents
    )
    for split in SPLITS:
        tasks = summary[split]
        print(f"{args.out}/{split}.jsonl: {sum(tasks.values())} examples, {len(tasks)} tasks")
    print(f"{args.out}/pretrain.txt: {n_docs} documents")
    return 0


def _tokenizer_training_text(paths: list[str], out: Path) -> None:
    """One sentence per line for SentencePiece: the prompts and answers of instruction files
    (.json/.jsonl), the lines of text files."""
    from minitune.data.formats import DataError, read_records
    from minitune.data.templates import format_prompt

    with open(out, "w", encoding="utf-8") as f:
        for path in paths:
            if path.endswith((".jsonl", ".json")):
                try:
                    records = read_records(path)
                except DataError as err:
                    raise UserError(str(err)) from None
                for r in records:
                    f.write(format_prompt(r.instruction, r.input) + "\n" + r.output + "\n")
            else:
                try:
                    f.write(Path(path).read_text(encoding="utf-8") + "\n")
                except (OSError, UnicodeDecodeError) as err:
                    raise UserError(f"{path}: cannot read as UTF-8 text: {err}") from None


def cmd_tokenizer_train(args: argparse.Namespace) -> int:
    """Train a SentencePiece model on the given files."""
    from minitune.tokenizer import Tokenizer, train_tokenizer

    # The training text goes next to the model, under a fixed name, because SentencePiece
    # records the input path in the model: a random temporary name would change its bytes.
    text = Path(f"{args.out}.training-text.txt")
    text.parent.mkdir(parents=True, exist_ok=True)
    try:
        _tokenizer_training_text(args.data, text)
        model = train_tokenizer([text], args.out, args.vocab_size, args.model_type)
    except ValueError as err:
        raise UserError(str(err)) from None
    finally:
        text.unlink(missing_ok=True)
    tok = Tokenizer(model)
    print(f"{model}: {tok.vocab_size} pieces ({args.model_type}), sha256 {tok.fingerprint()}")
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

    data = sub.add_parser("data", help="the generated instruction suite").add_subparsers(
        dest="data_command", metavar="COMMAND", required=True
    )
    p = data.add_parser(
        "generate",
        help="write the instruction suite (5 splits) and the pretraining corpus",
        description="Write train/valid/test/heldout_phrasings/heldout_tasks JSONL files and "
        "pretrain.txt, deterministically from the seed (the same seed gives the same bytes).",
        epilog="examples:\n  minitune data generate --out data/ --seed 0\n"
        "  minitune data generate --out /tmp/small --train-per-task 100",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="data", help="output folder (default: data)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--train-per-task", type=int, default=None, help="train examples per task")
    p.add_argument("--documents", type=int, default=4000, help="pretraining corpus documents")
    p.set_defaults(func=cmd_data_generate)

    tokenizer = sub.add_parser("tokenizer", help="SentencePiece tokenizers").add_subparsers(
        dest="tokenizer_command", metavar="COMMAND", required=True
    )
    p = tokenizer.add_parser(
        "train",
        help="train a SentencePiece tokenizer",
        description="Train a SentencePiece model with minitune's conventions: pad 0, eos 1, "
        "unk 2, sentinels <extra_id_0..99>, byte fallback, text kept exactly.",
        epilog="examples:\n  minitune tokenizer train --data data/train.jsonl data/pretrain.txt "
        "--out tokenizer/minitune --vocab-size 4000\n"
        "  minitune tokenizer train --data my_texts.txt --out my_tok --model-type bpe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", nargs="+", required=True, help="instruction files or text files")
    p.add_argument("--out", required=True, help="model prefix: writes PREFIX.model/.vocab")
    p.add_argument("--vocab-size", type=int, default=4000, help="pieces (default: 4000)")
    p.add_argument("--model-type", choices=["unigram", "bpe"], default="unigram")
    p.set_defaults(func=cmd_tokenizer_train)
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
