"""The sub-commands about data: `minitune data generate|corpus|fresh` (the generated suite, the
world corpus, fresh training examples) and `minitune tokenizer train`.

    minitune data generate --out data/ --seed 0
    minitune data fresh --out runs/fresh_train.jsonl --per-task 4000
    minitune tokenizer train --data my_texts.txt --out my_tok
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minitune.cli.shared import UserError, positive_int


def cmd_data_generate(args: argparse.Namespace) -> int:
    """Write the instruction suite's splits and the pretraining corpus."""
    from minitune.suite.corpus import write_corpus
    from minitune.suite.tasks import SPLITS, GenerationError, write_suite

    counts = {"train": args.train_per_task} if args.train_per_task else None
    try:
        summary = write_suite(args.out, seed=args.seed, counts=counts)
    except GenerationError as err:  # the suite must be exact: say which tasks, and stop
        raise UserError(f"{err}\n(for more training data, see `minitune data fresh`)") from None
    n_docs = write_corpus(
        Path(args.out) / "pretrain.txt", seed=args.seed, n_documents=args.documents
    )
    for split in SPLITS:
        tasks = summary[split]
        print(f"{args.out}/{split}.jsonl: {sum(tasks.values())} examples, {len(tasks)} tasks")
    print(f"{args.out}/pretrain.txt: {n_docs} documents")
    return 0


def cmd_data_corpus(args: argparse.Namespace) -> int:
    """Write the world corpus (the base model's pretraining text)."""
    from minitune.suite.world import write_world

    if not str(args.out).endswith((".txt", ".txt.gz")):
        raise UserError(f"--out {args.out}: the corpus is a .txt or .txt.gz file")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    n_docs = write_world(args.out, seed=args.seed, n_documents=args.documents, log=print)
    print(f"{args.out}: {n_docs} documents, {Path(args.out).stat().st_size:,} bytes")
    return 0


def cmd_data_fresh(args: argparse.Namespace) -> int:
    """Write a fresh training file: --per-task examples of every seen task, none in evaluation."""
    import time

    from minitune.suite.tasks import GenerationError, asked_count, write_training_set

    if not 0 <= args.grammar <= 1:
        raise UserError(f"--grammar {args.grammar}: a share, from 0 to 1")
    start = time.perf_counter()
    try:
        counts = write_training_set(
            args.out,
            args.per_task,
            seed=args.seed,
            wide=not args.narrow,
            shared=args.shared,
            grammar=args.grammar,
        )
    except GenerationError as err:  # the suite of this seed (to avoid) cannot be made
        raise UserError(str(err)) from None
    seconds = time.perf_counter() - start
    per_task = ", ".join(f"{task} {n:,}" for task, n in counts.items())
    print(
        f"{args.out}: {sum(counts.values()):,} examples, {len(counts)} tasks, {seconds:.1f} s; "
        f"per task: {per_task}"
    )
    for task, n in counts.items():
        if n < asked_count(task, args.per_task):
            print(
                f"minitune: warning: {task}: {n:,} distinct examples "
                f"(asked {asked_count(task, args.per_task):,})",
                file=sys.stderr,
            )
    return 0


def _tokenizer_training_text(paths: list[str], out: Path) -> None:
    """One sentence per line for SentencePiece: the prompts and answers of instruction files
    (.json/.jsonl), the lines of text files."""
    import gzip

    from minitune.data.documents import read_text
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
                    f.write(read_text(path) + "\n")
                except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as err:
                    raise UserError(f"{path}: cannot read as UTF-8 text: {err}") from None


