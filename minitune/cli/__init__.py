"""The `minitune` command line.

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

User mistakes (a bad argument or value) print one line and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from minitune import __version__
from minitune.config import PRESETS, ModelConfig
from minitune.paths import find_shipped, shipped_configs


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
            + (" copy_head" if cfg.copy_head else "")
        )
        if args.verbose:
            for key, value in cfg.to_dict().items():
                print(f"    {key} = {value!r}")
    return 0


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_data_generate(args: argparse.Namespace) -> int:
    """Write the instruction suite's splits and the pretraining corpus."""
    from minitune.data.suite.corpus import write_corpus
    from minitune.data.suite.tasks import SPLITS, GenerationError, write_suite

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
    from minitune.data.suite.world import write_world

    if not str(args.out).endswith((".txt", ".txt.gz")):
        raise UserError(f"--out {args.out}: the corpus is a .txt or .txt.gz file")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    n_docs = write_world(args.out, seed=args.seed, n_documents=args.documents, log=print)
    print(f"{args.out}: {n_docs} documents, {Path(args.out).stat().st_size:,} bytes")
    return 0


def cmd_data_fresh(args: argparse.Namespace) -> int:
    """Write a fresh training file: --per-task examples of every seen task, none in evaluation."""
    import time

    from minitune.data.suite.tasks import GenerationError, write_training_set

    start = time.perf_counter()
    try:
        counts = write_training_set(args.out, args.per_task, seed=args.seed, wide=not args.narrow,
                                    shared=args.shared)  # fmt: skip
    except GenerationError as err:  # the suite of this seed (to avoid) cannot be made
        raise UserError(str(err)) from None
    seconds = time.perf_counter() - start
    per_task = ", ".join(f"{task} {n:,}" for task, n in counts.items())
    print(
        f"{args.out}: {sum(counts.values()):,} examples, {len(counts)} tasks, {seconds:.1f} s; "
        f"per task: {per_task}"
    )
    for task, n in counts.items():
        if n < args.per_task:
            print(
                f"minitune: warning: {task}: {n:,} distinct examples (asked {args.per_task:,})",
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
        model = train_tokenizer([text], args.out, args.vocab_size, args.model_type,
                                segmentation=segmentation)  # fmt: skip
    except ValueError as err:
        raise UserError(str(err)) from None
    finally:
        text.unlink(missing_ok=True)
    tok = Tokenizer(model)
    print(f"{model}: {tok.vocab_size} pieces ({args.model_type}, {args.segmentation} "
          f"segmentation), sha256 {tok.fingerprint()}")  # fmt: skip
    return 0


# ---- training ---------------------------------------------------------------------------------


# Default run configs (shipped, found from any folder): what `train` and `pretrain` use without
# --config. `train --init DIR` fine-tunes a trained model: T5-style learning rate, no time guard.
DEFAULT_CONFIGS = {"instruct": "laptop", "init": "finetune", "span": "pretrain"}
# What a run writes into its --out folder (--overwrite removes these, and only these).
RUN_OUTPUTS = ("best", "last", "best.tmp", "last.tmp", "best.old", "last.old", "metrics.jsonl",
               "loss.png", "eval.txt", "report.json", "pretrain", "tensorboard",
               "fresh_train.jsonl")  # fmt: skip


def _overrides(args: argparse.Namespace) -> dict[str, dict]:
    """The settings named on the command line: --set, then the dedicated flags."""
    from minitune.config import parse_override

    overrides: dict[str, dict] = {"model": {}, "train": {}}
    for text in args.set or []:
        section, key, value = parse_override(text)
        overrides[section][key] = value
    flags = {"data": args.data, "valid_data": args.valid_data, "out": args.out,
             "max_steps": args.max_steps, "max_minutes": args.max_minutes, "device": args.device,
             "init": args.init, "precision": args.precision, "lora_rank": args.lora_rank,
             "lora_alpha": args.lora_alpha,
             "lora_targets": args.lora_targets and args.lora_targets.split(","),
             "lora_where": args.lora_where and args.lora_where.split(","),
             "on_nonfinite": "skip" if args.skip_nonfinite else None,
             "fsdp": args.fsdp or None, "compile": args.compile or None,
             "activation_checkpointing": args.activation_checkpointing or None,
             "impl": args.impl,
             "report_to": args.report_to and [args.report_to]}  # fmt: skip
    overrides["train"].update({k: v for k, v in flags.items() if v is not None})
    if "valid_data" in overrides["train"]:  # a validation file replaces a held-out slice
        overrides["train"].setdefault("valid_fraction", 0.0)
    return overrides


def _config_name(args: argparse.Namespace, objective: str) -> str:
    """--config, or the default for this command (finetune with --init, else laptop)."""
    if args.config:
        return args.config
    return DEFAULT_CONFIGS["init" if objective == "instruct" and args.init else objective]


def _run_config(args: argparse.Namespace, objective: str, resume_from: Path | None = None):
    """The run's config: the config file (under the command's defaults), then --set overrides,
    then the dedicated flags. With `resume_from` (a run folder): the run's own saved config,
    with what the command line names on top (see `_resumed_config`)."""
    from minitune.config import load_run_config, read_run_file
    from minitune.layers import registry

    try:
        overrides = _overrides(args)
        if objective == "span":
            overrides["train"]["objective"] = "span"
        if resume_from is not None:
            return _resumed_config(args, overrides, resume_from)
        name = _config_name(args, objective)
        init = overrides["train"].get("init") or (
            read_run_file(name)[1]["train"].get("init") if name else None
        )
        if init:  # the model (shape, tokenizer) comes from the checkpoint
            if overrides["model"]:
                raise UserError(
                    "the model comes from --init " + str(init) + " (its own config.json); "
                    "these settings cannot apply to it: "
                    + ", ".join(f"model.{k}" for k in overrides["model"])
                )
            file_model = read_run_file(name)[1]["model"]
            if file_model:
                print(f"note: {name}'s [model] table ({', '.join(file_model)}) is not used: "
                      f"the model comes from --init {init}")  # fmt: skip
        defaults = {"train": {"data": ["data/pretrain.txt"], "valid_data": None,
                              "out": "runs/pretrain"}} if objective == "span" else None  # fmt: skip
        model_cfg, cfg = load_run_config(name, overrides, defaults)
        registry.check(model_cfg)  # the variant names (config.py, a leaf, cannot check them)
        return model_cfg, cfg
    except ValueError as err:
        raise UserError(str(err)) from None


def _resumed_config(args: argparse.Namespace, overrides: dict, out: Path):
    """The config saved in out/last/config.json, with the command line's settings on top (a
    --config file given with --resume counts as named too). Prints what differs; refuses
    changes that make the run differ from an uninterrupted one, unless --force."""
    import os

    from minitune.checkpoint import read_config, recover
    from minitune.config import RESUME_SAFE, config_changes, read_run_file, saved_run_config

    last = out / "last"
    recover(last)
    if not (last / "trainer.pt").is_file():
        raise UserError(f"nothing to resume in {out}: no {last}/trainer.pt (start the run "
                        "without --resume)")  # fmt: skip
    info = read_config(last)
    named = {"model": {}, "train": {}}
    if args.config:
        for section, values in read_run_file(args.config)[1].items():
            named[section].update(values)
    for section in named:
        named[section].update(overrides[section])
    named["train"]["out"] = str(out)
    if "data" in named["train"] and "valid_data" not in named["train"]:
        named["train"].setdefault("valid_fraction", info["train"].get("valid_fraction", 0.0))
    try:  # the saved config itself: a damaged file is named
        saved = saved_run_config(info, {"train": {"out": str(out)}})
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{last / 'config.json'}: not a run config ({err})") from None
    wanted = saved_run_config(info, named)
    changes = config_changes(saved, wanted)
    if changes:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)
        breaking = [k for k, _, _ in changes if k.removeprefix("train.") not in RESUME_SAFE]
        if breaking and not args.force:
            raise UserError(
                f"resuming {out} with other settings than it was trained with ({listed}): "
                f"{', '.join(breaking)} would make it differ from an uninterrupted run; pass "
                "--force to accept that, or start a new --out"
            )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
        print(f"resuming {out} from its saved config ({last / 'config.json'})"
              + (f", changed: {listed}" if changes else ""))  # fmt: skip
    return wanted


