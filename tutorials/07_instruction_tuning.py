# %% [markdown]
# # 7. Instruction tuning: the FLAN question in miniature
#
# FLAN (Wei et al. 2021) asked: if a model is fine-tuned on many tasks *phrased as instructions*,
# does it follow instructions it has never seen? minitune ships a small version of that
# experiment: 30 task families in 11 clusters, 6 phrasings each (`minitune/suite/tasks.py`), with
# held-out phrasings of seen tasks and a whole held-out cluster (extraction). This tutorial looks
# at the data, trains, and evaluates the three questions:
#
# 1. seen tasks, seen phrasings (`data/test.jsonl`);
# 2. seen tasks, an unseen phrasing (`data/heldout_phrasings.jsonl`);
# 3. unseen tasks (`data/heldout_tasks.jsonl`);
#
# and whether the model reads the instruction at all: one task's inputs under another task's
# instruction (`data/contrast.jsonl`), and new combinations of known skills
# (`data/heldout_compositions.jsonl`).

# %%
# Colab, or any Python without minitune: install it first (tutorials/README.md says from where).
import importlib.util
import os
import subprocess
import sys

MINITUNE_SOURCE = os.environ.get("MINITUNE_SOURCE", "git+https://github.com/<owner>/minitune")
if importlib.util.find_spec("minitune") is None:
    if "<owner>" in MINITUNE_SOURCE:
        raise RuntimeError(
            "minitune is not installed: set MINITUNE_SOURCE to a git URL or a folder"
        )
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", MINITUNE_SOURCE], check=True)

# %%
import collections
import json
import tempfile
from pathlib import Path

import torch

from minitune import Seq2SeqTransformer
from minitune.data.formats import read_records
from minitune.data.templates import format_prompt
from minitune.evaluate import format_table, predict, score, summarize
from minitune.kit.tutorial import QUICK, SHIPPED
from minitune.run.checkpoint import load_model
from minitune.run.settings import load_run_config
from minitune.suite.tasks import all_families
from minitune.tokenizer import Tokenizer
from minitune.train import train

# %% [markdown]
# ## The data
#
# Each record is Alpaca-shaped (`instruction`, `input`, `output`) plus `task`, `cluster` and the
# index of its phrasing. The prompt is the instruction, a newline, and the input
# (`minitune/data/templates.py`).

# %%
train_records = read_records(SHIPPED / "data" / "train.jsonl")
print(len(train_records), "training examples")
print(collections.Counter(r.meta["cluster"] for r in train_records))
example = train_records[123]
print("--- prompt\n" + format_prompt(example.instruction, example.input))
print("--- target\n" + example.output)

# %% [markdown]
# The same task, phrased differently — the held-out phrasing is never trained on. The phrasings
# are templates (`minitune/suite/tasks.py`, `all_families`); one with `{input}` writes the input
# into the instruction itself.

# %%
task = example.meta["task"]
family = next(f for f in all_families() if f.name == task)
heldout = read_records(SHIPPED / "data" / "heldout_phrasings.jsonl")
seen = sorted({r.meta["template"] for r in train_records if r.meta["task"] == task})
unseen = sorted({r.meta["template"] for r in heldout if r.meta["task"] == task})
for i, template in enumerate(family.phrasings):
    trained = f"{task}/{i}" in seen
    print(f"  {'trained on' if trained else 'held out  '}: {template!r}")

# %% [markdown]
# ## Train
#
# Full mode trains the laptop preset (3.75M parameters) as `minitune pipeline` does, for 11
# minutes on a 2-core CPU: 177,000 fresh examples drawn from the suite's generators (never an
# evaluation example; `fresh_per_task` in `configs/laptop.toml`), 5,000 of each of the 27 tasks
# and 2,000 of each of 21 training-only tasks over the same inputs (`fresh_shared`: a number
# list asked for its sum, its length, its smallest number; a word list asked to be reversed),
# where only the instruction tells the tasks apart; and a model whose output layer
# can *copy* a token from the prompt (`minitune/layers/copy.py`). Without the copy head a model
# this small learns names value by value and answers "Thank you, Emma." to every booking; with
# it, it points at the name in the prompt.
#
# Quick mode has half a minute, too little for thirty tasks. It tunes a 64-wide tiny model on
# three of them — sentiment, topic and letter counting — from the same `data/train.jsonl`:
# enough for answers that visibly turn right, and to ask whether the model reads the
# instruction at all.

