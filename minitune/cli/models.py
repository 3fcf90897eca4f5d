"""The sub-commands about models: `minitune download`, `export`, `inspect`, `lora merge`, `check`
(the conformance kit on a layer variant) and `presets`.

    minitune download flan-t5-small                 a published T5 folder, by plain HTTPS
    minitune export --checkpoint DIR --out T5DIR    a checkpoint as a Hugging Face T5 folder
    minitune inspect --checkpoint DIR PROMPT        attention pictures
    minitune lora merge --checkpoint DIR --out M    fold LoRA adapters into the base
    minitune check attention=qk-norm                the conformance kit (minitune/kit/conformance.py)
    minitune presets                                the named model presets and their sizes
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minitune.cli.shared import DEVICES, UserError, sub_parser
from minitune.config import PRESETS, ModelConfig
from minitune.run.checkpoint import load_checkpoint

# The presets with a T5 architecture, the ones `minitune export` writes (the default `laptop` has
# a copy head, which T5 has no equivalent for). tests/test_export.py checks this list against
# `minitune.interop.t5.t5_problems` and exports each.
EXPORTABLE_PRESETS = ("laptop-t5", "tiny", "t5-small", "t5-base", "t5-v1_1-small")


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


def cmd_inspect(args: argparse.Namespace) -> int:
    from minitune.kit.pictures import inspect_prompt

    model, tok, _ = load_checkpoint(args.checkpoint, args.device)
    try:
        answer, written = inspect_prompt(
            model, tok, args.prompt.replace("\\n", "\n"), args.out, args.max_new_tokens
        )
    except ImportError as err:
        raise UserError(str(err)) from None
    print(f"answer: {answer}")
    print(f"wrote {', '.join(written)} to {args.out}")
    if "position_bias.png" not in written:
        print(
            f"(position scheme {model.config.position!r} adds no attention bias: "
            "no position_bias.png)"
        )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run the conformance kit; exit 0 when every check passes, 1 otherwise."""
    from minitune.kit import conformance
    from minitune.layers import registry
    from minitune.run.settings import parse_override

    targets = []
    if args.all:
        targets = [(kind, name) for kind in registry.REGISTRY for name in registry.names(kind)]
    for item in args.variants:
        kind, sep, spec = item.partition("=")
        if not sep or kind not in conformance.CHECKS:
            raise UserError(
                f"{item!r}: expected KIND=VARIANT with KIND one of "
                f"{', '.join(conformance.CHECKS)}, e.g. attention=my_module:MyAttention"
            )
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
            report = conformance.check(kind, spec, **overrides)
        except (ValueError, TypeError) as err:
            raise UserError(str(err)) from None
        print(report, end="\n\n")
        failed += not report.ok
    print(f"{len(targets) - failed} of {len(targets)} variants pass every check")
    return 1 if failed else 0


def cmd_lora_merge(args: argparse.Namespace) -> int:
    """Fold a LoRA checkpoint's adapters into its base; write a plain checkpoint."""
    from minitune.lora import merge_lora
    from minitune.run.checkpoint import load_pretrained, read_config, save_checkpoint

    info = read_config(args.checkpoint)
    if "lora" not in info:
        raise UserError(f"{args.checkpoint}: not a LoRA checkpoint (no adapters to merge)")
    model, tokenizer_file, _ = load_pretrained(args.checkpoint)
    merge_lora(model)
    kept = {k: v for k, v in info.items() if k not in ("model", "lora")}
    save_checkpoint(args.out, model, {**kept, "merged_from": str(args.checkpoint)}, tokenizer_file)
    print(
        f"merged the rank-{info['lora']['rank']} adapters into {info['base']['path']}: {args.out}"
    )
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch a published T5 / Flan-T5 checkpoint into a folder that --checkpoint/--init take."""
    from minitune.interop.download import DownloadError, download, short_name
    from minitune.interop.t5 import load_t5

    try:
        name = short_name(args.name)  # "google/flan-t5-small" -> "flan-t5-small"
        out = Path(args.out or Path("models") / name)
        download(name, out, hub=args.hub, progress=not args.no_progress)
    except DownloadError as err:
        raise UserError(str(err)) from None
    model = load_t5(out)  # a complete folder: it loads
    print(
        f"{out}: {model.num_parameters() / 1e6:.1f}M parameters; try it:\n"
        f'  minitune generate --checkpoint {out} "Translate to German: How old are you?"\n'
        f"  minitune train --init {out} --data my.jsonl --out runs/{name}-tuned"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a checkpoint in the Hugging Face T5 layout (config.json, model.safetensors,
    spiece.model), for `transformers` or any T5 tool."""
    from minitune.interop.t5 import export_t5, t5_problems

    model, tok, _ = load_checkpoint(args.checkpoint, "cpu")  # LoRA adapters are merged in
    problems = t5_problems(model.config)
    if problems:
        raise UserError(
            f"{args.checkpoint} is not a T5 architecture, so it has no T5 layout: "
            f"{'; '.join(problems)}. Presets that export: {', '.join(EXPORTABLE_PRESETS)}"
        )
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise UserError(f"{out} is not empty; choose another --out or pass --overwrite")
    export_t5(model, out, tokenizer_file=tok.path)
    print(
        f"wrote {out}/config.json, model.safetensors, spiece.model: a T5 folder for "
        "transformers (T5ForConditionalGeneration.from_pretrained) or --checkpoint/--init"
    )
    if not tok.segmentation.plain:
        print(
            f"note: this tokenizer has segmentation conventions ({tok.segmentation}), kept in "
            f"{out}/spiece.segmentation.json; minitune applies them, other T5 tools do not: "
            "encode text for them with minitune.Tokenizer"
        )
    return 0


