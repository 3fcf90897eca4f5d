"""The walk a debugger's step-into takes from `minitune.cli.main` to `loss.backward()` under
`minitune train`: the files it enters, in order, and the call stack at the backward. Both are
listed in docs/layout.md; this test runs the command and compares, so the page cannot drift
from the code (and a change that adds a hop shows up here, in review)."""

import re
import sys
from pathlib import Path

import torch
from test_train import small_data

import minitune
from minitune.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(minitune.__file__).parent


class ReachedBackwardError(Exception):
    """Raised at the first loss.backward(): the walk ends there."""


def walk(argv: list[str], monkeypatch) -> tuple[list[str], list[str]]:
    """(files of minitune/ entered by a function call, in order of first entry; the call stack
    at the first backward as "file: function"). Calls made while a module is being imported
    (its top-level code) are not steps of the run and are left out."""
    entered, stack = [], []

    def backward(tensor, *args, **kwargs):
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.startswith(str(PACKAGE)):
                name = Path(frame.f_code.co_filename).relative_to(PACKAGE).as_posix()
                stack.insert(0, f"{name}: {frame.f_code.co_name}")
            frame = frame.f_back
        raise ReachedBackwardError

    def importing(frame) -> bool:  # a module's top-level code is running, below this call
        while frame is not None and frame.f_code is not walk.__code__:
            if frame.f_code.co_name == "<module>":
                return True
            frame = frame.f_back
        return False

    def tracer(frame, event, arg):
        filename = frame.f_code.co_filename
        if event == "call" and filename.startswith(str(PACKAGE)) and not importing(frame):
            name = Path(filename).relative_to(PACKAGE).as_posix()
            if name not in entered:
                entered.append(name)

    monkeypatch.setattr(torch.Tensor, "backward", backward)
    sys.settrace(tracer)
    try:
        main(argv)
    except ReachedBackwardError:
        pass
    finally:
        sys.settrace(None)
    return entered, stack


def documented(heading: str) -> list[str]:
    """The lines of the first code block under `heading` in docs/layout.md."""
    page = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    section = page.split(heading, 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_the_walk_from_main_to_backward_is_the_one_docs_layout_lists(tmp_path, monkeypatch):
    argv = ["train", "--config", "tiny", "--data", small_data(tmp_path, 30)]
    argv += ["--out", str(tmp_path / "run"), "--max-steps", "1", "--no-progress"]
    entered, stack = walk(argv, monkeypatch)
    assert stack[0] == "cli/__init__.py: main" and stack[-1].startswith("train.py: ")
    files = documented("### The files it enters")
    assert [line.split()[0] for line in files] == entered
    assert documented("### The call stack at `loss.backward()`") == stack


def test_the_pipeline_reaches_the_step_in_four_calls_too(tmp_path, monkeypatch):
    """`minitune pipeline` trains through the same train(): main -> cmd_pipeline -> train ->
    train_step (docs/layout.md says so below the walk)."""
    argv = ["pipeline", "--config", "tiny", "--data", small_data(tmp_path, 30)]
    argv += ["--out", str(tmp_path / "run"), "--max-steps", "1", "--no-progress"]
    _, stack = walk(argv, monkeypatch)
    assert stack == [
        "cli/__init__.py: main",
        "cli/pipeline.py: cmd_pipeline",
        "train.py: train",
        "train.py: train_step",
        "train.py: forward_backward",
    ]
