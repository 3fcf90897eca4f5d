"""`minitune pipeline`: the laptop pipeline, in phases: (pretrain,) instruction-tune, evaluate
on the five evaluation splits, show a few answers next to the expected ones.

    minitune pipeline                          random weights, configs/laptop.toml, 11 minutes
    minitune pipeline --base                   the shipped pretrained base, the same recipe
    minitune pipeline --pretrain-steps 300     span corruption first, then the tuning

Every phase's run config is resolved once, before anything is written, from the same layers as
`minitune train` (minitune/cli/training.py) plus what the phase sets itself, named in the log:
the pretraining's folder (OUT/pretrain) and steps, the tuning's starting weights (the base, or
the pretraining's last/).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from minitune.cli.shared import UserError, sub_parser
from minitune.cli.training import command_line, speed, stop_line, training_flags
from minitune.run.checkpoint import load_checkpoint
from minitune.run.paths import find_shipped
from minitune.run.settings import (
    DEFAULT_CONFIGS,
    SPAN,
    SPAN_DEFAULTS,
    RunConfig,
    Source,
    new_run,
    planned_out,
    read_run_file,
    resumed_run,
)

# The shipped pretrained base (configs/base.toml made it): `pipeline --base` tunes it. Not the
# default: at the laptop budget (11 minutes, 2 cores) tuning it scored below random weights
# (README, benchmarks/learning.md round 4), and the pipeline starts from what measured best.
SHIPPED_BASE = "checkpoints/base"
# The tuning's exact match on a sample of valid at each evaluation, for the page's curve (its
# cost is left out of the clock; --set train.score_valid=0 turns it off).
SCORING = Source("minitune pipeline's default", train={"score_valid": 64})


def pipeline_base(args: argparse.Namespace) -> Path | None:
    """The weights `minitune pipeline` tunes: None (random weights, the default and
    --from-scratch), the shipped base (--base) or --init's folder. A base fixes the model, so
    --set model.* applies only from scratch."""
    if args.from_scratch and (args.base or args.init):
        raise UserError("--from-scratch and --base/--init name two starting points: choose one")
    if args.base and args.init:
        raise UserError("--base (the shipped base) and --init DIR: choose one")
    if not (args.base or args.init):
        return None
    models = [s for s in args.set or [] if s.strip().startswith("model.")]
    if models:
        raise UserError(
            f"{', '.join(models)}: a pretrained base fixes the model (its "
            "config.json); drop --base/--init (or add --from-scratch) to train a "
            "model of your own shape from random weights"
        )
    base = Path(args.init) if args.init else find_shipped(SHIPPED_BASE)
    if not (base / "config.json").is_file():
        raise UserError(f"{base}: no checkpoint there (config.json missing)")
    return base


def pick_examples(scored: list, clusters: dict[str, str]) -> list:
    """A handful of scored answers to show after a run: from the test split, the first example
    of each cluster; from each held-out split, the first examples of two tasks."""
    picked, seen = [], set()
    for s in scored:
        group = (s.split, clusters.get(s.task, s.task) if s.split == "test" else s.task)
        limit = 2 if s.split != "test" else None
        taken = sum(1 for p in picked if p.split == s.split)
        if group in seen or (limit is not None and taken >= limit):
            continue
        seen.add(group)
        picked.append(s)
    return picked


def show_example(s, clusters: dict[str, str]) -> str:
    """One answer next to the expected one, e.g. "[ok] strings / uppercase (test)"."""
    mark = "ok" if s.exact_match else "--"
    prompt = s.prompt if len(s.prompt) <= 300 else s.prompt[:297] + "..."
    return (
        f"[{mark}] {clusters.get(s.task, '?')} / {s.task} ({s.split})\n"
        f"  prompt:   {prompt.replace(chr(10), chr(10) + '            ')}\n"
        f"  expected: {s.reference}\n  answer:   {s.prediction}"
    )


@dataclass
class Phases:
    """The pipeline's runs, each config resolved once: the pretraining (None: none, or done)
    and the tuning, and whether each continues a saved run (--resume)."""

    out: Path
    notes: list[str]  # what resolving them had to say (a resumed run's changes, ...)
    pretraining: RunConfig | None
    resume_pretraining: bool
    tuning: RunConfig
    resume_tuning: bool


def plan_phases(args: argparse.Namespace, base: Path | None) -> Phases:
    """The configs of the pipeline's phases. Both use the laptop recipe (or --config), with or
    without a base (not finetune.toml, as `train --init` does): --init is the pipeline's
    starting point, which the phases set themselves. A resumed phase starts from its saved
    config, with what the command line names on top (--config only when given)."""
    config = args.config or DEFAULT_CONFIGS["instruct"]
    notes: list[str] = []
    settings = command_line(args, leave_out=("init",))
    out = Path(args.out or planned_out([read_run_file(config), *settings]))
    tuning_started = (out / "last" / "trainer.pt").is_file()
    pre_last = (out / "pretrain" / "last").resolve()
    pretraining, resume_pretraining = None, False
    if args.pretrain_steps and not (args.resume and tuning_started):
        resume_pretraining = args.resume and (pre_last / "trainer.pt").is_file()
        pretraining = _pretraining(args, base, config, out, resume_pretraining, notes)
    resume_tuning = args.resume and tuning_started
    if resume_tuning:
        named = [read_run_file(args.config)] if args.config else []
        tuning = resumed_run(out, [*named, *settings], args.force, notes.append)
    else:  # the model (shape, tokenizer) comes from the pretraining or the base, if any
        start = str(pre_last) if args.pretrain_steps else base and str(base.resolve())
        phase = Source("minitune pipeline: the tuning phase", train={"init": start})
        sources = [read_run_file(config), SCORING, *settings, phase]
        tuning = new_run(sources, notes.append)
    return Phases(out, notes, pretraining, resume_pretraining, tuning, resume_tuning)


def _pretraining(
    args: argparse.Namespace,
    base: Path | None,
    config: str,
    out: Path,
    resume: bool,
    notes: list[str],
) -> RunConfig:
    """The pretraining phase's config: span corruption for --pretrain-steps steps in
    OUT/pretrain, with no time limit of its own; from scratch on data/pretrain.txt with the
    recipe's file, or from the base with its own recipe (configs/base.toml, the world corpus)."""
    phase = {"out": str(out / "pretrain"), "max_steps": args.pretrain_steps}
    if base:
        phase["init"] = str(base)
    else:
        phase["data"] = [str(find_shipped("data/pretrain.txt"))]
    settings = [
        *command_line(args, leave_out=("init", "data", "out", "max_minutes", "max_steps")),
        Source("minitune pipeline: the pretraining phase", train=phase),
        SPAN,
    ]
    recipe = "base" if base else config
    if resume:
        named = [read_run_file(recipe)] if base or args.config else []
        return resumed_run(out / "pretrain", [*named, *settings], args.force, notes.append)
    return new_run([SPAN_DEFAULTS, read_run_file(recipe), *settings], notes.append)


