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
    minitune tokenizer train          train a SentencePiece tokenizer on data files

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


# ---- training ---------------------------------------------------------------------------------


def _run_config(args: argparse.Namespace, objective: str):
    """The config file, then --set overrides, then the dedicated flags."""
    from minitune.config import load_run_config, parse_override

    overrides: dict[str, dict] = {"model": {}, "train": {}}
    if objective == "span":
        overrides["train"].update(objective="span", data=["data/pretrain.txt"], valid_data=None,
                                  out="runs/pretrain")  # fmt: skip
    try:
        for text in args.set or []:
            section, key, value = parse_override(text)
            overrides[section][key] = value
        flags = {"data": args.data, "out": args.out, "max_steps": args.max_steps,
                 "max_minutes": args.max_minutes, "device": args.device, "init": args.init,
                 "precision": args.precision, "lora_rank": args.lora_rank,
                 "lora_alpha": args.lora_alpha,
                 "lora_targets": args.lora_targets and args.lora_targets.split(","),
                 "lora_where": args.lora_where and args.lora_where.split(","),
                 "on_nonfinite": "skip" if args.skip_nonfinite else None,
                 "fsdp": args.fsdp or None, "compile": args.compile or None,
                 "activation_checkpointing": args.activation_checkpointing or None}  # fmt: skip
        overrides["train"].update({k: v for k, v in flags.items() if v is not None})
        return load_run_config(args.config, overrides)
    except ValueError as err:
        raise UserError(str(err)) from None


def _train(args: argparse.Namespace, objective: str) -> int:
    from minitune.train import train

    model_cfg, cfg = _run_config(args, objective)
    summary = train(model_cfg, cfg, resume=args.resume, progress=not args.no_progress,
                    stop_at_step=args.stop_at_step)  # fmt: skip
    print(
        f"done: {summary['step']} steps in {summary['minutes']:.1f} min ({summary['stop_reason']}),"
        f" best validation loss {summary['best_valid_loss']:.4f}, checkpoints in {summary['out']}"
        + (f"; {summary['skipped']} steps skipped (loss not finite)" if summary["skipped"] else "")
    )
    return 130 if summary["stop_reason"] == "interrupted" else 0