def _check_out(out: Path, overwrite: bool) -> None:
    """A fresh run needs an empty (or new) --out; --overwrite removes a previous run's files."""
    import os
    import shutil

    if os.environ.get("RANK", "0") != "0":  # under torchrun, process 0 checks (and clears)
        return
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        held = ", ".join(sorted(p.name for p in out.iterdir())[:6])
        raise UserError(
            f"{out} is not empty ({held}); continue that run with --resume, choose another "
            "--out, or pass --overwrite to replace it"
        )
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _speed(summary: dict) -> str:
    """Training speed from train()'s summary: examples and real tokens per second."""
    return (f"{summary['examples_per_s']:.1f} examples/s, {summary['tokens_per_s']:,.0f} real "
            "tokens/s")  # fmt: skip


def _resume_command(command: str, out: str, extra: str = "") -> str:
    import shlex

    return f"minitune {command} --out {shlex.quote(str(out))} --resume{extra}"


def _train(args: argparse.Namespace, objective: str) -> int:
    from minitune.config import to_toml
    from minitune.train import train

    out = Path(args.out) if args.out else None
    if args.resume and out is None:  # the default config's run folder
        out = Path(_run_config(argparse.Namespace(**{**vars(args), "resume": False}),
                               objective)[1].out)  # fmt: skip
    model_cfg, cfg = _run_config(args, objective, resume_from=out if args.resume else None)
    if args.print_config:
        print(to_toml(model_cfg, cfg), end="")
        return 0
    if not args.resume:
        _check_out(Path(cfg.out), args.overwrite)
    summary = train(model_cfg, cfg, resume=args.resume, progress=not args.no_progress,
                    stop_at_step=args.stop_at_step)  # fmt: skip
    best = summary["best_valid_loss"]
    validation = f"best validation loss {best:.4f}" if math.isfinite(best) else "no validation"
    print(
        f"done: {summary['step']} steps in {summary['minutes']:.1f} min ({summary['stop_reason']}),"
        f" {_speed(summary)}, {validation}, checkpoints in {summary['out']}"
        + (f"; {summary['skipped']} steps skipped (loss not finite)" if summary["skipped"] else "")
    )
    if summary["stop_reason"] == "interrupted":
        print(f"to continue: {_resume_command(args.command, cfg.out)}")
        return 130
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Instruction tuning."""
    return _train(args, "instruct")


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Span-corruption pretraining."""
    return _train(args, "span")


# ---- evaluation and use ---------------------------------------------------------------------


def _load(checkpoint: str, device: str, impl: str | None = None):
    """A minitune checkpoint folder or a Hugging Face T5 / Flan-T5 folder; with `impl` (--impl),
    switched to that path, which the job's first line (on stderr) names."""
    from minitune.checkpoint import load_pretrained
    from minitune.device import pick_device
    from minitune.lora import merge_lora
    from minitune.tokenizer import Tokenizer

    model, tokenizer_file, info = load_pretrained(checkpoint, pick_device(device))
    if model.lora is not None:
        merge_lora(model)  # an adapter checkpoint: fold the adapters in, as fast as the base
    if impl is not None:
        from minitune.fast import path_note

        model.set_impl(impl)
        print(path_note(impl), file=sys.stderr)
    return model, Tokenizer(tokenizer_file), info


