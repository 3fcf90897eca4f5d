"""`minitune chat` driven through stdin, as a user types: two turns that share a history,
/reset, a turn after it, the end of input; and bad flags."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minitune import ModelConfig, Seq2SeqTransformer
from minitune.cli.use import answer
from minitune.data.formats import CHAT_INSTRUCTION
from minitune.data.templates import format_prompt
from minitune.run.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BANNER = "Chat with the model; an empty line or Ctrl-D ends. /reset forgets the conversation.\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random tiny model: its answers depend on every token of the prompt."""
    torch.manual_seed(0)
    model = Seq2SeqTransformer(ModelConfig.preset("tiny", vocab_size=3000))
    folder = tmp_path_factory.mktemp("chat") / "ckpt"
    save_checkpoint(folder, model, {"step": 0}, ROOT / "tokenizer" / "minitune.model")
    return folder


def _chat(checkpoint: Path, stdin: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minitune", "chat", "--checkpoint", str(checkpoint), *flags],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_a_scripted_session_keeps_the_history_until_reset(checkpoint):
    done = _chat(
        checkpoint,
        "Hello there\nWhat did I say?\n/reset\nWhat did I say?\n",
        "--max-new-tokens",
        "8",
    )
    assert done.returncode == 0, done.stderr
    model, tok, _ = load_checkpoint(str(checkpoint), "cpu")
    decoding = {"max_new_tokens": 8, "num_beams": 1}

    def reply(*history: str) -> str:
        return answer(model, tok, format_prompt(CHAT_INSTRUCTION, "\n".join(history)), decoding)

    first = reply("User: Hello there")
    second = reply("User: Hello there", f"Assistant: {first}", "User: What did I say?")
    after_reset = reply("User: What did I say?")
    assert second != after_reset  # the history changes the answer: the test can tell
    expected = (
        BANNER
        + f"you> model> {first}\n"
        + f"you> model> {second}\n"
        + "you> "
        + f"you> model> {after_reset}\n"
        + "you> \n"
    )
    assert done.stdout == expected


def test_bad_flags_are_one_line_and_status_2(checkpoint):
    bad_value = _chat(checkpoint, "hi\n", "--top-p", "1.5")
    assert bad_value.returncode == 2
    assert bad_value.stderr == "minitune: error: --top-p must be in (0, 1], got 1.5\n"
    unknown = _chat(checkpoint, "hi\n", "--beams", "2")
    assert unknown.returncode == 2 and "unrecognized arguments: --beams 2" in unknown.stderr
    assert "Traceback" not in unknown.stderr