# %%
out = Path(tempfile.mkdtemp(prefix="minitune-tutorial-"))
paths = {"tokenizer": str(SHIPPED / "tokenizer" / "minitune.model"), "out": str(out / "run")}
if QUICK:
    TASKS = ("classify_sentiment", "classify_topic", "count_letter")
    for split in ("train", "valid"):  # the three tasks' lines of the shipped files
        lines = (SHIPPED / "data" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        keep = [line for line in lines if json.loads(line)["task"] in TASKS]
        (out / f"{split}.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
    overrides = {
        "model": {"d_model": 64, "d_ff": 128},
        "train": {
            **paths,
            "data": [str(out / "train.jsonl")],
            "max_steps": 200,
            "valid_data": str(out / "valid.jsonl"),
            "eval_every": 100,
            "batch_size": 16,
            "warmup_steps": 20,
        },
    }
    model_cfg, train_cfg = load_run_config(SHIPPED / "configs" / "tiny.toml", overrides)
else:
    TASKS = tuple(sorted({r.meta["task"] for r in train_records}))
    paths["valid_data"] = str(SHIPPED / "data" / "valid.jsonl")
    model_cfg, train_cfg = load_run_config(SHIPPED / "configs" / "laptop.toml", {"train": paths})
summary = train(model_cfg, train_cfg, progress=not QUICK)
rows = [json.loads(line) for line in Path(train_cfg.out, "metrics.jsonl").read_text().splitlines()]
losses = [r["loss"] for r in rows if "loss" in r]
print(f"training loss {losses[0]:.2f} -> {losses[-1]:.2f}")
assert losses[-1] < 0.5 * losses[0], "instruction tuning should lower the training loss"

# %% [markdown]
# ## Before and after, as text
#
# The same prompts from `data/test.jsonl` (never trained on), answered greedily by the model
# before tuning (the same architecture, freshly initialised) and after:

# %%
tuned, _ = load_model(f"{train_cfg.out}/best")
tok = Tokenizer(f"{train_cfg.out}/best/tokenizer.model")
torch.manual_seed(0)
untuned = Seq2SeqTransformer(tuned.config).eval()  # the starting point: random weights
test_records = [r for r in read_records(SHIPPED / "data" / "test.jsonl") if r.meta["task"] in TASKS]
SHOW = (
    TASKS
    if QUICK
    else (
        "classify_sentiment",
        "classify_topic",
        "uppercase",
        "addition",
        "translate_phrase_en_fr",
        "dialogue_booking",
    )
)
shown = [r for t in SHOW for r in [x for x in test_records if x.meta["task"] == t][:2]]
prompts = [format_prompt(r.instruction, r.input) for r in shown]
before = predict(untuned, tok, prompts, max_new_tokens=12)
after = predict(tuned, tok, prompts, max_new_tokens=24)
for r, prompt, b, a in zip(shown, prompts, before, after, strict=True):
    print("---", r.meta["task"], "\n" + prompt)
    print(f"   before: {b!r}\n   after : {a!r}   (right answer: {r.output!r})")
right_after = sum(a == r.output for a, r in zip(after, shown, strict=True))
right_before = sum(b == r.output for b, r in zip(before, shown, strict=True))
print(f"right before tuning: {right_before} of {len(shown)}; after: {right_after}")
assert right_after > right_before, "tuning should turn some answers right"

# %% [markdown]
# ## Does it read the instruction?
#
# A model can score well on these tasks while ignoring the instruction, by guessing the task
# from the input alone: a review looks like sentiment, a news line like a topic. The probe: the
# *same input* under three instructions it was trained on (sentiment, topic, count a letter);
# only the pairing with this input is new. If the model reads the instruction, the *kind* of
# answer follows it: positive/negative, one of the four topics, a number.

# %%
KINDS = {  # what an answer to each instruction must look like
    "classify_sentiment": lambda a: a in {"positive", "negative"},
    "classify_topic": lambda a: a in {"business", "science", "sports", "weather"},
    "count_letter": str.isdigit,
}
SHORT = {"classify_sentiment": "sentiment", "classify_topic": "topic", "count_letter": "count"}
# one trained phrasing per task that takes the input in its own field (not written inline)
phrasing = {
    t: next(r.instruction for r in train_records if r.meta["task"] == t and r.input) for t in KINDS
}
follows = {}  # (the input's own task, the task asked) -> share of answers of the asked kind
for source_task in ("classify_topic", "classify_sentiment"):
    texts = [r.input for r in test_records if r.meta["task"] == source_task and r.input][:30]
    for asked in KINDS:
        answers = predict(
            tuned, tok, [format_prompt(phrasing[asked], t) for t in texts], max_new_tokens=8
        )
        follows[source_task, asked] = sum(map(KINDS[asked], answers)) / len(texts)
        if asked != source_task:
            print(f"a {SHORT[source_task]} input, asked: {phrasing[asked]}")
            print(f"   {texts[0]!r} -> {answers[0]!r}")
print("\nshare of answers of the kind asked for (rows: where the input comes from)")
print(f"{'':>10}" + "".join(f"{SHORT[asked]:>12}" for asked in KINDS))
for source_task in ("classify_topic", "classify_sentiment"):
    print(f"{SHORT[source_task]:>10}" + "".join(f"{follows[source_task, a]:12.0%}" for a in KINDS))
mismatched = {pair: share for pair, share in follows.items() if pair[0] != pair[1]}
rate = sum(mismatched.values()) / len(mismatched)
print(
    f"\non the mismatched pairs the answer follows the instruction {rate:.0%} of the time; a "
    "model that only looks at the input would score 0%, one that always reads it 100%"
)
assert rate >= 0.25, "the instruction, not only the input's look, should choose the answer"
(source_task, asked), worst = min(mismatched.items(), key=lambda item: item[1])
if worst < 0.5:
    print(
        f"The weak spot: a {SHORT[source_task]} input asked for a {SHORT[asked]} gets one only "
        f"{worst:.0%} of the time. Every {SHORT[source_task]} input in training came with a "
        f"{SHORT[source_task]} instruction, so the input's look is a shortcut that nothing "
        "punished. FLAN's remedy: many tasks over the same kinds of input."
    )

# %% [markdown]
# Measured on a 2-core CPU: quick mode's model, tuned on three tasks whose inputs never mix,
# followed the instruction in 38% of the mismatched pairs with the 3,000-piece tokenizer (an
# earlier round's tokenizer: 58%; a review asked for its topic got "negative" every time, and
# 400 steps instead of 200 gave 31%: the shortcut only grows); full mode's model, tuned on all
# thirty tasks (one thread, about 940 steps), in 100% of them. Many tasks over similar inputs
# are what teach a model to read instructions.

# %% [markdown]
# ## The contrast test: does it read the instruction, or guess the task from its input?
#
# The probe above asks for the *kind* of answer. `data/contrast.jsonl` asks for the answer
# itself, on the inputs of other tasks: a `list_max` list under "Sort the numbers from smallest
# to largest." wants the sorted list; the words of `uppercase` under "Make an acronym from the
# first letter of each word." want the initials; an English sentence under a letter count wants
# the count. Every instruction is one the model was trained on; only the pairing is new, and an
# answer of the input's own task is always wrong. Its *retention* compares each asked task's
# exact match here with its exact match on `test`: 1.0 means the task survives another task's
# input, 0 that it only worked on its own inputs. (Quick mode trained one of the seven asked
# tasks, `count_letter`; full mode all of them.)

# %%
contrast = [r for r in read_records(SHIPPED / "data" / "contrast.jsonl") if r.meta["task"] in TASKS]
answers = predict(
    tuned, tok, [format_prompt(r.instruction, r.input) for r in contrast], max_new_tokens=24
)
pairs = collections.defaultdict(list)  # (the input's own task, the task asked) -> right or not
for r, answer in zip(contrast, answers, strict=True):
    pairs[r.meta["input_task"], r.meta["task"]].append(answer == r.output)
for (source_task, asked), right in sorted(pairs.items()):
    print(f"{asked:>13} asked of {source_task:>15} inputs: {sum(right):3d} of {len(right)} right")
r, answer = contrast[0], answers[0]
print(f"\ne.g. {format_prompt(r.instruction, r.input)!r}\n  -> {answer!r} (right: {r.output!r})")
assert contrast and all(r.meta["input_task"] != r.meta["task"] for r in contrast)

# %% [markdown]
# ## Evaluate the questions
#
# Exact match, token F1 and ROUGE-L (`minitune/evaluate.py`), averaged over tasks, on the three
# splits of FLAN's question and the two that ask whether the instruction is read: `contrast`
# (with its retention) and `heldout_compositions`, nine tasks no training example asks, each
# made of skills that are trained ("Sort the numbers from largest to smallest.", "Write the
# largest number in the list in English words.", upper case on a French sentence), in words the
# training instructions use. (Quick mode: the three tuned tasks, and the held-out extraction
# tasks and compositions, which stay at zero.)

# %%
scored = []
for split in ("test", "heldout_phrasings", "heldout_tasks", "contrast", "heldout_compositions"):
    records = read_records(SHIPPED / "data" / f"{split}.jsonl")
    if split in ("test", "heldout_phrasings", "contrast"):
        records = [r for r in records if r.meta["task"] in TASKS]
    records = records[:: 8 if QUICK else 4]
    prompts = [format_prompt(r.instruction, r.input) for r in records]
    answers = predict(tuned, tok, prompts, max_new_tokens=16 if QUICK else 64)
    scored += score(records, answers, split)
report = summarize(scored)
print(format_table(report))
assert set(report) == {
    "test",
    "heldout_phrasings",
    "heldout_tasks",
    "contrast",
    "heldout_compositions",
}
assert seen and unseen and not set(seen) & set(unseen)  # held-out phrasings are new to the model
assert report["test"]["average"]["exact_match"] > report["heldout_tasks"]["average"]["exact_match"]

# %% [markdown]
# ## The measured answer
#
# The full laptop run (`minitune pipeline`, 12 minutes on a 2-core CPU, README "Run") measured,
# from a fresh clone on an AMD EPYC with AVX512-BF16 (bf16 chosen by measurement), 2,583
# optimizer steps of 16 packed rows, 154,370 examples seen in its 11 minutes of training (in
# brackets: the same 11 minutes tuning the shipped pretrained base, `--base`). "Before" is the
# recipe without the 21 training-only tasks over shared inputs, run on the same machine in the
# same hour:
#
# | split | before: exact match | after: exact match | token F1 |
# |---|---|---|---|
# | seen tasks, seen phrasings | 53.8% | 53.8% (51.5%) | 66.5% (63.1%) |
# | seen tasks, held-out phrasing | 40.1% | 38.5% (36.1%) | 51.6% (48.1%) |
# | held-out tasks (extraction) | 0.0% | 0.8% (0.0%) | 14.7% (7.7%) |
# | contrast: another task's input (retention) | 17.9% (0.41) | 39.8% (0.86) (41.4%) | 64.0% (52.4%) |
# | held-out compositions | 0.6% | 0.6% (0.0%) | 21.0% (19.5%) |
#
# The contrast row is the answer to this tutorial's question. Before, the model mostly did the
# task its input looked like: the same seven tasks scored 17.9% on other tasks' inputs, with 41%
# of their `test` skill retained. Training tasks that share their inputs, so that nothing but the
# instruction tells them apart, doubled it at no cost on `test`. Two limits remain, measured on
# sets kept outside the repository: the gain holds for the *trained* instructions on new inputs,
# not yet for everyday rewrites of them ("which one is the biggest here?"), and new combinations
# of known skills ("Sort the numbers from largest to smallest.") stay near zero.
#
# So at this scale the answer to the FLAN question is: a new *phrasing* of a known task partly
# works (about 15 points below the seen phrasings), a new *task* does not, neither a new cluster
# (extraction) nor a new combination of trained skills. FLAN (Wei et al. 2021) saw the first part
# at scale: instruction tuning helped held-out task clusters only for its largest models (68B and
# 137B parameters) and hurt at 8B and below; this model has 3.75M.
# benchmarks/learning.md has what was tried to get here, and the probes that show which skills a
# model this small does not form in minutes. Your run's own report, if you ran
# `minitune pipeline` in the folder this tutorial runs in, is in `runs/laptop/report.json`:

# %%
report = Path("runs") / "laptop" / "report.json"  # in the current folder
if report.exists():
    averages = {
        split: v["average"]["exact_match"]
        for split, v in json.loads(report.read_text())["eval"].items()
    }
    print(averages)
else:
    print(f"no runs/laptop/report.json in {Path.cwd()} yet: run `minitune pipeline` there")

# %% [markdown]
# **Exercises.** (1) Remove one phrasing per task from training (filter `train_records`) and see
# how the held-out-phrasing score moves. (2) Start from the shipped pretrained base
# (`minitune pipeline --base --out runs/base-tuned`, the same recipe on weights pretrained for 80
# minutes on the world corpus): at 11 minutes it scored below random weights (README); does it
# win with a lower learning rate (`--set train.lr=1e-3`) or a shorter run (`--max-minutes 3`)?