def evaluate_files(model, tok, files: list[str], limit: int | None, max_source_length: int,
                   max_new_tokens: int, run_code: bool | None = None, **decoding) -> dict:  # fmt: skip
    """Predict and score every example of the files; returns the report (see evaluate.py) and
    notes for the user (prompts cut to max_source_length, generated code run or not).

    Code answers are run against their tests (in a limited subprocess) for the shipped suite's
    files, or for any file with run_code=True; run_code=False runs none."""
    from minitune.data.formats import read_records
    from minitune.data.templates import format_prompt
    from minitune.evaluate import predict, score, split_name, summarize
    from minitune.paths import is_shipped

    scored, notes, ran = [], [], 0
    for path in files:
        records = read_records(path)[:limit] if limit else read_records(path)
        prompts = [format_prompt(r.instruction, r.input) for r in records]
        cut = sum(len(tok.encode(p)) + 1 > max_source_length for p in prompts)
        if cut:
            notes.append(f"{path}: {cut} of {len(prompts)} prompts are longer than "
                         f"{max_source_length} tokens and were cut (--max-source-length)")  # fmt: skip
        predictions = predict(model, tok, prompts, max_source_length, max_new_tokens, **decoding)
        runs = run_code if run_code is not None else is_shipped(path)
        scored += score(records, predictions, split_name(path), run_code=runs)
        n_code = sum("tests" in r.meta and "entry_point" in r.meta for r in records)
        if n_code and runs:
            ran += n_code
        elif n_code:
            notes.append(f"{path}: {n_code} code answers were not run (it is not the shipped "
                         "suite); --run-code runs them in a limited subprocess")  # fmt: skip
    if ran:
        notes.append(f"ran {ran} generated programs against their tests, each in a separate "
                     "Python process with CPU-time and memory limits")  # fmt: skip
    return {"report": summarize(scored), "scored": scored, "notes": notes}


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from minitune.evaluate import format_table

    decoding = _decoding(args)
    model, tok, info = _load(args.checkpoint, args.device, args.impl)
    max_source_length = _source_length(info, args.max_source_length)
    result = evaluate_files(model, tok, args.data, args.limit, max_source_length,
                            run_code=args.run_code or None, **decoding)  # fmt: skip
    if args.predictions:
        with open(args.predictions, "w", encoding="utf-8") as f:
            for s in result["scored"]:
                f.write(json.dumps(s.__dict__, ensure_ascii=False) + "\n")
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result["report"], indent=2))
    else:
        print(format_table(result["report"]), end="")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from minitune.pictures import inspect_prompt

    model, tok, _ = _load(args.checkpoint, args.device)
    try:
        answer, written = inspect_prompt(model, tok, args.prompt.replace("\\n", "\n"), args.out,
                                         args.max_new_tokens)  # fmt: skip
    except ImportError as err:
        raise UserError(str(err)) from None
    print(f"answer: {answer}")
    print(f"wrote {', '.join(written)} to {args.out}")
    if "position_bias.png" not in written:
        print(f"(position scheme {model.config.position!r} adds no attention bias: "
              "no position_bias.png)")  # fmt: skip
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run the conformance kit; exit 0 when every check passes, 1 otherwise."""
    from minitune import conformance as testing
    from minitune.config import parse_override
    from minitune.layers import registry

    targets = []
    if args.all:
        targets = [(kind, name) for kind in registry.REGISTRY for name in registry.names(kind)]
    for item in args.variants:
        kind, sep, spec = item.partition("=")
        if not sep or kind not in testing.CHECKS:
            raise UserError(f"{item!r}: expected KIND=VARIANT with KIND one of "
                            f"{', '.join(testing.CHECKS)}, e.g. attention=my_module:MyAttention")  # fmt: skip
        targets.append((kind, spec))
    if not targets:
        raise UserError("name a variant (e.g. attention=qk-norm) or pass --all")
    overrides = {}
    for text in args.set:
        try:
            _, key, value = parse_override(f"model.{text}")
        except ValueError as err:
            raise UserError(str(err)) from None
        overrides[key] = value
    failed = 0
    for kind, spec in targets:
        try:
            report = testing.check(kind, spec, **overrides)
        except (ValueError, TypeError) as err:
            raise UserError(str(err)) from None
        print(report, end="\n\n")
        failed += not report.ok
    print(f"{len(targets) - failed} of {len(targets)} variants pass every check")
    return 1 if failed else 0


def cmd_lora_merge(args: argparse.Namespace) -> int:
    """Fold a LoRA checkpoint's adapters into its base; write a plain checkpoint."""
    from minitune.checkpoint import load_pretrained, read_config, save_checkpoint
    from minitune.lora import merge_lora

    info = read_config(args.checkpoint)
    if "lora" not in info:
        raise UserError(f"{args.checkpoint}: not a LoRA checkpoint (no adapters to merge)")
    model, tokenizer_file, _ = load_pretrained(args.checkpoint)
    merge_lora(model)
    kept = {k: v for k, v in info.items() if k not in ("model", "lora")}
    save_checkpoint(args.out, model, {**kept, "merged_from": str(args.checkpoint)},
                    tokenizer_file)  # fmt: skip
    print(
        f"merged the rank-{info['lora']['rank']} adapters into {info['base']['path']}: {args.out}"
    )
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch a published T5 / Flan-T5 checkpoint into a folder that --checkpoint/--init take."""
    from minitune.download import DownloadError, download
    from minitune.t5 import load_t5

    out = Path(args.out or Path("models") / args.name)
    try:
        download(args.name, out, hub=args.hub, progress=not args.no_progress)
    except DownloadError as err:
        raise UserError(str(err)) from None
    model = load_t5(out)  # a complete folder: it loads
    print(f"{out}: {model.num_parameters() / 1e6:.1f}M parameters; try it:\n"
          f'  minitune generate --checkpoint {out} "Translate to German: How old are you?"\n'
          f"  minitune train --init {out} --data my.jsonl --out runs/{args.name}-tuned")  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a checkpoint in the Hugging Face T5 layout (config.json, model.safetensors,
    spiece.model), for `transformers` or any T5 tool."""
    from minitune.t5 import export_t5, t5_problems

    model, tok, _ = _load(args.checkpoint, "cpu")  # LoRA adapters are merged in
    problems = t5_problems(model.config)
    if problems:
        raise UserError(
            f"{args.checkpoint} is not a T5 architecture, so it has no T5 layout: "
            f"{'; '.join(problems)}. Presets that export: laptop, tiny, t5-small, t5-v1_1-small"
        )
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise UserError(f"{out} is not empty; choose another --out or pass --overwrite")
    export_t5(model, out, tokenizer_file=tok.path)
    print(f"wrote {out}/config.json, model.safetensors, spiece.model: a T5 folder for "
          "transformers (T5ForConditionalGeneration.from_pretrained) or --checkpoint/--init")  # fmt: skip
    if not tok.segmentation.plain:
        print(f"note: this tokenizer has segmentation conventions ({tok.segmentation}), kept in "
              f"{out}/spiece.segmentation.json; minitune applies them, other T5 tools do not: "
              "encode text for them with minitune.Tokenizer")  # fmt: skip
    return 0


