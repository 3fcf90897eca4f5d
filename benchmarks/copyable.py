"""How copyable are the answers? Per task, answers whose pieces all occur in the prompt.

The copy head (minitune/layers/copy.py) can only point at a token that is in the prompt, so an
answer the tokenizer cuts into pieces the prompt does not hold must be written by the generator,
piece by piece. This counts, for each task of a JSONL file, the answers whose every piece (EOS
left out) is a piece of their prompt, under plain SentencePiece and under minitune's
segmentation conventions (`minitune.tokenizer.COPYABLE`), and the tokens per example each costs.

    python benchmarks/copyable.py                      # data/valid.jsonl, the shipped tokenizer
    python benchmarks/copyable.py --data data/test.jsonl data/heldout_tasks.jsonl
    python benchmarks/copyable.py --before old/minitune.model   # against an older tokenizer
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minitune.data.formats import read_records  # noqa: E402
from minitune.data.templates import format_prompt  # noqa: E402
from minitune.tokenizer import COPYABLE, Segmentation, Tokenizer  # noqa: E402


def copyable_share(records, tok: Tokenizer) -> tuple[dict[str, float], dict[str, float]]:
    """Per task: (share of answers copyable from their prompt, mean prompt+answer tokens)."""
    hits, tokens, count = defaultdict(int), defaultdict(int), defaultdict(int)
    for r in records:
        prompt = set(tok.encode(format_prompt(r.instruction, r.input)))
        answer = tok.encode(r.output)
        task = r.meta.get("task", "?")
        hits[task] += all(i in prompt for i in answer)
        tokens[task] += len(prompt) + len(answer)
        count[task] += 1
    return ({t: 100 * hits[t] / count[t] for t in count}, {t: tokens[t] / count[t] for t in count})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=[str(ROOT / "data/valid.jsonl")])
    p.add_argument("--tokenizer", default=str(ROOT / "tokenizer/minitune.model"))
    p.add_argument(
        "--before",
        help="the plain side's model file (default: --tokenizer's), e.g. "
        "the tokenizer before it was retrained with the conventions",
    )
    args = p.parse_args(argv)
    records = [r for path in args.data for r in read_records(path)]
    before = Tokenizer(args.before or args.tokenizer, Segmentation())
    plain, plain_len = copyable_share(records, before)
    ours, ours_len = copyable_share(records, Tokenizer(args.tokenizer, COPYABLE))
    print(
        "| task | copyable, plain | copyable, conventions | tokens/example, plain → conventions |"
    )
    print("|---|---|---|---|")
    for task in plain:
        print(
            f"| {task} | {plain[task]:.0f}% | {ours[task]:.0f}% | "
            f"{plain_len[task]:.1f} → {ours_len[task]:.1f} |"
        )
    n = len(plain)
    print(
        f"| average | {sum(plain.values()) / n:.1f}% | {sum(ours.values()) / n:.1f}% | "
        f"{sum(plain_len.values()) / n:.1f} → {sum(ours_len.values()) / n:.1f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
