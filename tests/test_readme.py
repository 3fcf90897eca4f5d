"""The README's commands and example are what CI and users run: keep them true."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command():
    commands = [block.strip() for block in code_blocks("bash")]
    assert 'pip install -e ".[dev,parity]" && pytest' in commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -e ".[dev,parity]" && pytest' in ci.splitlines()


def test_ci_turns_a_missing_extra_into_an_error_not_a_skip(monkeypatch):
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    test_command = lines.index('pip install -e ".[dev,parity]" && pytest')
    assert lines.index("export MINITUNE_REQUIRE_EXTRAS=1") < test_command
    from conftest import import_or_skip

    monkeypatch.setenv("MINITUNE_REQUIRE_EXTRAS", "1")
    with pytest.raises(ModuleNotFoundError):
        import_or_skip("minitune_no_such_module")
    monkeypatch.delenv("MINITUNE_REQUIRE_EXTRAS")
    with pytest.raises(pytest.skip.Exception):
        import_or_skip("minitune_no_such_module")


def test_the_reference_library_is_pinned_to_a_major_version():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pin = re.search(r'parity = \["transformers>=(\d+),<(\d+)"\]', pyproject)
    assert pin and int(pin[2]) == int(pin[1]) + 1
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("transformers")
    except PackageNotFoundError:
        return  # nothing installed to compare with (the parity tests skip, or fail under CI)
    assert int(installed.split(".")[0]) == int(pin[1])


def test_main_job_command_names_the_pipeline_and_its_config_exists():
    assert code_blocks("bash")[0].strip() == "pip install -e . && minitune pipeline"
    from minitune.cli import build_parser
    from minitune.cli.training import config_name
    from minitune.run.paths import config_file

    args = build_parser().parse_args(["pipeline"])
    assert config_file(config_name(args, "instruct")) == ROOT / "configs" / "laptop.toml"


def sub_commands(parser) -> dict:
    """A parser's sub-command parsers by name ({} for a command that has none)."""
    import argparse

    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices if actions else {}


def test_the_command_list_names_every_sub_command_and_no_other():
    """The README's command list (the first text block under "The command line") names each
    sub-command the parser has, nested ones (`minitune data fresh`) included, and no other."""
    from minitune.cli import build_parser

    def leaves(parser, path=()):
        if not sub_commands(parser):
            yield " ".join(path)
        for name, sub in sub_commands(parser).items():
            yield from leaves(sub, (*path, name))

    section = README.split("## The command line", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```text\n(.*?)```", section, flags=re.DOTALL).group(1)
    listed = []
    for line in block.splitlines():
        if not line.startswith("minitune "):
            continue  # a continuation line: more flags, or what the command does
        path, parser = [], build_parser()
        for word in line.split()[1:]:  # "minitune data fresh --out FILE" -> "data fresh"
            if word not in sub_commands(parser):
                break
            path.append(word)
            parser = sub_commands(parser)[word]
        listed.append(" ".join(path))
    assert sorted(listed) == sorted(leaves(build_parser()))


def test_python_example_runs():
    example = code_blocks("python")[0]
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["logits"].shape == (2, 3, 128)
    assert namespace["loss"].item() > 0
    assert namespace["new_tokens"].shape[0] == 2


@pytest.mark.slow  # ~40 s of subprocesses; .ci/run runs the slow tests too
def test_cli_presets_and_errors():
    run = [sys.executable, "-m", "minitune"]
    out = subprocess.run([*run, "presets"], capture_output=True, text=True, check=True).stdout
    assert "laptop" in out and "t5-small" in out and "M parameters" in out
    bad = subprocess.run([*run, "presets", "huge"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "unknown preset 'huge'" in bad.stderr and "Traceback" not in bad.stderr
    subcommands = [
        ["pipeline"],
        ["train"],
        ["pretrain"],
        ["eval"],
        ["generate"],
        ["chat"],
        ["presets"],
        ["data", "generate"],
        ["tokenizer", "train"],
    ]
    for sub in subcommands:
        help_text = subprocess.run([*run, *sub, "--help"], capture_output=True, text=True).stdout
        assert "examples:" in help_text, sub


def test_cli_reports_bad_data_without_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a"}\n', encoding="utf-8")
    run = [sys.executable, "-m", "minitune", "tokenizer", "train", "--data", str(bad)]
    done = subprocess.run([*run, "--out", str(tmp_path / "t")], capture_output=True, text=True)
    assert done.returncode == 2
    assert 'bad.jsonl:1: missing field "output"' in done.stderr and "Traceback" not in done.stderr
