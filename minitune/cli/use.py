"""The jobs that use a checkpoint: `minitune eval`, `generate` and `chat`, and what they share
(decoding flags, reading a prompt, one answer, scoring files).

    minitune eval --checkpoint runs/laptop/best --data data/test.jsonl
    minitune generate --checkpoint runs/laptop/best "What is 12 + 30?"
    minitune chat --checkpoint runs/laptop/best

Each loads the checkpoint and decodes with `model.generate` (fused kernels as --fused-kernels
says: auto, on with CUDA only); stdout is the answer or report.
"""

from __future__ import annotations

import argparse
import sys

from minitune.cli.shared import DEVICES, UserError, sub_parser
from minitune.run.checkpoint import load_checkpoint


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from minitune.evaluate import evaluate_files, format_table

    decoding = decoding_settings(args)
    model, tok, info = load_checkpoint(args.checkpoint, args.device, args.fused_kernels)
    max_source_length = source_length(info, args.max_source_length)
    result = evaluate_files(
        model,
        tok,
        args.data,
        args.limit,
        max_source_length,
        run_code=args.run_code or None,
        **decoding,
    )
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


def decoding_settings(args: argparse.Namespace) -> dict:
    """The decoding settings of the flags, checked here so that a mistake is one line naming
    the flag (model.generate would raise the same ValueError deeper down)."""
    import torch

    sample = args.sample or args.temperature is not None or args.top_k or args.top_p is not None
    named = [
        f"{flag} {value}"
        for flag, value in (
            ("--temperature", args.temperature),
            ("--top-k", args.top_k),
            ("--top-p", args.top_p),
        )
        if value is not None
    ]
    if sample and args.num_beams > 1:
        raise UserError(
            f"--num-beams {args.num_beams} with sampling ({', '.join(named) or '--sample'}): beam "
            "search keeps the most likely sequences, sampling draws at random; use one of them"
        )
    checks = [
        (args.max_new_tokens >= 1, f"--max-new-tokens must be >= 1, got {args.max_new_tokens}"),
        (args.num_beams >= 1, f"--num-beams must be >= 1, got {args.num_beams}"),
        (
            args.temperature is None or args.temperature > 0,
            f"--temperature must be > 0, got {args.temperature} (for greedy: leave it out)",
        ),
        (
            args.top_k is None or args.top_k >= 0,
            f"--top-k must be >= 0 (0 = all), got {args.top_k}",
        ),
        (args.top_p is None or 0 < args.top_p <= 1, f"--top-p must be in (0, 1], got {args.top_p}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    kwargs = {"max_new_tokens": args.max_new_tokens, "num_beams": args.num_beams}
    if sample:
        kwargs.update(
            do_sample=True,
            temperature=args.temperature or 1.0,
            top_k=args.top_k or 0,
            top_p=args.top_p or 1.0,
            generator=torch.Generator().manual_seed(args.seed),
        )
    return kwargs


def source_length(info: dict, given: int | None) -> int:
    """--max-source-length, else what the checkpoint was trained with (T5 folders: 512)."""
    if given is not None:
        if given < 2:
            raise UserError(f"--max-source-length must be >= 2, got {given}")
        return given
    return int(info.get("train", {}).get("max_source_length") or 512)


class TextStream:
    """Prints an answer while it is decoded, whole words at a time, so that what is printed is
    exactly the final answer: a word's text can still change while its pieces arrive (a byte
    of a multi-byte letter, a capital spelled letter by letter), so the last, unfinished word is
    held back until a space or a newline follows it, or the answer ends (`finish`).

    Example: pieces "▁The", "▁ca", "t", "▁sat" print "The", " cat", then (finish) " sat"."""

    def __init__(self, tok, write):
        self.tok, self.write = tok, write
        self.ids: list[int] = []
        self.printed = ""

    def __call__(self, next_token) -> None:
        """`generate`'s on_token: one new token of a one-row batch."""
        token = int(next_token[0])
        if token == self.tok.eos_id:
            return
        self.ids.append(token)
        text = self.tok.decode(self.ids)
        stable = max(text.rfind(" "), text.rfind("\n"))  # everything before the last word
        if stable > len(self.printed) and text.startswith(self.printed):
            self.write(text[len(self.printed) : stable])
            self.printed = text[:stable]

    def finish(self, final: str) -> None:
        """Print the rest of the final answer (which starts with what was printed)."""
        assert final.startswith(self.printed), (final, self.printed)
        self.write(final[len(self.printed) :])
        self.printed = final


def answer(
    model, tok, prompt: str, decoding: dict, max_source_length: int = 512, stream=None
) -> str:
    """The model's answer to one prompt; a prompt cut to `max_source_length` tokens is reported
    (on stderr, so that stdout stays the answer). `stream`: a `TextStream` that prints it as it
    is decoded (greedy and sampling; beam search prints it when done)."""
    batch = tok.encode_batch([prompt], max_length=max_source_length)
    if batch.truncated:
        print(
            f"note: the prompt is {len(tok.encode(prompt)) + 1} tokens; the model reads only the "
            f"first {max_source_length} (--max-source-length)",
            file=sys.stderr,
        )
    device = next(model.parameters()).device
    if stream is not None and decoding.get("num_beams", 1) == 1:
        decoding = {**decoding, "on_token": stream}
    out = model.generate(batch.input_ids.to(device), batch.attention_mask.to(device), **decoding)
    text = tok.decode(out[0])
    if stream is not None:
        stream.finish(text)
    return text


def streamed_answer(model, tok, prompt: str, decoding: dict, max_source_length: int) -> str:
    """`answer`, printed to stdout as it is decoded, then a newline; the speed goes to stderr.
    Ctrl-C stops the answer where it is (KeyboardInterrupt, after printing a newline)."""
    import time

    stream = TextStream(tok, lambda text: print(text, end="", flush=True))
    start = time.perf_counter()
    try:
        text = answer(model, tok, prompt, decoding, max_source_length, stream)
    except KeyboardInterrupt:
        print(flush=True)
        raise
    seconds = time.perf_counter() - start
    print(flush=True)
    n = len(tok.encode(text)) + 1  # the answer's tokens and its EOS
    print(f"({n} tokens in {seconds:.2f} s, {n / seconds:.1f} tokens/s)", file=sys.stderr)
    return text


def read_prompt(prompt: str | None) -> str:
    """The PROMPT argument with \\n as a newline, or stdin when it is "-" or left out."""
    if prompt is None or prompt == "-":
        if prompt is None and sys.stdin.isatty():
            raise UserError(
                "give a PROMPT, or pipe one in: echo 'What is 2 + 3?' | minitune generate ..."
            )
        return sys.stdin.read().rstrip("\n")
    return prompt.replace("\\n", "\n")


def cmd_generate(args: argparse.Namespace) -> int:
    decoding = decoding_settings(args)
    prompt = read_prompt(args.prompt)
    model, tok, info = load_checkpoint(args.checkpoint, args.device, args.fused_kernels)
    streamed_answer(model, tok, prompt, decoding, source_length(info, args.max_source_length))
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

    decoding = decoding_settings(args)
    model, tok, info = load_checkpoint(args.checkpoint, args.device, args.fused_kernels)
    max_length = source_length(info, args.max_source_length)
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
        print("model> ", end="", flush=True)
        try:
            reply = streamed_answer(model, tok, prompt, decoding, max_length)
        except KeyboardInterrupt:  # Ctrl-C stops this answer, not the conversation
            print("(stopped)")
            history.pop()  # the question goes unanswered
            continue
        history.append(f"Assistant: {reply}")


def length_and_beam_flags(p: argparse.ArgumentParser) -> None:
    """The decoding flags `eval` shares with `generate` and `chat`."""
    p.add_argument(
        "--max-new-tokens", type=int, default=64, help="longest answer in tokens (default: 64)"
    )
    p.add_argument(
        "--max-source-length",
        type=int,
        metavar="N",
        help="prompt tokens read; longer prompts are cut, with a note (default: the "
        "checkpoint's training setting; 512 for T5 folders)",
    )
    p.add_argument(
        "--num-beams",
        type=int,
        default=1,
        help="beam search with this many beams (default: 1, greedy)",
    )
    p.add_argument(
        "--fused-kernels",
        choices=["auto", "on", "off"],
        default="auto",
        help="attention's fused branch (scaled_dot_product_attention): on, off (the explicit "
        "arithmetic; the same answers), or auto (the default: on with CUDA only)",
    )


def decoding_flags(p: argparse.ArgumentParser) -> None:
    length_and_beam_flags(p)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument(
        "--temperature",
        type=float,
        help="sampling temperature (switches sampling on; default 1.0 when sampling)",
    )
    p.add_argument(
        "--top-k", type=int, help="sample among the k most likely tokens (switches sampling on)"
    )
    p.add_argument(
        "--top-p",
        type=float,
        help="sample from the smallest set with probability p (switches sampling on)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for sampling (default: 0)")
    p.add_argument(
        "--device", default="auto", choices=DEVICES, help="default: auto (CUDA, then MPS, then CPU)"
    )


def add_parsers(sub) -> None:
    """The sub-commands eval, generate and chat."""
    p = sub_parser(
        sub,
        "eval",
        "score a checkpoint on data files",
        "Generate an answer for every example and report exact match, token F1, "
        "ROUGE-L and (code tasks) the pass rate, per task and split.",
        [
            "minitune eval --checkpoint runs/laptop/best --data data/test.jsonl",
            "minitune eval --checkpoint runs/laptop/best --data data/heldout_tasks.jsonl --json",
        ],
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--data", nargs="+", required=True, help="instruction files")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--limit", type=int, help="only the first N examples of each file")
    p.add_argument("--predictions", help="write every prediction to this JSONL file")
    p.add_argument(
        "--run-code",
        action="store_true",
        help="run the model's answers to code tasks against their tests for your "
        "files too (the shipped suite's always run), in a subprocess with CPU-time "
        "and memory limits",
    )
    length_and_beam_flags(p)
    p.add_argument(
        "--device", default="auto", choices=DEVICES, help="default: auto (CUDA, then MPS, then CPU)"
    )
    p.set_defaults(func=cmd_eval, sample=False, temperature=None, top_k=None, top_p=None, seed=0)

    p = sub_parser(
        sub,
        "generate",
        "answer one prompt",
        "Generate the model's answer to a prompt (greedy by default).",
        [
            'minitune generate --checkpoint runs/laptop/best "What is 12 + 30?"',
            'minitune generate --checkpoint runs/laptop/best --num-beams 4 "Translate this sentence into French.\\nThe small dog sees the red ball."',
            'minitune generate --checkpoint runs/laptop/best --temperature 0.8 --top-p 0.9 "Reverse the letters of this word.\\nlantern"',
            "cat prompt.txt | minitune generate --checkpoint runs/laptop/best -",
        ],
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument(
        "prompt",
        nargs="?",
        help="the prompt: the instruction, \\n (a newline), the input; - or left out: "
        "read it from stdin",
    )
    decoding_flags(p)
    p.set_defaults(func=cmd_generate)

    p = sub_parser(
        sub,
        "chat",
        "talk with a checkpoint",
        "An interactive conversation, in the template of the chat data: the "
        "instruction (--system, or the default) and the turns as 'User: ...' / "
        "'Assistant: ...' lines. When the conversation no longer fits, the oldest "
        "turns are left out first.",
        [
            "minitune chat --checkpoint runs/laptop/best",
            'minitune chat --checkpoint runs/laptop/best --system "Answer in French."',
        ],
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument(
        "--system",
        metavar="TEXT",
        help="the instruction above the conversation (default: 'Continue the "
        "conversation as the assistant.', as in the training data)",
    )
    decoding_flags(p)
    p.set_defaults(func=cmd_chat)