def add_parsers(sub) -> None:
    """The sub-commands check, inspect, download, export, lora merge and presets."""
    p = sub_parser(
        sub,
        "check",
        "check a layer variant with the conformance kit",
        "Run minitune.kit.conformance's checks (shapes, causal masking, padding invariance, "
        "cache == no cache, fused branch == explicit arithmetic, float64 gradcheck, and a "
        "tiny model that uses the variant) on a registered variant or on your own class "
        "given as module:Class (module importable from the current folder). Exit status "
        "1 when a check fails.",
        [
            "minitune check attention=qk-norm",
            "minitune check attention=my_attention:MyAttention",
            "minitune check attention=multi-head --set n_kv_heads=1",
            "minitune check position=rotary norm=layer",
            "minitune check --all",
        ],
    )
    p.add_argument(
        "variants",
        nargs="*",
        metavar="KIND=VARIANT",
        help="KIND is attention, position, ffn or norm",
    )
    p.add_argument("--all", action="store_true", help="check every registered variant")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a ModelConfig field for the checks' tiny model, e.g. n_kv_heads=1",
    )
    p.set_defaults(func=cmd_check)

    p = sub_parser(
        sub,
        "inspect",
        "attention pictures for a prompt",
        "Draw the attention weights of every layer and head (encoder self, decoder "
        "self, cross; from the explicit softmax) for a prompt and the model's greedy "
        "answer, the masks, and the position bias per head, as PNG files.",
        [
            'minitune inspect --checkpoint runs/laptop/best "Translate to French:\\nthe red cat"',
            'minitune inspect --checkpoint runs/laptop/best --out pictures/ "What is 12 + 30?"',
        ],
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("prompt", help="the prompt; \\n stands for a newline")
    p.add_argument("--out", default="inspect", help="folder for the PNG files (default: inspect)")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.set_defaults(func=cmd_inspect)
    _download_and_export_parsers(sub)

    lora = sub.add_parser("lora", help="LoRA adapter checkpoints").add_subparsers(
        dest="lora_command", metavar="COMMAND", required=True
    )
    p = sub_parser(
        lora,
        "merge",
        "fold adapters into the base model",
        "Write a plain checkpoint whose weights are W + (α/r)·B·A: as fast as the "
        "base, no adapters, no reference to the base folder.",
        ["minitune lora merge --checkpoint runs/lora/best --out runs/lora-merged"],
    )
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


def _download_and_export_parsers(sub) -> None:
    """The sub-commands download and export: to and from Hugging Face's T5 layout."""
    p = sub_parser(
        sub,
        "download",
        "fetch a published T5 / Flan-T5 checkpoint",
        "Download config.json, the weights and spiece.model of a published checkpoint "
        "from the Hugging Face hub by plain HTTPS (https://huggingface.co/<repo>/"
        "resolve/main/<file>; no Hugging Face library), with a progress bar. An "
        "interrupted download continues where it stopped when run again; every file "
        "is checked against the published size (and sha256, for the weights) before "
        "it is kept.",
        [
            "minitune download flan-t5-small",
            "minitune download google/flan-t5-base --out models/flan-t5-base",
        ],
    )
    p.add_argument(
        "name",
        help="flan-t5-small, flan-t5-base or t5-small, or the hub's name of one of them: "
        "google/flan-t5-small, google/flan-t5-base, google-t5/t5-small",
    )
    p.add_argument("--out", help="folder (default: models/NAME)")
    p.add_argument(
        "--hub",
        default="https://huggingface.co",
        help="the hub's address, e.g. a mirror (default: https://huggingface.co)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_download)

    p = sub_parser(
        sub,
        "export",
        "write a checkpoint as a Hugging Face T5 folder",
        "Write config.json, model.safetensors and spiece.model in the layout of "
        "Hugging Face's T5 (transformers loads it, with the same logits). Any model "
        "with a T5 architecture exports (relative positions, RMSNorm pre-norm, ReLU or "
        "gated-GELU, no biases, multi-head attention, no copy head): the presets "
        f"{', '.join(EXPORTABLE_PRESETS)} (laptop-t5's and tiny's 1/sqrt(D) attention "
        "scaling is folded into W_q). The pipeline's default preset has a copy head, "
        "which T5 has no equivalent for: train laptop-t5 to export (first example).",
        [
            "minitune pipeline --set model.preset=laptop-t5 --out runs/t5",
            "minitune export --checkpoint runs/t5/best --out exported/laptop-t5",
            "minitune export --checkpoint runs/flan-tuned/best --out exported/flan-tuned",
        ],
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (LoRA: merged first)")
    p.add_argument("--out", required=True, help="folder for the T5 files")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.set_defaults(func=cmd_export)