def _decoding(args: argparse.Namespace) -> dict:
    """The decoding settings of the flags, checked here so that a mistake is one line naming
    the flag (model.generate would raise the same ValueError deeper down)."""
    import torch

    sample = args.sample or args.temperature is not None or args.top_k or args.top_p is not None
    named = [f"{flag} {value}" for flag, value in (("--temperature", args.temperature),
             ("--top-k", args.top_k), ("--top-p", args.top_p)) if value is not None]  # fmt: skip
    if sample and args.num_beams > 1:
        raise UserError(
            f"--num-beams {args.num_beams} with sampling ({', '.join(named) or '--sample'}): beam "
            "search keeps the most likely sequences, sampling draws at random; use one of them"
        )
    checks = [(args.max_new_tokens >= 1, f"--max-new-tokens must be >= 1, got {args.max_new_tokens}"),
              (args.num_beams >= 1, f"--num-beams must be >= 1, got {args.num_beams}"),
              (args.temperature is None or args.temperature > 0,
               f"--temperature must be > 0, got {args.temperature} (for greedy: leave it out)"),
              (args.top_k is None or args.top_k >= 0, f"--top-k must be >= 0 (0 = all), got {args.top_k}"),
              (args.top_p is None or 0 < args.top_p <= 1, f"--top-p must be in (0, 1], got {args.top_p}")]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    kwargs = {"max_new_tokens": args.max_new_tokens, "num_beams": args.num_beams}
    if sample:
        kwargs.update(do_sample=True, temperature=args.temperature or 1.0, top_k=args.top_k or 0,
                      top_p=args.top_p or 1.0,
                      generator=torch.Generator().manual_seed(args.seed))  # fmt: skip
    return kwargs


def _source_length(info: dict, given: int | None) -> int:
    """--max-source-length, else what the checkpoint was trained with (T5 folders: 512)."""
    if given is not None:
        if given < 2:
            raise UserError(f"--max-source-length must be >= 2, got {given}")
        return given
    return int(info.get("train", {}).get("max_source_length") or 512)


def _answer(model, tok, prompt: str, decoding: dict, max_source_length: int = 512) -> str:
    """The model's answer to one prompt; a prompt cut to `max_source_length` tokens is reported
    (on stderr, so that stdout stays the answer)."""
    batch = tok.encode_batch([prompt], max_length=max_source_length)
    if batch.truncated:
        print(f"note: the prompt is {len(tok.encode(prompt)) + 1} tokens; the model reads only the "
              f"first {max_source_length} (--max-source-length)", file=sys.stderr)  # fmt: skip
    device = next(model.parameters()).device
    out = model.generate(batch.input_ids.to(device), batch.attention_mask.to(device), **decoding)
    return tok.decode(out[0])


def _read_prompt(prompt: str | None) -> str:
    """The PROMPT argument with \\n as a newline, or stdin when it is "-" or left out."""
    if prompt is None or prompt == "-":
        if prompt is None and sys.stdin.isatty():
            raise UserError(
                "give a PROMPT, or pipe one in: echo 'What is 2 + 3?' | minitune generate ..."
            )
        return sys.stdin.read().rstrip("\n")
    return prompt.replace("\\n", "\n")


def cmd_generate(args: argparse.Namespace) -> int:
    decoding = _decoding(args)
    prompt = _read_prompt(args.prompt)
    model, tok, info = _load(args.checkpoint, args.device, args.impl)
    print(_answer(model, tok, prompt, decoding, _source_length(info, args.max_source_length)))
    return 0


def chat_prompt(tok, instruction: str, history: list[str], max_length: int) -> tuple[str, int]:
    """The prompt of a chat turn from the newest turns that fit in `max_length` tokens (the
    oldest are left out first) and how many turns were left out.

    Example: history ["User: hi", "Assistant: hello", "User: 2 + 3?"] with room for two turns
    -> "INSTRUCTION\\nAssistant: hello\\nUser: 2 + 3?", 1."""
    from minitune.data.templates import format_prompt

    for start in range(len(history)):
        prompt = format_prompt(instruction, "\n".join(history[start:]))
        if len(tok.encode(prompt)) + 1 <= max_length:
            return prompt, start
    return format_prompt(instruction, history[-1]), len(history) - 1  # cut, and reported


