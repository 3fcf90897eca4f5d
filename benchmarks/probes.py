"""Probes: one-minute tasks that tell what a training recipe cannot learn.

Each probe is a tiny generated task with its own train and test examples. A probe run trains
the recipe (a config file plus --set overrides, exactly as `minitune train` would) on the probe
alone for a fixed number of steps, then scores greedy answers on the probe's test examples
(exact match, %). The test examples use values never seen in training where the probe is about
generalising (unseen pseudo-words), so memorising cannot pass.

    copy_order   "Repeat the words." + 2-5 common words          -> the same words, in order
    copy_rare    the same with pseudo-words never seen in training (copying by content)
    copy_retok   "name: Xx" -> {"name": "Xx"}: the word changes its tokenization in the output
    locate       six "key: value" lines, "What is the <key>?"   -> that line's value
    instruction  one word list under "Reverse the order", "Uppercase", "Acronym" or "Count":
                 the input alone cannot tell which answer is wanted

    python benchmarks/probes.py                                   # the default recipe
    python benchmarks/probes.py --set model.position=sinusoidal   # a candidate recipe
    python benchmarks/probes.py --probes copy_rare locate --steps 800

One JSON line per run is appended to --log (benchmarks/probe_runs.jsonl).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minitune.suite.lexicon import ADJECTIVES, CITIES, FIRST_NAMES, NOUNS  # noqa: E402

WORDS = sorted({n.en for n in NOUNS} | {a.en for a in ADJECTIVES})
KEYS = ["name", "city", "colour", "age", "pet", "job", "day", "sport"]


def pseudo_word(rng: random.Random) -> str:
    """A pronounceable made-up word such as 'ravolen' (2-4 syllables)."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4)))


def pseudo_pools(seed: int = 0) -> tuple[list[str], list[str]]:
    """Disjoint pools of made-up words for training and for testing."""
    rng = random.Random(f"pseudo-{seed}")
    words = sorted({pseudo_word(rng) for _ in range(4000)})
    rng.shuffle(words)
    return words[:1500], words[1500:2000]


def make_probe(name: str, rng: random.Random, test: bool) -> dict:
    """One example of a probe: {"instruction", "input", "output"}."""
    train_pseudo, test_pseudo = pseudo_pools()
    if name == "copy_order":
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
        return {
            "instruction": "Repeat the words.",
            "input": " ".join(words),
            "output": " ".join(words),
        }
    if name == "copy_rare":
        pool = test_pseudo if test else train_pseudo
        words = [rng.choice(pool) for _ in range(rng.randint(2, 5))]
        return {
            "instruction": "Repeat the words.",
            "input": " ".join(words),
            "output": " ".join(words),
        }
    if name == "copy_retok":
        pool = test_pseudo if test else train_pseudo
        value = rng.choice(pool).capitalize()
        return {
            "instruction": "Write the field as JSON.",
            "input": f"name: {value}",
            "output": json.dumps({"name": value}),
        }
    if name == "locate":
        keys = rng.sample(KEYS, 6)
        values = {k: rng.choice(WORDS + FIRST_NAMES + CITIES) for k in keys}
        asked = rng.choice(keys)
        lines = "\n".join(f"{k}: {values[k]}" for k in keys)
        return {"instruction": f"What is the {asked}?", "input": lines, "output": values[asked]}
    if name == "instruction":
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 4))]
        kind = rng.choice(["reverse", "upper", "acronym", "count"])
        text = " ".join(words)
        instruction, output = {
            "reverse": ("Reverse the order of the words.", " ".join(reversed(words))),
            "upper": ("Write the words in upper case.", text.upper()),
            "acronym": ("Make an acronym of the words.", "".join(w[0] for w in words).upper()),
            "count": ("How many words are there?", str(len(words))),
        }[kind]
        return {"instruction": instruction, "input": text, "output": output, "kind": kind}
    raise ValueError(f"unknown probe {name!r}; probes: {', '.join(PROBES)}")


PROBES = ("copy_order", "copy_rare", "copy_retok", "locate", "instruction")


def write_probe(name: str, folder: Path, n_train: int, n_test: int, seed: int) -> None:
    """train.jsonl and test.jsonl of one probe; no test input appears in training."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"probe-{name}-{seed}")
    test, seen = [], set()
    while len(test) < n_test:
        ex = make_probe(name, rng, test=True)
        if ex["input"] not in seen:
            seen.add(ex["input"])
            test.append(ex)
    train = []
    for _ in range(50 * n_train):
        if len(train) == n_train:
            break
        ex = make_probe(name, rng, test=False)
        if ex["input"] not in seen:
            train.append(ex)
    for split, rows in (("train", train), ("test", test)):
        with open(folder / f"{split}.jsonl", "w") as f:
            for row in rows:  # the instruction probe's kinds are scored apart: "instruction/upper"
                kind = row.pop("kind", None)
                f.write(json.dumps({**row, "task": f"{name}/{kind}" if kind else name}) + "\n")


def main(argv: list[str] | None = None) -> int:
    from minitune.evaluate import evaluate_files
    from minitune.run.checkpoint import load_checkpoint
    from minitune.run.settings import load_run_config, parse_override
    from minitune.train import train

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs/laptop.toml"))
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--probes", nargs="+", default=list(PROBES), choices=PROBES)
    p.add_argument("--steps", type=int, default=600, help="training steps per probe")
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--name", default="recipe", help="a name for the log row")
    p.add_argument("--out", default="/tmp/minitune-probes")
    p.add_argument("--log", default=str(ROOT / "benchmarks/probe_runs.jsonl"))
    args = p.parse_args(argv)

    row = {
        "name": args.name,
        "set": args.set,
        "steps": args.steps,
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    for probe in args.probes:
        folder = Path(args.out) / probe
        shutil.rmtree(folder, ignore_errors=True)
        write_probe(probe, folder / "data", args.n_train, args.n_test, seed=0)
        overrides: dict[str, dict] = {"model": {}, "train": {}}
        for text in args.set:
            section, key, value = parse_override(text)
            overrides[section][key] = value
        overrides["train"].update(
            data=[str(folder / "data/train.jsonl")],
            valid_data=str(folder / "data/test.jsonl"),
            out=str(folder / "run"),
            max_steps=args.steps,
            eval_every=args.steps,
            max_minutes=None,
            warmup_steps=min(100, args.steps // 10),
            fresh_per_task=0,
        )
        model_cfg, train_cfg = load_run_config(args.config, overrides)
        start = time.time()
        train(model_cfg, train_cfg, progress=False, log=lambda *a: None)
        minutes = (time.time() - start) / 60
        model, tok, _ = load_checkpoint(str(folder / "run/last"), "cpu")
        result = evaluate_files(
            model, tok, [str(folder / "data/test.jsonl")], None, train_cfg.max_source_length, 32
        )
        em = 100 * sum(s.exact_match for s in result["scored"]) / len(result["scored"])
        wrong = [s for s in result["scored"] if not s.exact_match][:2]
        row[probe] = round(em, 1)
        tasks = result["report"]["test"]["tasks"]
        if len(tasks) > 1:  # a probe of several kinds: each kind's own score too
            row.update({task: round(r["exact_match"], 1) for task, r in tasks.items()})
            print(
                "    by kind: "
                + ", ".join(f"{t} {r['exact_match']:.1f}%" for t, r in tasks.items())
            )
        print(
            f"{probe:12s} EM {em:5.1f}%  ({minutes:.1f} min)"
            + "".join(
                f"\n    {s.prompt!r} -> {s.prediction!r} (want {s.reference!r})" for s in wrong
            )
        )
    with open(args.log, "a") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