def cmd_train(args: argparse.Namespace) -> int:
    """Instruction tuning."""
    return _train(args, "instruct")


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Span-corruption pretraining."""
    return _train(args, "span")


# ---- evaluation and use ---------------------------------------------------------------------


def _load(checkpoint: str, device: str):
    """A minitune checkpoint folder or a Hugging Face T5 / Flan-T5 folder."""
    from minitune.checkpoint import load_pretrained
    from minitune.lora import merge_lora
    from minitune.tokenizer import Tokenizer
    from minitune.train import pick_device

    model, tokenizer_file, info = load_pretrained(checkpoint, pick_device(device))
    if model.lora is not None:
        merge_lora(model)  # an adapter checkpoint: fold the adapters in, as fast as the base
    return model, Tokenizer(tokenizer_file), info


def evaluate_files(model, tok, files: list[str], limit: int | None, max_source_length: int,
                   max_new_tokens: int, **decoding) -> dict:  # fmt: skip
    """Predict and score every example of the files; returns the report (see evaluate.py)."""
    from minitune.data.formats import read_records
    from minitune.data.templates import format_prompt
    from minitune.evaluate import predict, score, split_name, summarize

    scored = []
    for path in files:
        records = read_records(path)[:limit] if limit else read_records(path)
        prompts = [format_prompt(r.instruction, r.input) for r in records]
        predictions = predict(model, tok, prompts, max_source_length, max_new_tokens, **decoding)
        scored += score(records, predictions, split_name(path))
    return {"report": summarize(scored), "scored": scored}


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from minitune.evaluate import format_table

    model, tok, _ = _load(args.checkpoint, args.device)
    result = evaluate_files(model, tok, args.data, args.limit, args.max_source_length,
                            args.max_new_tokens, num_beams=args.num_beams)  # fmt: skip
    if args.predictions:
        with open(args.predictions, "w", encoding="utf-8") as f:
            for s in result["scored"]:
                f.write(json.dumps(s.__dict__, ensure_ascii=False) + "\n")
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
    from minitune import testing
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


def _decoding(args: argparse.Namespace) -> dict:
    import torch

    sample = args.sample or args.temperature is not None or args.top_k or args.top_p is not None
    kwargs = {"max_new_tokens": args.max_new_tokens, "num_beams": args.num_beams}
    if sample:
        kwargs.update(do_sample=True, temperature=args.temperature or 1.0, top_k=args.top_k or 0,
                      top_p=args.top_p or 1.0,
                      generator=torch.Generator().manual_seed(args.seed))  # fmt: skip
    return kwargs


def _answer(model, tok, prompt: str, decoding: dict, max_source_length: int = 512) -> str:
    batch = tok.encode_batch([prompt], max_length=max_source_length)
    device = next(model.parameters()).device
    out = model.generate(batch.input_ids.to(device), batch.attention_mask.to(device), **decoding)
    return tok.decode(out[0])


def cmd_generate(args: argparse.Namespace) -> int:
    model, tok, _ = _load(args.checkpoint, args.device)
    try:
        decoding = _decoding(args)
        print(_answer(model, tok, args.prompt, decoding))
    except ValueError as err:  # bad decoding values
        raise UserError(str(err)) from None
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from minitune.data.formats import CHAT_INSTRUCTION
    from minitune.data.templates import format_prompt

    model, tok, _ = _load(args.checkpoint, args.device)
    decoding = _decoding(args)
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
        try:
            reply = _answer(model, tok, format_prompt(CHAT_INSTRUCTION, "\n".join(history)),
                            decoding)  # fmt: skip
        except ValueError as err:  # bad decoding values
            raise UserError(str(err)) from None
        history.append(f"Assistant: {reply}")
        print(f"model> {reply}")


# ---- the laptop pipeline ----------------------------------------------------------------------

EXAMPLE_PROMPTS = [
    "Translate this sentence into French.\nThe small dog sees the red ball.",
    "What is 123 + 456?",
    "Summarize this news story in one sentence.\nThe city council announced on Monday that it "
    "will build a new library in Lyon. The work will cost 12 million euros and should end in "
    "May 2027. Some residents worry about noise during the 3 years of work.",
    "Write a Python function that does what is described.\nFunction name: add_7\nWhat it does: "
    "takes a number x and returns x plus 7.",
    "Extract the email addresses from the text.\nYou can reach Nora at nora.kim@example.com "
    "before Friday.",
]


def cmd_pipeline(args: argparse.Namespace) -> int:
    """(Pretrain,) instruction-tune, evaluate on the three evaluation splits, show examples."""
    import json

    from minitune.evaluate import SPLIT_NAMES, format_table
    from minitune.train import train

    model_cfg, cfg = _run_config(args, "instruct")
    out = Path(cfg.out)
    if args.pretrain_steps:
        pre_args = argparse.Namespace(**{**vars(args), "data": None, "init": None,
                                         "out": str(out / "pretrain"), "max_minutes": None,
                                         "max_steps": args.pretrain_steps})  # fmt: skip
        pre_model, pre_cfg = _run_config(pre_args, "span")
        print(f"== pretraining (span corruption) for {args.pretrain_steps} steps")
        train(pre_model, pre_cfg, progress=not args.no_progress)
        cfg.init = str(out / "pretrain" / "last")
    print("== instruction tuning")
    summary = train(model_cfg, cfg, progress=not args.no_progress)
    if summary["stop_reason"] == "interrupted":
        return 130
    print("== evaluation")
    model, tok, _ = _load(str(out / "best"), cfg.device)
    files = [f"data/{split}.jsonl" for split in SPLIT_NAMES]
    result = evaluate_files(model, tok, files, args.limit, cfg.max_source_length,
                            cfg.max_target_length)  # fmt: skip
    table = format_table(result["report"])
    print(table, end="")
    for split, label in SPLIT_NAMES.items():
        average = result["report"].get(split, {}).get("average")
        if average:
            print(f"{label}: exact match {average['exact_match']:.1f}% (average over tasks)")
    print("== examples")
    examples = []
    for prompt in EXAMPLE_PROMPTS:
        answer = _answer(model, tok, prompt, {"max_new_tokens": cfg.max_target_length})
        examples.append({"prompt": prompt, "answer": answer})
        print(f"--- prompt:\n{prompt}\n--- answer:\n{answer}\n")
    (out / "report.json").write_text(
        json.dumps({"train": summary, "eval": result["report"], "examples": examples}, indent=2)
    )
    (out / "eval.txt").write_text(table)
    print(f"report: {out / 'report.json'}, table: {out / 'eval.txt'}")
    return 0


def _training_flags(p: argparse.ArgumentParser, default_config: str | None) -> None:
    p.add_argument(
        "--config", default=default_config, help=f"TOML run file (default: {default_config})"
    )
    p.add_argument("--data", nargs="+", help="training files (overrides the config)")
    p.add_argument("--out", help="run folder (checkpoints, metrics.jsonl, loss.png)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (the schedule's length)")
    p.add_argument("--max-minutes", type=float, help="stop after this much wall time")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="default: auto")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="default: fp32")
    p.add_argument("--init", help="start from this checkpoint folder (e.g. a pretrained model)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config value, e.g. --set train.lr=5e-4 (repeatable)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-at-step", type=int, help=argparse.SUPPRESS)  # tests: stop, save last/
    p.add_argument("--skip-nonfinite", action="store_true",
                   help="skip (and count) steps whose loss is NaN/inf instead of stopping")  # fmt: skip
    scale = p.add_argument_group("GPUs and several processes (see README: More than one GPU)")
    scale.add_argument("--fsdp", action="store_true",
                       help="under torchrun: shard the model (FSDP) instead of replicating it (DDP)")  # fmt: skip
    scale.add_argument("--compile", action="store_true", help="torch.compile the model")
    scale.add_argument("--activation-checkpointing", action="store_true",
                       help="recompute layers in backward: less memory, more compute")  # fmt: skip
    lora = p.add_argument_group("LoRA (train adapters on a frozen --init model)")
    lora.add_argument("--lora-rank", type=int, help="adapter rank r (e.g. 8); 0: full fine-tuning")
    lora.add_argument("--lora-alpha", type=float, help="scale α (update × α/r; default 2·r)")
    lora.add_argument("--lora-targets", metavar="q,v", help="projections: any of q,k,v,o")
    lora.add_argument("--lora-where", metavar="encoder,decoder,cross",
                      help="which attention layers (default: all three)")  # fmt: skip


def _decoding_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--num-beams", type=int, default=1, help="beam search with this many beams")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, help="sampling temperature (implies --sample)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample from the smallest set with probability p")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])


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
             "Instruction-tune on the shipped suite (optionally after span-corruption "
             "pretraining), evaluate on the test, held-out-phrasing and held-out-task splits, "
             "and answer a few example prompts. Writes report.json and eval.txt in the run folder.",
             ["minitune pipeline", "minitune pipeline --pretrain-steps 300 --out runs/pretrained",
              "minitune pipeline --max-steps 50 --limit 20 --out /tmp/quick"])  # fmt: skip
    _training_flags(p, "configs/laptop.toml")
    p.add_argument("--pretrain-steps", type=int, default=0, help="span-corruption steps first")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples of each split")
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_pipeline)

    p = _sub(sub, "train", "instruction tuning",
             "Fine-tune with the instruction-tuning loss on the shipped suite or your files.",
             ["minitune train --config configs/laptop.toml",
              "minitune train --data my.jsonl --out runs/mine --max-minutes 10",
              "minitune train --init runs/pretrain/last --out runs/tuned",
              "minitune train --out runs/laptop --resume",
              "minitune train --set train.lr=5e-4 --set model.dropout=0.1"])  # fmt: skip
    _training_flags(p, "configs/laptop.toml")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last/")
    p.set_defaults(func=cmd_train)

    p = _sub(sub, "pretrain", "span-corruption pretraining",
             "Pretrain with T5's span corruption on the shipped corpus (data/pretrain.txt) or "
             "your text files (documents separated by blank lines).",
             ["minitune pretrain --max-steps 300",
              "minitune pretrain --data my_texts.txt --out runs/my_pretrain"])  # fmt: skip
    _training_flags(p, "configs/laptop.toml")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last/")
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
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--max-source-length", type=int, default=128)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.set_defaults(func=cmd_eval)

    p = _sub(sub, "generate", "answer one prompt",
             "Generate the model's answer to a prompt (greedy by default).",
             ['minitune generate --checkpoint runs/laptop/best "What is 12 + 30?"',
              'minitune generate --checkpoint runs/laptop/best --num-beams 4 "Translate to French: the cat"',
              'minitune generate --checkpoint runs/laptop/best --temperature 0.8 --top-p 0.9 "Say hi."'])  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("prompt", help="the prompt (instruction, newline, input)")
    _decoding_flags(p)
    p.set_defaults(func=cmd_generate)

    p = _sub(sub, "chat", "talk with a checkpoint",
             "An interactive conversation; the history is the input of each turn.",
             ["minitune chat --checkpoint runs/laptop/best"])  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
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
    import os

    # As `python -m` does: a config may name a layer as "my_module:MyClass" in the current folder.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from minitune.checkpoint import CheckpointError
    from minitune.data.formats import DataError
    from minitune.train import DivergenceError, RunError

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