def cmd_chat(args: argparse.Namespace) -> int:
    from minitune.data.formats import CHAT_INSTRUCTION

    decoding = _decoding(args)
    model, tok, info = _load(args.checkpoint, args.device, args.impl)
    max_length = _source_length(info, args.max_source_length)
    instruction = args.system.replace("\\n", "\n") if args.system else CHAT_INSTRUCTION
    history: list[str] = []
    print("Chat with the model; an empty line or Ctrl-D ends. /reset forgets the conversation.")
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line:
            return 0
        if line == "/reset":
            history = []
            continue
        history.append(f"User: {line}")
        prompt, dropped = chat_prompt(tok, instruction, history, max_length)
        if dropped:
            print(f"(the {dropped} oldest turn(s) no longer fit in {max_length} tokens: left out)")
        reply = _answer(model, tok, prompt, decoding, max_length)
        history.append(f"Assistant: {reply}")
        print(f"model> {reply}")


# ---- the laptop pipeline ----------------------------------------------------------------------


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
    return (f"[{mark}] {clusters.get(s.task, '?')} / {s.task} ({s.split})\n"
            f"  prompt:   {prompt.replace(chr(10), chr(10) + '            ')}\n"
            f"  expected: {s.reference}\n  answer:   {s.prediction}")  # fmt: skip


def cmd_pipeline(args: argparse.Namespace) -> int:
    """(Pretrain,) instruction-tune, evaluate on the three evaluation splits, show examples."""
    import json

    from minitune.checkpoint import read_config
    from minitune.evaluate import SPLIT_NAMES, format_table
    from minitune.fast import path_note
    from minitune.train import train

    base = _pipeline_base(args)  # before anything is written or removed
    named = {"resume": False, "init": None, "config": args.config or DEFAULT_CONFIGS["instruct"]}
    planned = _run_config(argparse.Namespace(**{**vars(args), **named}), "instruct")[1]
    out = Path(args.out or planned.out)
    print(path_note(planned.impl))  # the first line: which path the jobs below run
    if not args.resume:
        _check_out(out, args.overwrite)
    again = " ".join(a for a in args.argv if a != "--overwrite") + (
        " --resume" if not args.resume else ""
    )
    again = f"minitune {again}" + ("" if args.out else f" --out {out}")
    tuning_started = (out / "last" / "trainer.pt").is_file()
    pre_last = (out / "pretrain" / "last").resolve()
    if not args.resume:  # the laptop recipe in both modes (not finetune.toml, as --init gives)
        args.config = args.config or DEFAULT_CONFIGS["instruct"]
    if base is None:
        print(f"== start: random weights (--base tunes the shipped pretrained base {SHIPPED_BASE} "
              "instead; at 11 minutes on 2 cores it scored lower, README)")  # fmt: skip
    else:
        print(f"== start: the pretrained base {base} (without --base/--init: random weights)")
    if args.pretrain_steps and not (args.resume and tuning_started):
        corpus = "the world corpus, configs/base.toml" if base else "data/pretrain.txt"
        pre_args = argparse.Namespace(**{**vars(args), "init": base and str(base),
                                         "config": "base" if base else args.config,
                                         "data": None if base else [str(find_shipped("data/pretrain.txt"))],
                                         "out": str(out / "pretrain"), "max_minutes": None,
                                         "max_steps": args.pretrain_steps})  # fmt: skip
        resume = args.resume and (pre_last / "trainer.pt").is_file()
        pre_model, pre_cfg = _run_config(pre_args, "span", out / "pretrain" if resume else None)
        print(f"== pretraining (span corruption on {corpus}) for {args.pretrain_steps} steps")
        if (
            train(pre_model, pre_cfg, resume=resume, progress=not args.no_progress)["stop_reason"]
            == "interrupted"
        ):
            print(f"to continue: {again}")
            return 130
    resume = args.resume and tuning_started
    model_cfg, cfg = _run_config(argparse.Namespace(**{**vars(args), "init": None}), "instruct",
                                 out if resume else None)  # fmt: skip
    cfg.out = str(out)
    if not resume:  # the model (shape, tokenizer) comes from the checkpoint
        cfg.init = str(pre_last) if args.pretrain_steps else base and str(base.resolve())
    print("== instruction tuning")
    summary = train(model_cfg, cfg, resume=resume, progress=not args.no_progress)
    if summary["stop_reason"] == "interrupted":
        print(f"to continue: {again}")
        return 130
    print("== evaluation")
    model, tok, _ = _load(str(out / "best"), cfg.device, cfg.impl)
    files = [str(find_shipped(f"data/{split}.jsonl")) for split in SPLIT_NAMES]
    result = evaluate_files(model, tok, files, args.limit, cfg.max_source_length,
                            cfg.max_target_length)  # fmt: skip
    table = format_table(result["report"])
    print(table, end="")
    best = read_config(out / "best")  # the checkpoint evaluated: how far its training went
    trained = (f"model of step {best['step']:,} of {summary['step']:,}, "
               f"{best.get('examples_seen', 0):,} examples seen")  # fmt: skip
    print(f"training: {summary['step']:,} steps, {summary['examples']:,} examples in "
          f"{summary['minutes']:.1f} min ({_speed(summary)})")  # fmt: skip
    for split, label in SPLIT_NAMES.items():
        average = result["report"].get(split, {}).get("average")
        if average:
            print(f"{label}: exact match {average['exact_match']:.1f}% (average over tasks; "
                  f"{trained})")  # fmt: skip
    print("== examples: the model's answers next to the expected ones ([ok] = exact match)")
    from minitune.data.formats import read_records

    clusters = {r.meta.get("task"): r.meta.get("cluster", "?") for path in files
                for r in read_records(path)}  # fmt: skip
    examples = []
    for s in pick_examples(result["scored"], clusters):
        examples.append({"split": s.split, "task": s.task, "prompt": s.prompt,
                         "expected": s.reference, "answer": s.prediction})  # fmt: skip
        print(show_example(s, clusters) + "\n")
    (out / "report.json").write_text(
        json.dumps({"train": summary, "eval": result["report"], "examples": examples}, indent=2)
    )
    (out / "eval.txt").write_text(table)
    print(f"report: {out / 'report.json'}, table: {out / 'eval.txt'}")
    return 0