def cmd_tokenizer_train(args: argparse.Namespace) -> int:
    """Train a SentencePiece model on the given files."""
    from minitune.tokenizer import COPYABLE, Segmentation, Tokenizer, train_tokenizer

    # The training text goes next to the model, under a fixed name, because SentencePiece
    # records the input path in the model: a random temporary name would change its bytes.
    text = Path(f"{args.out}.training-text.txt")
    text.parent.mkdir(parents=True, exist_ok=True)
    try:
        _tokenizer_training_text(args.data, text)
        segmentation = COPYABLE if args.segmentation == "copyable" else Segmentation()
        model = train_tokenizer(
            [text], args.out, args.vocab_size, args.model_type, segmentation=segmentation
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    finally:
        text.unlink(missing_ok=True)
    tok = Tokenizer(model)
    print(
        f"{model}: {tok.vocab_size} pieces ({args.model_type}, {args.segmentation} "
        f"segmentation), sha256 {tok.fingerprint()}"
    )
    return 0


def add_parsers(sub) -> None:
    """The sub-commands data generate|corpus|fresh and tokenizer train."""
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
    p.add_argument(
        "--train-per-task",
        type=positive_int,
        default=None,
        help="train examples per task (default: 500; changes the other splits too)",
    )
    p.add_argument(
        "--documents", type=positive_int, default=4000, help="pretraining corpus documents"
    )
    p.set_defaults(func=cmd_data_generate)

    p = data.add_parser(
        "corpus",
        help="write the world corpus: web-like text for pretraining a base model",
        description="Write the world corpus (minitune/suite/world.py): stories, news,\n"
        "notices, emails and letters with addresses, dialogues, encyclopedia paragraphs,\n"
        "French with English glosses, synonyms and code, from a general English word list\n"
        "and the generators' whole lexicon. No document holds an evaluation input, prompt\n"
        "or answer of several words, and every word of every task phrasing occurs. The\n"
        "same seed gives the same bytes.",
        epilog="examples:\n  minitune data corpus --out data/world.txt.gz\n"
        "  minitune data corpus --out /tmp/small.txt --documents 1000 --seed 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="data/world.txt.gz", help="output file (.txt or .txt.gz)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--documents",
        type=positive_int,
        default=60000,
        help="documents before the usage sentences (default: 60000)",
    )
    p.set_defaults(func=cmd_data_corpus)
    _fresh_parser(data)
    _tokenizer_parser(sub)


def _fresh_parser(data) -> None:
    """The sub-command data fresh."""
    p = data.add_parser(
        "fresh",
        help="draw a fresh training file: many more examples per task, none in evaluation",
        description="Write a training file with up to --per-task examples of every seen task\n"
        "(seen phrasings only), drawn from wider value pools than the shipped suite and from\n"
        "their own random stream. No example shares an input, an (input, answer) pair or a\n"
        "prompt with valid/test/heldout_phrasings/heldout_tasks of the suite of the same\n"
        "--seed, so the shipped files stay valid for evaluation. A task with fewer distinct\n"
        "examples than asked gives what it has, with a warning. Same arguments, same bytes.",
        epilog="examples:\n  minitune data fresh --out runs/fresh_train.jsonl --per-task 4000\n"
        "  minitune train --data runs/fresh_train.jsonl --out runs/fresh --max-minutes 15",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="the JSONL file to write")
    p.add_argument("--per-task", type=positive_int, required=True, help="examples per task")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the suite whose evaluation splits to avoid, and the draw (default: 0)",
    )
    p.add_argument(
        "--narrow",
        action="store_true",
        help="draw values from the shipped suite's small pools, not the wide ones",
    )
    p.add_argument(
        "--shared",
        action="store_true",
        help="also the training-only families over the suite's inputs, told apart "
        "by their instruction alone (minitune/suite/families_shared.py)",
    )
    p.add_argument(
        "--grammar",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="ask this share (0 to 1) of the examples with phrasings generated from a grammar "
        "(minitune/suite/phrasings.py) instead of the five trained ones (default: 0)",
    )
    p.set_defaults(func=cmd_data_fresh)


def _tokenizer_parser(sub) -> None:
    """The sub-command tokenizer train."""
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
    p.add_argument(
        "--segmentation",
        choices=["copyable", "plain"],
        default="copyable",
        help="copyable (default): a space before every line and capital runs one "
        "letter per token, stored beside the model; plain: SentencePiece as it is",
    )
    p.set_defaults(func=cmd_tokenizer_train)