def cmd_pipeline(args: argparse.Namespace) -> int:
    """(Pretrain,) instruction-tune, evaluate on the five evaluation splits, show examples.
    A stop signal stops the phase it comes in (a training phase saves first) and the pipeline,
    with status 128 + its number; --resume continues from that phase."""
    from minitune.run.report import run_record, write_page
    from minitune.run.state import check_out
    from minitune.run.stop_signals import Stopped, signal_name, stop_at_once
    from minitune.train import train

    base = pipeline_base(args)  # before anything is written or removed
    phases = plan_phases(args, base)  # every phase's config, once, before anything is written
    out = phases.out
    if args.print_config:  # each phase's, the tuning last
        from minitune.run.settings import to_toml

        if phases.pretraining is not None:
            print(
                "# the pretraining phase\n"
                + to_toml(phases.pretraining.model, phases.pretraining.train)
            )
        print(to_toml(phases.tuning.model, phases.tuning.train), end="")
        return 0
    if not args.resume:
        check_out(out, args.overwrite)
    for note in phases.notes:  # e.g. a resumed phase's changed settings
        print(note)
    again = " ".join(a for a in args.argv if a != "--overwrite") + (
        " --resume" if not args.resume else ""
    )
    again = f"minitune {again}" + ("" if args.out else f" --out {out}")
    if base is None:
        print(
            f"== start: random weights (--base tunes the shipped pretrained base {SHIPPED_BASE} "
            "instead; at 11 minutes on 2 cores it scored lower, README)"
        )
    else:
        print(f"== start: the pretrained base {base} (without --base/--init: random weights)")
    progress = not args.no_progress
    if phases.pretraining is not None:
        corpus = "the world corpus, configs/base.toml" if base else "data/pretrain.txt"
        print(f"== pretraining (span corruption on {corpus}) for {args.pretrain_steps} steps")
        pre = phases.pretraining
        record = run_record(pre, args.argv, phases.resume_pretraining, "the pretraining phase")
        done = train(
            pre.model, pre.train, phases.resume_pretraining, progress=progress, record=record
        )
        if done["signal"]:  # stopped by one (or it came as the phase ended): go no further
            print(stop_line(done, again, "the pretraining"))
            return 128 + done["signal"]
    print("== instruction tuning")
    tuning = phases.tuning
    # its page is built after the evaluation (below), with the scores
    record = run_record(tuning, args.argv, phases.resume_tuning, "the tuning phase", page=False)
    summary = train(
        tuning.model, tuning.train, phases.resume_tuning, progress=progress, record=record
    )
    if summary["signal"]:
        write_page(out, None)
        print(stop_line(summary, again, "the tuning"))
        return 128 + summary["signal"]
    try:
        with stop_at_once():  # nothing to save here: a stop signal ends the evaluation at once
            _evaluate_and_show(args, out, tuning.train, summary)
    except Stopped as stopped:
        print(
            f"stopped by {signal_name(stopped.signum)} during the evaluation (the tuning is saved "
            f"in {out / 'last'}); to continue (it evaluates again): {again}"
        )
        return 128 + stopped.signum
    return 0


