"""Using a checkpoint from the command line: generate, chat and eval (user mistakes are one line
and status 2; prompts, chat history, source length; running generated code only when allowed)."""

import io
import json
import re
from pathlib import Path

import pytest
import torch
from test_train import tiny_run

import minitune.cli.use as use
from minitune.cli import main
from minitune.cli.use import chat_prompt
from minitune.run.checkpoint import load_checkpoint
from minitune.run.paths import is_shipped
from minitune.tokenizer import Tokenizer
from minitune.train import train

ROOT = Path(__file__).resolve().parents[1]
TOK = Tokenizer(ROOT / "tokenizer" / "minitune.model")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny model trained for two steps (max_source_length 64)."""
    tmp = tmp_path_factory.mktemp("use")
    model_cfg, cfg = tiny_run(tmp, max_steps=2, valid_data=None, valid_fraction=0)
    train(model_cfg, cfg, progress=False, log=lambda *a: None)
    return str(tmp / "run" / "last")


MISTAKES = [
    (
        ["--num-beams", "2", "--temperature", "0.7"],
        "--num-beams 2 with sampling (--temperature 0.7)",
    ),
    (["--num-beams", "0"], "--num-beams must be >= 1, got 0"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
]
# eval decodes greedily or with beams: it has no sampling flags
CASES = [
    (c, f, m)
    for c in ("generate", "chat", "eval")
    for f, m in MISTAKES
    if c != "eval" or not {"--top-p", "--temperature"} & set(f)
]


@pytest.mark.parametrize("command,flags,message", CASES)
def test_decoding_mistakes_are_one_line_and_status_2(command, flags, message, checkpoint, capsys):
    extra = {
        "generate": ["hello"],
        "chat": [],
        "eval": ["--data", str(ROOT / "data" / "test.jsonl")],
    }
    assert main([command, "--checkpoint", checkpoint, *flags, *extra[command]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_generate_reads_escapes_and_stdin_and_reports_a_cut_prompt(checkpoint, capsys, monkeypatch):
    assert use.read_prompt("Reverse the letters of this word.\\nlantern") == (
        "Reverse the letters of this word.\nlantern"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("What is 2 + 3?\n"))
    assert use.read_prompt("-") == "What is 2 + 3?"
    seen = []
    real = use.answer
    monkeypatch.setattr(
        use, "answer", lambda m, t, p, d, n, *s: seen.append((p, n)) or real(m, t, p, d, n, *s)
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("What is 2 + 3?\n"))
    assert main(["generate", "--checkpoint", checkpoint, "--max-new-tokens", "3"]) == 0
    assert seen[-1] == ("What is 2 + 3?", 64)  # from stdin; the checkpoint's max_source_length
    capsys.readouterr()
    long_prompt = "Summarize this news story in one sentence.\\n" + "The council met again. " * 40
    assert main(["generate", "--checkpoint", checkpoint, "--max-new-tokens", "3", long_prompt]) == 0
    err = capsys.readouterr().err
    assert "note: the prompt is" in err and "reads only the first 64 (--max-source-length)" in err
    assert use.source_length({"source": "t5", "step": 0}, None) == 512


def typed(lines: list[str]):
    """An `input` that returns these lines, then ends the input (Ctrl-D)."""
    pending = iter(lines)

    def fake_input(_prompt):
        try:
            return next(pending)
        except StopIteration:
            raise EOFError from None

    return fake_input


def test_chat_keeps_the_newest_turns_and_takes_a_system_prompt(checkpoint, capsys, monkeypatch):
    history = [f"User: question number {i} about the weather in Lyon" for i in range(12)]
    prompt, dropped = chat_prompt(TOK, "Be brief.", history, max_length=48)
    assert dropped > 0 and prompt.startswith("Be brief.\n")
    assert prompt.endswith(history[-1]) and history[0] not in prompt
    assert len(TOK.encode(prompt)) + 1 <= 48
    assert chat_prompt(TOK, "Be brief.", history[:2], 512) == (
        "Be brief.\n" + "\n".join(history[:2]),
        0,
    )

    prompts = []
    monkeypatch.setattr("builtins.input", typed(["hello there", "what is 2 + 3?"]))
    monkeypatch.setattr(use, "answer", lambda m, t, p, d, n, *s: prompts.append(p) or "ok")
    assert main(["chat", "--checkpoint", checkpoint, "--system", "Answer in French."]) == 0
    assert prompts == [
        "Answer in French.\nUser: hello there",
        "Answer in French.\nUser: hello there\nAssistant: ok\nUser: what is 2 + 3?",
    ]


def test_the_streamed_text_is_the_answer_byte_for_byte():
    """Whatever pieces arrive (bytes of a multi-byte letter, capitals spelled one by one, new
    lines), what TextStream printed, once finished, is exactly the decoded answer."""
    import random

    texts = [
        "Le Château d'ÉTÉ coûte 12,50 € — naïve façade!",
        "HELLO WORLD and NASA's Zoë\nsecond line  with  spaces",
        "東京 and emoji 🙂 then ASCII",
    ]
    rng = random.Random(0)
    rows = [TOK.encode(t) for t in texts]
    rows += [[rng.randrange(TOK.vocab_size) for _ in range(40)] for _ in range(30)]
    for ids in rows:
        printed = []
        stream = use.TextStream(TOK, printed.append)
        for token in [*ids, TOK.eos_id]:
            stream(torch.tensor([token]))
        final = TOK.decode(ids)
        streamed_before_end = "".join(printed)
        stream.finish(final)
        assert "".join(printed) == final
        assert final.startswith(streamed_before_end)
    assert "".join(printed[:-1]) and len(printed) > 2  # it did print before the end


def test_generate_streams_the_answer_and_its_speed(checkpoint, capsys):
    assert main(["generate", "--checkpoint", checkpoint, "--max-new-tokens", "12", "Hi"]) == 0
    streamed = capsys.readouterr()
    model, tok, _ = load_checkpoint(checkpoint, "cpu", "auto")
    final = use.answer(model, tok, "Hi", {"max_new_tokens": 12}, 64)
    assert streamed.out == final + "\n"
    assert re.search(r"\(\d+ tokens in [\d.]+ s, [\d.]+ tokens/s\)", streamed.err)
    beams = ["generate", "--checkpoint", checkpoint, "--max-new-tokens", "12", "--num-beams", "2"]
    assert main([*beams, "Hi"]) == 0  # printed when done
    assert capsys.readouterr().out.endswith("\n")


def test_ctrl_c_stops_an_answer_in_chat_not_the_conversation(checkpoint, capsys, monkeypatch):
    prompts = []

    def interrupted_once(m, t, p, d, n, stream=None):
        prompts.append(p)
        if len(prompts) == 1:
            raise KeyboardInterrupt
        return "fine"

    monkeypatch.setattr("builtins.input", typed(["first question", "second question"]))
    monkeypatch.setattr(use, "answer", interrupted_once)
    assert main(["chat", "--checkpoint", checkpoint]) == 0
    out = capsys.readouterr().out
    assert "(stopped)" in out and "fine" not in out.split("(stopped)")[0]
    assert len(prompts) == 2 and "first question" not in prompts[1]


def test_generated_code_runs_only_for_the_shipped_suite_or_with_run_code(
    checkpoint, tmp_path, capsys
):
    code_lines = [
        line
        for line in (ROOT / "data" / "test.jsonl").read_text().splitlines()
        if "entry_point" in line
    ][:3]
    mine = tmp_path / "mine.jsonl"
    mine.write_text("\n".join(code_lines) + "\n")
    assert is_shipped(ROOT / "data" / "test.jsonl") and not is_shipped(mine)
    base = [
        "eval",
        "--checkpoint",
        checkpoint,
        "--data",
        str(mine),
        "--max-new-tokens",
        "4",
        "--json",
    ]
    assert main(base) == 0
    captured = capsys.readouterr()
    assert "3 code answers were not run" in captured.err and "--run-code" in captured.err
    tasks = json.loads(captured.out)["test"]["tasks"]
    assert all("code_pass" not in row for row in tasks.values())
    assert main([*base, "--run-code"]) == 0
    captured = capsys.readouterr()
    assert (
        "ran 3 generated programs" in captured.err and "CPU-time and memory limits" in captured.err
    )
    assert all("code_pass" in row for row in json.loads(captured.out)["test"]["tasks"].values())
    assert main([*base, "--max-source-length", "8"]) == 0
    assert "3 of 3 prompts are longer than 8 tokens and were cut" in capsys.readouterr().err


def test_code_checking_runs_under_cpu_and_memory_limits():
    from minitune.data.codecheck import MEMORY_BYTES, check_programs

    limits = "import resource\ndef f():\n    return list(resource.getrlimit(resource.RLIMIT_AS))\n"
    hog = "def g():\n    x = bytearray(3 * 1024**3)\n    return 1\n"
    a, b = check_programs(
        [
            {"code": limits, "entry_point": "f", "tests": [[[], [MEMORY_BYTES, MEMORY_BYTES]]]},
            {"code": hog, "entry_point": "g", "tests": [[[], 1]]},
        ]
    )
    assert a.passed and not b.passed and "MemoryError" in b.error