# The shipped pretrained base (configs/base.toml made it): `pipeline --base` tunes it. Not the
# default: at the laptop budget (11 minutes, 2 cores) tuning it scored below random weights
# (README, benchmarks/learning.md round 4), and the pipeline starts from what measured best.
SHIPPED_BASE = "checkpoints/base"


def _pipeline_base(args: argparse.Namespace) -> Path | None:
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
        raise UserError(f"{', '.join(models)}: a pretrained base fixes the model (its "
                        "config.json); drop --base/--init (or add --from-scratch) to train a "
                        "model of your own shape from random weights")  # fmt: skip
    base = Path(args.init) if args.init else find_shipped(SHIPPED_BASE)
    if not (base / "config.json").is_file():
        raise UserError(f"{base}: no checkpoint there (config.json missing)")
    return base


def _training_flags(p: argparse.ArgumentParser, default_config: str, lora: bool = True) -> None:
    p.add_argument("--config", metavar="FILE|NAME",
                   help=f"TOML run file, or a shipped config's name: {', '.join(shipped_configs())} "
                   f"(default: {default_config})")  # fmt: skip
    p.add_argument("--data", nargs="+", help="training files (overrides the config)")
    p.add_argument("--valid-data", metavar="FILE",
                   help="validation file that chooses best/ (default with --data: a held-out "
                   "5%% of the data, at least 32 examples)")  # fmt: skip
    p.add_argument("--out", help="run folder (checkpoints, metrics.jsonl, loss.png)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from last/, with its saved config")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a non-empty --out (removes its previous run)")  # fmt: skip
    p.add_argument("--force", action="store_true",
                   help="with --resume: accept settings that make the run differ from an "
                   "uninterrupted one (e.g. another lr)")  # fmt: skip
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved run config as TOML and exit")  # fmt: skip
    p.add_argument("--max-steps", type=int, help="optimizer steps (the schedule's length)")
    p.add_argument("--max-minutes", type=float, help="stop after this much wall time")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="default: auto")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"],
                   help="auto: bf16 where it is faster (a GPU with bf16, a CPU whose bf16 "
                        "matmuls time faster at start), else fp32 (default: the config's)")  # fmt: skip
    p.add_argument("--init", help="start from this checkpoint folder (e.g. a pretrained model)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config value, e.g. --set train.lr=5e-4 (repeatable)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--impl", choices=["fast", "reference"],
                   help="the model's path: fast, the production shell (minitune/fast/; the "
                   "default), or reference, the teaching classes; the same numbers")  # fmt: skip
    p.add_argument("--report-to", choices=["tensorboard"],
                   help="also log the metrics for TensorBoard, in OUT/tensorboard (needs the "
                   "optional extra: pip install 'minitune[tensorboard]')")  # fmt: skip
    p.add_argument("--stop-at-step", type=int, help=argparse.SUPPRESS)  # tests: stop, save last/
    p.add_argument("--skip-nonfinite", action="store_true",
                   help="skip (and count) steps whose loss is NaN/inf instead of stopping")  # fmt: skip
    scale = p.add_argument_group("GPUs and several processes (see README: More than one GPU)")
    scale.add_argument("--fsdp", action="store_true",
                       help="under torchrun: shard the model (FSDP) instead of replicating it (DDP)")  # fmt: skip
    scale.add_argument("--compile", action="store_true", help="torch.compile the model")
    scale.add_argument("--activation-checkpointing", action="store_true",
                       help="recompute layers in backward: less memory, more compute")  # fmt: skip
    if not lora:  # pretraining has no LoRA flags
        p.set_defaults(lora_rank=None, lora_alpha=None, lora_targets=None, lora_where=None)
        return
    group = p.add_argument_group("LoRA (train adapters on a frozen --init model)")
    group.add_argument("--lora-rank", type=int, help="adapter rank r (e.g. 8); 0: full fine-tuning")
    group.add_argument("--lora-alpha", type=float, help="scale α (update × α/r; default 2·r)")
    group.add_argument("--lora-targets", metavar="q,v", help="projections: any of q,k,v,o")
    group.add_argument("--lora-where", metavar="encoder,decoder,cross",
                       help="which attention layers (default: all three)")  # fmt: skip


def _length_and_beam_flags(p: argparse.ArgumentParser) -> None:
    """The decoding flags `eval` shares with `generate` and `chat`."""
    p.add_argument("--max-new-tokens", type=int, default=64,
                   help="longest answer in tokens (default: 64)")  # fmt: skip
    p.add_argument("--max-source-length", type=int, metavar="N",
                   help="prompt tokens read; longer prompts are cut, with a note (default: the "
                   "checkpoint's training setting; 512 for T5 folders)")  # fmt: skip
    p.add_argument("--num-beams", type=int, default=1,
                   help="beam search with this many beams (default: 1, greedy)")  # fmt: skip
    p.add_argument("--impl", choices=["fast", "reference"], default="fast",
                   help="the model's path: fast, the production shell (minitune/fast/, the fast "
                   "decoder; the default), or reference, the teaching classes and "
                   "model.decode; the same answers")  # fmt: skip