def _evaluate_and_show(args: argparse.Namespace, out: Path, train_cfg, summary: dict) -> None:
    """Evaluate out/best on the shipped evaluation splits; print the table, the averages and a
    few answers; write OUT/report.json and OUT/eval.txt."""
    import dataclasses
    import json

    from minitune.data.formats import read_records
    from minitune.evaluate import SPLIT_NAMES, evaluate_files, format_table
    from minitune.run.checkpoint import read_config
    from minitune.run.report import add_scores_to_card, write_page

    print("== evaluation")
    model, tok, _ = load_checkpoint(str(out / "best"), train_cfg.device, train_cfg.fused_kernels)
    files = [str(find_shipped(f"data/{split}.jsonl")) for split in SPLIT_NAMES]
    result = evaluate_files(
        model, tok, files, args.limit, train_cfg.max_source_length, train_cfg.max_target_length
    )
    table = format_table(result["report"])
    print(table, end="")
    best = read_config(out / "best")  # the checkpoint evaluated: how far its training went
    trained = (
        f"model of step {best['step']:,} of {summary['step']:,}, "
        f"{best.get('examples_seen', 0):,} examples seen"
    )
    print(
        f"training: {summary['step']:,} steps, {summary['examples']:,} examples in "
        f"{summary['minutes']:.1f} min ({speed(summary)})"
    )
    for split, label in SPLIT_NAMES.items():
        average = result["report"].get(split, {}).get("average")
        if average:
            kept = average.get("retention")
            kept = "" if kept is None else f", retention {kept:.2f} of its tasks' test scores"
            print(
                f"{label}: exact match {average['exact_match']:.1f}%{kept} (average over tasks; "
                f"{trained})"
            )
    print("== examples: the model's answers next to the expected ones ([ok] = exact match)")
    clusters = {
        r.meta.get("task"): r.meta.get("cluster", "?") for path in files for r in read_records(path)
    }
    examples = []
    for s in pick_examples(result["scored"], clusters):
        examples.append(
            {
                "split": s.split,
                "task": s.task,
                "prompt": s.prompt,
                "expected": s.reference,
                "answer": s.prediction,
            }
        )
        print(show_example(s, clusters) + "\n")
    (out / "report.json").write_text(
        json.dumps({"train": summary, "eval": result["report"], "examples": examples}, indent=2)
    )
    (out / "eval.txt").write_text(table)
    with open(out / "predictions.jsonl", "w", encoding="utf-8") as f:  # every answer, for the page
        for s in result["scored"]:
            f.write(json.dumps(dataclasses.asdict(s), ensure_ascii=False) + "\n")
    add_scores_to_card(out / "best", result["report"])
    print(
        f"report: {out / 'report.json'}, table: {out / 'eval.txt'}, every answer: "
        f"{out / 'predictions.jsonl'}, model card: {out / 'best' / 'README.md'}"
    )
    right = [s for s in result["scored"] if s.split == "test" and s.exact_match]
    shown = (right or result["scored"])[0].prompt if result["scored"] else None
    write_page(out, shown, train_cfg.device if train_cfg.device != "auto" else "cpu")


def add_parsers(sub) -> None:
    """The sub-command pipeline."""
    p = sub_parser(
        sub,
        "pipeline",
        "the laptop pipeline: train, evaluate, show examples",
        "Instruction-tune a model (from random weights; --base: the shipped pretrained "
        "base checkpoints/base) on fresh examples of the shipped suite with the laptop "
        "recipe, evaluate on the test, held-out-phrasing, held-out-task, contrast and "
        "held-out-composition splits, and "
        "answer a few example prompts. Writes report.json and eval.txt in the run "
        "folder.",
        [
            "minitune pipeline",
            "minitune pipeline --base --out runs/base-tuned",
            "minitune pipeline --set model.preset=laptop-t5 --out runs/t5",
            "minitune pipeline --max-steps 50 --limit 20 --out /tmp/quick",
        ],
    )
    training_flags(p, "laptop")
    p.add_argument(
        "--base",
        action="store_true",
        help=f"tune the shipped pretrained base ({SHIPPED_BASE}) instead of random "
        "weights (the same recipe, data and clock)",
    )
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="random weights (the default; the config's [model] and --set model.* apply)",
    )
    p.add_argument(
        "--pretrain-steps",
        type=int,
        default=0,
        help="span-corruption steps before tuning: from scratch, on "
        "data/pretrain.txt; with --base/--init, more of the base's own pretraining "
        "(configs/base.toml, the world corpus)",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N examples of each split")
    p.set_defaults(func=cmd_pipeline)