def _decoding_flags(p: argparse.ArgumentParser) -> None:
    _length_and_beam_flags(p)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float,
                   help="sampling temperature (switches sampling on; default 1.0 when sampling)")  # fmt: skip
    p.add_argument("--top-k", type=int,
                   help="sample among the k most likely tokens (switches sampling on)")  # fmt: skip
    p.add_argument("--top-p", type=float,
                   help="sample from the smallest set with probability p (switches sampling on)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed for sampling (default: 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="default: auto (CUDA, then MPS, then CPU)")  # fmt: skip


def _sub(sub, name: str, help: str, description: str, examples: list[str]):
    return sub.add_parser(
        name, help=help, description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minitune",
        description="A readable encoder-decoder Transformer (T5 family) for instruction tuning.",
    )
    parser.add_argument("--version", action="version", version=f"minitune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _sub(sub, "pipeline", "the laptop pipeline: train, evaluate, show examples",
             "Instruction-tune a model (from random weights; --base: the shipped pretrained base "
             "checkpoints/base) on fresh examples of the shipped suite with the laptop recipe, "
             "evaluate on the test, held-out-phrasing and held-out-task splits, and answer a "
             "few example prompts. Writes report.json and eval.txt in the run folder.",
             ["minitune pipeline", "minitune pipeline --base --out runs/base-tuned",
              "minitune pipeline --set model.preset=laptop-t5 --out runs/t5",
              "minitune pipeline --max-steps 50 --limit 20 --out /tmp/quick"])  # fmt: skip
    _training_flags(p, "laptop")
    p.add_argument("--base", action="store_true",
                   help=f"tune the shipped pretrained base ({SHIPPED_BASE}) instead of random "
                   "weights (the same recipe, data and clock)")  # fmt: skip
    p.add_argument("--from-scratch", action="store_true",
                   help="random weights (the default; the config's [model] and --set model.* "
                   "apply)")  # fmt: skip
    p.add_argument("--pretrain-steps", type=int, default=0,
                   help="span-corruption steps before tuning: from scratch, on "
                   "data/pretrain.txt; with --base/--init, more of the base's own pretraining "
                   "(configs/base.toml, the world corpus)")  # fmt: skip
    p.add_argument("--limit", type=int, help="evaluate only the first N examples of each split")
    p.set_defaults(func=cmd_pipeline)

    p = _sub(sub, "train", "instruction tuning",
             "Fine-tune with the instruction-tuning loss on the shipped suite or your files.",
             ["minitune train --config configs/laptop.toml",
              "minitune train --data my.jsonl --out runs/mine --max-minutes 10",
              "minitune train --init runs/pretrain/last --out runs/tuned",
              "minitune train --out runs/laptop --resume",
              "minitune train --set train.lr=5e-4 --set model.dropout=0.1"])  # fmt: skip
    _training_flags(p, "laptop; with --init: finetune")
    p.set_defaults(func=cmd_train)

    p = _sub(sub, "pretrain", "span-corruption pretraining",
             "Pretrain with T5's span corruption on the shipped corpus (data/pretrain.txt) or "
             "your text files (documents separated by blank lines).",
             ["minitune pretrain --max-steps 300",
              "minitune pretrain --data my_texts.txt --out runs/my_pretrain"])  # fmt: skip
    _training_flags(p, "pretrain", lora=False)
    p.set_defaults(func=cmd_pretrain)

    p = _sub(sub, "eval", "score a checkpoint on data files",
             "Generate an answer for every example and report exact match, token F1, ROUGE-L "
             "and (code tasks) the pass rate, per task and split.",
             ["minitune eval --checkpoint runs/laptop/best --data data/test.jsonl",
              "minitune eval --checkpoint runs/laptop/best --data data/heldout_tasks.jsonl --json"])  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--data", nargs="+", required=True, help="instruction files")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--limit", type=int, help="only the first N examples of each file")
    p.add_argument("--predictions", help="write every prediction to this JSONL file")
    p.add_argument("--run-code", action="store_true",
                   help="run the model's answers to code tasks against their tests for your "
                   "files too (the shipped suite's always run), in a subprocess with CPU-time "
                   "and memory limits")  # fmt: skip
    _length_and_beam_flags(p)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="default: auto (CUDA, then MPS, then CPU)")  # fmt: skip
    p.set_defaults(func=cmd_eval, sample=False, temperature=None, top_k=None, top_p=None, seed=0)

    p = _sub(sub, "generate", "answer one prompt",
             "Generate the model's answer to a prompt (greedy by default).",
             ['minitune generate --checkpoint runs/laptop/best "What is 12 + 30?"',
              'minitune generate --checkpoint runs/laptop/best --num-beams 4 "Translate this sentence into French.\\nThe small dog sees the red ball."',
              'minitune generate --checkpoint runs/laptop/best --temperature 0.8 --top-p 0.9 "Reverse the letters of this word.\\nlantern"',
              "cat prompt.txt | minitune generate --checkpoint runs/laptop/best -"])  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("prompt", nargs="?",
                   help="the prompt: the instruction, \\n (a newline), the input; - or left out: "
                   "read it from stdin")  # fmt: skip
    _decoding_flags(p)
    p.set_defaults(func=cmd_generate)

    p = _sub(sub, "chat", "talk with a checkpoint",
             "An interactive conversation, in the template of the chat data: the instruction "
             "(--system, or the default) and the turns as 'User: ...' / 'Assistant: ...' lines. "
             "When the conversation no longer fits, the oldest turns are left out first.",
             ["minitune chat --checkpoint runs/laptop/best",
              'minitune chat --checkpoint runs/laptop/best --system "Answer in French."'])  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--system", metavar="TEXT",
                   help="the instruction above the conversation (default: 'Continue the "
                   "conversation as the assistant.', as in the training data)")  # fmt: skip
    _decoding_flags(p)
    p.set_defaults(func=cmd_chat)

    p = _sub(sub, "check", "check a layer variant with the conformance kit",
             "Run minitune.testing's checks (shapes, causal masking, padding invariance, cache == "
             "no cache, reference == fast path, float64 gradcheck, and a tiny model that uses the "
             "variant) on a registered variant or on your own class given as module:Class "
             "(module importable from the current folder). Exit status 1 when a check fails.",
             ["minitune check attention=qk-norm",
              "minitune check attention=my_attention:MyAttention",
              "minitune check attention=multi-head --set n_kv_heads=1",
              "minitune check position=rotary norm=layer",
              "minitune check --all"])  # fmt: skip
    p.add_argument("variants", nargs="*", metavar="KIND=VARIANT",
                   help="KIND is attention, position, ffn or norm")  # fmt: skip
    p.add_argument("--all", action="store_true", help="check every registered variant")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a ModelConfig field for the checks' tiny model, e.g. n_kv_heads=1")  # fmt: skip
    p.set_defaults(func=cmd_check)

    p = _sub(sub, "inspect", "attention pictures for a prompt",
             "Draw the attention weights of every layer and head (encoder self, decoder self, "
             "cross; reference path) for a prompt and the model's greedy answer, the masks, and "
             "the position bias per head, as PNG files. Needs matplotlib.",
             ['minitune inspect --checkpoint runs/laptop/best "Translate to French:\\nthe red cat"',
              'minitune inspect --checkpoint runs/laptop/best --out pictures/ "What is 12 + 30?"'])  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("prompt", help="the prompt; \\n stands for a newline")
    p.add_argument("--out", default="inspect", help="folder for the PNG files (default: inspect)")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.set_defaults(func=cmd_inspect)

    p = _sub(sub, "download", "fetch a published T5 / Flan-T5 checkpoint",
             "Download config.json, the weights and spiece.model of a published checkpoint from "
             "the Hugging Face hub by plain HTTPS (https://huggingface.co/<repo>/resolve/main/"
             "<file>; no Hugging Face library), with a progress bar. An interrupted download "
             "continues where it stopped when run again; every file is checked against the "
             "published size (and sha256, for the weights) before it is kept.",
             ["minitune download flan-t5-small",
              "minitune download flan-t5-base --out models/flan-t5-base"])  # fmt: skip
    p.add_argument("name", choices=["flan-t5-small", "flan-t5-base", "t5-small"],
                   help="google/flan-t5-small, google/flan-t5-base or google-t5/t5-small")  # fmt: skip
    p.add_argument("--out", help="folder (default: models/NAME)")
    p.add_argument("--hub", default="https://huggingface.co",
                   help="the hub's address, e.g. a mirror (default: https://huggingface.co)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_download)

    p = _sub(sub, "export", "write a checkpoint as a Hugging Face T5 folder",
             "Write config.json, model.safetensors and spiece.model in the layout of Hugging "
             "Face's T5 (transformers loads it, with the same logits). Any model with a T5 "
             "architecture exports (relative positions, RMSNorm pre-norm, ReLU or gated-GELU, "
             "no biases, multi-head attention), the laptop and tiny presets included: their "
             "1/sqrt(D) attention scaling is folded into W_q.",
             ["minitune export --checkpoint runs/laptop/best --out exported/laptop-t5",
              "minitune export --checkpoint runs/flan-tuned/best --out exported/flan-tuned"])  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (LoRA: merged first)")
    p.add_argument("--out", required=True, help="folder for the T5 files")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.set_defaults(func=cmd_export)

    lora = sub.add_parser("lora", help="LoRA adapter checkpoints").add_subparsers(
        dest="lora_command", metavar="COMMAND", required=True
    )
    p = _sub(lora, "merge", "fold adapters into the base model",
             "Write a plain checkpoint whose weights are W + (α/r)·B·A: as fast as the base, no "
             "adapters, no reference to the base folder.",
             ["minitune lora merge --checkpoint runs/lora/best --out runs/lora-merged"])  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="a LoRA checkpoint folder")
    p.add_argument("--out", required=True, help="folder for the merged checkpoint")
    p.set_defaults(func=cmd_lora_merge)

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
    p.add_argument(
        "--train-per-task",
        type=_positive_int,
        default=None,
        help="train examples per task (default: 500; changes the other splits too)",
    )
    p.add_argument(
        "--documents", type=_positive_int, default=4000, help="pretraining corpus documents"
    )
    p.set_defaults(func=cmd_data_generate)

    p = data.add_parser(
        "corpus",
        help="write the world corpus: web-like text for pretraining a base model",
        description="Write the world corpus (minitune/data/world.py): stories, news, notices,\n"
        "emails and letters with addresses, dialogues, encyclopedia paragraphs, French with\n"
        "English glosses, synonyms and code, from a general English word list and the\n"
        "generators' whole lexicon. No document holds an evaluation input, prompt or\n"
        "answer of several words, and every word of every task phrasing occurs. The same\n"
        "seed gives the same bytes.",
        epilog="examples:\n  minitune data corpus --out data/world.txt.gz\n"
        "  minitune data corpus --out /tmp/small.txt --documents 1000 --seed 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="data/world.txt.gz", help="output file (.txt or .txt.gz)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--documents", type=_positive_int, default=60000,
                   help="documents before the usage sentences (default: 60000)")  # fmt: skip
    p.set_defaults(func=cmd_data_corpus)

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
    p.add_argument("--per-task", type=_positive_int, required=True, help="examples per task")
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
    p.add_argument("--shared", action="store_true",
                   help="also the training-only families over the suite's inputs, told apart "
                   "by their instruction alone (minitune/data/families_shared.py)")  # fmt: skip
    p.set_defaults(func=cmd_data_fresh)

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
    p.add_argument("--segmentation", choices=["copyable", "plain"], default="copyable",
                   help="copyable (default): a space before every line and capital runs one "
                   "letter per token, stored beside the model; plain: SentencePiece as it is")  # fmt: skip
    p.set_defaults(func=cmd_tokenizer_train)
    return parser


def main(argv: list[str] | None = None) -> int:
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
    from minitune.checkpoint import CheckpointError
    from minitune.data.formats import DataError
    from minitune.run_errors import DivergenceError, RunError

    try:
        return args.func(args)
    except DivergenceError as err:  # not a mistake in the command, but nothing to trace either
        print(f"minitune: error: {err}", file=sys.stderr)
        return 1
    except (UserError, DataError, CheckpointError, RunError, FileNotFoundError) as err:
        print(f"minitune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (which saves and returns 130 itself)
        print("minitune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
