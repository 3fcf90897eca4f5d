"""The workflow after the demo: any folder, run folders, own data, resume, the pipeline."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import import_or_skip, interrupt_at
from test_train import small_data

import minitune.train as training
from minitune.cli import main
from minitune.data.stream import HOLDOUT_MIN, hold_out
from minitune.run.metrics_log import plot_losses, steps_by_deadline
from minitune.run.paths import config_file, find_shipped
from minitune.run.settings import load_run_config, tomllib

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd):
    """`minitune ARGS` in another process, from the folder `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "minitune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tiny_args(tmp_path: Path, out: Path, steps: int = 4) -> list[str]:
    return [
        "--config",
        "tiny",
        "--data",
        small_data(tmp_path, 60),
        "--out",
        str(out),
        "--max-steps",
        str(steps),
        "--no-progress",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.eval_every=2",
        "--set",
        "train.save_every=2",
        "--set",
        "train.log_every=1",
        "--valid-data",
        small_data(tmp_path, 10),
    ]


# ---- any folder ---------------------------------------------------------------------------------


def test_shipped_files_are_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_file("tiny") == config_file("configs/tiny.toml") == ROOT / "configs" / "tiny.toml"
    assert find_shipped("data/valid.jsonl") == ROOT / "data" / "valid.jsonl"
    assert find_shipped("mine.jsonl") == Path("mine.jsonl")  # not shipped: as given
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "valid.jsonl").write_text("{}")
    assert find_shipped("data/valid.jsonl") == Path("data/valid.jsonl")  # the user's own wins
    _, cfg = load_run_config("configs/laptop.toml")
    assert cfg.data == [str(ROOT / "data" / "train.jsonl")]
    with pytest.raises(
        ValueError, match=r"^nope\.toml: no such config file .*shipped: base, finetune, laptop"
    ):
        load_run_config("nope.toml")


def test_train_runs_from_another_folder_and_a_missing_config_is_one_line(tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    done = cli(
        "train",
        "--config",
        "configs/tiny.toml",
        "--max-steps",
        "2",
        "--out",
        "run",
        "--no-progress",
        "--set",
        "train.eval_every=2",
        cwd=work,
    )
    assert done.returncode == 0, done.stderr
    assert (work / "run" / "best" / "model.safetensors").is_file()
    assert (work / "run" / "loss.png").stat().st_size > 1000  # matplotlib is a dependency
    missing = cli("train", "--config", "configs/nope.toml", cwd=work)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1 and "no such config file" in missing.stderr


def test_matplotlib_is_a_runtime_dependency_and_loss_png_has_steps_and_minutes(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("matplotlib") for d in project["dependencies"])
    rows = [
        {"step": 10, "loss": 3.0, "elapsed_s": 6.0},
        {"step": 20, "loss": 2.0, "elapsed_s": 12.0},
        {"step": 20, "valid_loss": 2.5, "elapsed_s": 13.0},
    ]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot_losses(metrics, tmp_path / "loss.png")
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(tmp_path / "loss.png").shape
    assert width > 1.8 * height  # two panels side by side: steps and minutes


@pytest.mark.slow
def test_a_built_wheel_carries_the_shipped_files(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=600,
    )
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    for shipped in (
        "configs/laptop.toml",
        "configs/finetune.toml",
        "tokenizer/minitune.model",
        "data/train.jsonl",
        "data/valid.jsonl",
    ):
        assert f"minitune/shipped/{shipped}" in names


# ---- run folders ----------------------------------------------------------------------------------


def test_a_non_empty_out_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny_args(tmp_path, out, steps=2)]) == 0
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    assert main(["train", *tiny_args(tmp_path, out, steps=2)]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--overwrite" in err and "--resume" in err
    (out / "metrics.jsonl").write_text('{"step": 99, "loss": 1.0}\n')
    assert main(["train", *tiny_args(tmp_path, out, steps=2), "--overwrite"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert 99 not in steps and max(steps) == 2
    assert (out / "notes.txt").read_text() == "mine"  # only a run's own files are removed


def test_resume_uses_the_saved_config_and_refuses_changes_unless_forced(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    interrupt_at(monkeypatch, 2)  # Ctrl-C during step 2: last/ holds step 2
    assert main(["train", *tiny_args(tmp_path, out, steps=4)]) == 130
    capsys.readouterr()
    # no --config, no --data: everything comes from run/last/config.json (the tiny preset)
    interrupt_at(monkeypatch, 1)  # and again after one more step, with a safe change
    resume = ["train", "--out", str(out), "--resume", "--no-progress"]
    assert main([*resume, "--set", "train.log_every=2"]) == 130
    printed = capsys.readouterr().out
    assert "from its saved config" in printed and "resumed from" in printed
    assert "changed: train.log_every: 1 -> 2" in printed
    assert json.loads((out / "last" / "config.json").read_text())["model"]["d_model"] == 32
    # a change that breaks exactness is refused, naming it, unless --force
    assert main(["train", "--out", str(out), "--resume", "--set", "train.lr=0.1"]) == 2
    assert "train.lr: 0.003 -> 0.1" in capsys.readouterr().err
    # the schedule decays over max_minutes too (from the saved elapsed time): not safe either
    assert main(["train", "--out", str(out), "--resume", "--max-minutes", "9"]) == 2
    err = capsys.readouterr().err
    assert "train.max_minutes: None -> 9" in err and "--force" in err
    assert main(["train", "--out", str(out), "--resume", "--max-steps", "9"]) == 2
    assert "train.max_steps: 4 -> 9" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--out",
                str(out),
                "--resume",
                "--no-progress",
                "--max-minutes",
                "9",
                "--set",
                "train.lr=0.1",
                "--force",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "changed: train.lr: 0.003 -> 0.1; train.max_minutes: None -> 9" in printed
    info = json.loads((out / "last" / "config.json").read_text())
    assert info["step"] == 4 and info["train"]["lr"] == 0.1
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_ctrl_c_prints_the_resume_command_and_it_continues(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    interrupt_at(monkeypatch, 3)
    assert main(["train", *tiny_args(tmp_path, out, steps=4)]) == 130
    printed = capsys.readouterr().out
    stopped, command = printed.strip().splitlines()[-1].split("; to continue: ")
    assert stopped.startswith("stopped by SIGINT after step 3: saved ")
    assert command == f"minitune train --out {out} --resume"
    monkeypatch.undo()
    assert main([*command.split()[1:], "--no-progress"]) == 0
    assert json.loads((out / "last" / "config.json").read_text())["step"] == 4


def test_the_pipeline_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "pipe"
    args = [
        "pipeline",
        "--config",
        "tiny",
        "--max-steps",
        "4",
        "--pretrain-steps",
        "2",
        "--limit",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "train.batch_size=4",
        "--from-scratch",
    ]
    interrupt_at(monkeypatch, 3)  # two pretraining steps, then the first tuning step
    assert main(args) == 130
    command = capsys.readouterr().out.strip().splitlines()[-1].split("; to continue: ")[-1]
    assert command == "minitune " + " ".join(args) + " --resume"
    # each phase's record and page: the pretraining's finished, the tuning's stopped early
    (pretraining,) = json.loads((out / "pretrain" / "run.json").read_text())["sessions"]
    assert pretraining["phase"] == "the pretraining phase" and pretraining["end"]["step"] == 2
    seen = json.loads((out / "pretrain" / "attention.json").read_text())  # a corrupted span
    assert "<extra_id_0>" in seen["prompt"] and (out / "pretrain" / "attention.png").is_file()
    (tuning,) = json.loads((out / "run.json").read_text())["sessions"]
    assert tuning["end"]["stop_reason"] == "signal" and tuning["resume_command"] == command
    assert "Stopped early by SIGINT</b> at step 1" in (out / "report.html").read_text()
    monkeypatch.undo()
    assert main(command.split()[1:]) == 0
    printed = capsys.readouterr().out
    assert "== pretraining" not in printed and f"resumed from {out / 'last'} at step 1" in printed
    assert json.loads((out / "report.json").read_text())["train"]["step"] == 4
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert [s["end"]["stop_reason"] for s in sessions] == ["signal", "max_steps"]
    page = (out / "report.html").read_text()
    assert "Stopped early" not in page and "href='pretrain/report.html'" in page
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 5 * 2  # --limit 2
    assert main(args) == 2  # the folder holds a run now


def test_the_pipeline_tunes_a_base_and_says_which(tmp_path, capsys):
    """With --init (or --base: the shipped checkpoints/base) the pipeline tunes a pretrained
    base with the laptop recipe; without either it starts from random weights."""
    base = tmp_path / "base"
    assert (
        main(
            [
                "pretrain",
                "--config",
                "tiny",
                "--max-steps",
                "2",
                "--out",
                str(base),
                "--no-progress",
            ]
        )
        == 0
    )
    out = tmp_path / "tuned"
    args = [
        "pipeline",
        "--config",
        "tiny",
        "--init",
        str(base / "best"),
        "--max-steps",
        "2",
        "--limit",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"== start: the pretrained base {base / 'best'}" in printed
    tuned = json.loads((out / "best" / "config.json").read_text())
    assert tuned["train"]["init"] == str((base / "best").resolve())
    assert tuned["model"] == json.loads((base / "best" / "config.json").read_text())["model"]
    # the base fixes the model: a model setting needs --from-scratch, which excludes --init
    assert main([*args[:-3], "--out", str(tmp_path / "x"), "--set", "model.dropout=0.1"]) == 2
    assert "drop --base/--init" in capsys.readouterr().err
    assert main([*args, "--base", "--overwrite"]) == 2
    assert "choose one" in capsys.readouterr().err
    assert main([*args, "--from-scratch", "--overwrite"]) == 2
    assert "choose one" in capsys.readouterr().err
    assert (
        main(["pipeline", "--init", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")]) == 2
    )
    assert "no checkpoint there" in capsys.readouterr().err


def test_the_shipped_base_loads_and_matches_its_tokenizer():
    """checkpoints/base is the trained base: its tokenizer is the shipped one byte for byte
    (tuning it with tokenizer/minitune.model reads the same pieces), its paths are relative to
    the project, and it fills spans of world documents it never read (another seed) far better
    than the same model freshly initialised."""

    import torch

    from minitune.config import TrainConfig
    from minitune.data.stream import span_examples
    from minitune.model import Seq2SeqTransformer
    from minitune.run.checkpoint import load_pretrained, read_config
    from minitune.suite.world import generate_world
    from minitune.tokenizer import Tokenizer
    from minitune.train import StepSetup, validation_loss

    base = ROOT / "checkpoints" / "base"
    shipped_tokenizer = (ROOT / "tokenizer" / "minitune.model").read_bytes()
    assert (base / "tokenizer.model").read_bytes() == shipped_tokenizer
    saved = read_config(base)
    assert saved["train"]["data"] == ["data/world.txt.gz"] and saved["train"]["objective"] == "span"
    model, tokenizer_file, _ = load_pretrained(base)
    tok = Tokenizer(tokenizer_file)
    assert model.config.vocab_size == tok.vocab_size
    documents = [tok.encode(d) for d in generate_world(1, 40)]
    run = TrainConfig(objective="span", max_source_length=128, max_target_length=64)
    examples = span_examples(documents, tok, run, epoch=0)
    trained = validation_loss(model, examples, 16, StepSetup("cpu", tok.pad_id))
    torch.manual_seed(0)
    fresh = Seq2SeqTransformer(model.config).eval()
    untrained = validation_loss(fresh, examples, 16, StepSetup("cpu", tok.pad_id))
    # measured: 2.89 against 6.47 on these 40 documents (2.51 on 200, 1.705 on 1,000)
    assert trained < 3.5 and untrained > trained + 3, (trained, untrained)


# ---- own data ---------------------------------------------------------------------------------------


def test_hold_out_is_a_seeded_disjoint_slice_with_a_minimum():
    records = list(range(1000))
    train_part, valid = hold_out(records, 0.05, seed=0)
    assert len(valid) == 50 and len(train_part) == 950 and set(train_part).isdisjoint(valid)
    assert hold_out(records, 0.05, seed=0) == (train_part, valid)
    assert hold_out(records, 0.05, seed=1)[1] != valid
    assert len(hold_out(records[:100], 0.05, seed=0)[1]) == HOLDOUT_MIN  # the minimum
    assert len(hold_out(records[:10], 0.05, seed=0)[1]) == 5  # never more than half


def test_own_data_is_validated_on_a_held_out_slice_unless_a_file_is_given(tmp_path, capsys):
    mine = small_data(tmp_path, 200)
    _, cfg = load_run_config("laptop")  # the shipped suite keeps its own valid split
    assert cfg.valid_data == str(ROOT / "data" / "valid.jsonl")
    own = tmp_path / "own.toml"  # a file that names data and no validation file: a held-out 5%
    own.write_text(f'[model]\npreset = "tiny"\nvocab_size = 3000\n[train]\ndata = ["{mine}"]\n')
    assert load_run_config(own)[1].valid_data is None
    assert load_run_config(own)[1].valid_fraction == 0.05
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                "tiny",
                "--data",
                mine,
                "--out",
                str(out),
                "--max-steps",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        f"validation: {HOLDOUT_MIN} of {len(Path(mine).read_text().splitlines())} training examples held out"
        in printed
    )
    assert "validation data: 32 examples" in printed
    vd = str(ROOT / "data" / "valid.jsonl")
    assert (
        main(["train", "--config", "tiny", "--data", mine, "--valid-data", vd, "--print-config"])
        == 0
    )
    shown = tomllib.loads(capsys.readouterr().out)
    assert shown["train"]["valid_data"] == vd  # valid_fraction applies only without a file


def test_the_run_log_says_where_each_setting_came_from(tmp_path, capsys):
    """The run config is logged once, first: each value not at its default with its source
    (file, --set, flag), and where the training and validation data come from."""
    mine = small_data(tmp_path, 80)
    assert (
        main(
            [
                "train",
                "--config",
                "tiny",
                "--max-steps",
                "1",
                "--out",
                str(tmp_path / "run"),
                "--no-progress",
                "--set",
                "train.lr=0.01",
                "--data",
                mine,
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("run config")
    for line in (
        "  model.preset = 'tiny' (configs/tiny.toml)",
        "  train.lr = 0.01 (--set train.lr=0.01)",
        "  train.max_steps = 1 (--max-steps)",
        "  train.batch_size = 8 (configs/tiny.toml)",
        f"training data: {mine}; validation: a held-out 5% of it (train.valid_fraction)",
    ):
        assert line in lines, line
    assert "  train.valid_data = None (--data)" not in lines  # at its default: not listed


def test_init_uses_the_finetune_config_and_refuses_model_settings(tmp_path, capsys):
    assert main(["train", "--init", str(tmp_path), "--print-config"]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    assert shown["train"]["lr"] == 3e-4 and "max_minutes" not in shown["train"]
    assert "model" not in shown  # the model is the checkpoint's
    assert (
        main(["train", "--init", str(tmp_path), "--set", "model.dropout=0.1", "--print-config"])
        == 2
    )
    err = capsys.readouterr().err
    assert "cannot apply to it: model.dropout" in err
    assert main(["train", "--init", str(tmp_path), "--config", "laptop", "--print-config"]) == 0
    assert "[model] table (preset, dropout) is not used" in capsys.readouterr().out


def test_pretrain_honours_the_config_files_data_and_out(tmp_path, capsys):
    text = tmp_path / "texts.txt"
    text.write_text("One document.\n\nAnother one.\n")
    own = tmp_path / "pre.toml"
    own.write_text(
        f'[model]\npreset = "tiny"\n[train]\ndata = ["{text}"]\nout = "{tmp_path / "p"}"\n'
    )
    assert main(["pretrain", "--config", str(own), "--print-config"]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    assert shown["train"]["data"] == [str(text)] and shown["train"]["out"] == str(tmp_path / "p")
    assert shown["train"]["objective"] == "span"
    assert main(["pretrain", "--print-config"]) == 0  # the shipped pretraining config
    shown = tomllib.loads(capsys.readouterr().out)
    assert shown["train"]["data"] == [str(ROOT / "data" / "pretrain.txt")]
    from minitune.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    assert "LoRA" not in commands["pretrain"].format_help()
    assert "LoRA" in commands["train"].format_help()


# ---- logging ----------------------------------------------------------------------------------------


class RecordingBar:
    """Stands in for tqdm: records the totals the loop gives it."""

    def __init__(self, total, **kwargs):
        self.totals = [total]
        RecordingBar.last = self

    def __setattr__(self, name, value):
        if name == "total":
            self.totals.append(value)
        object.__setattr__(self, name, value)

    def update(self, *args, **kwargs):
        pass

    set_postfix = refresh = close = update


def test_metrics_have_grad_norm_and_lr_and_the_bar_ends_at_the_deadline(tmp_path, monkeypatch):
    from test_train import read_metrics, tiny_run

    monkeypatch.setattr(training, "tqdm", RecordingBar)
    model_cfg, cfg = tiny_run(
        tmp_path, max_steps=10**6, max_minutes=0.04, log_every=1, valid_data=None, valid_fraction=0
    )
    summary = training.train(model_cfg, cfg, log=lambda *a: None)
    assert summary["stop_reason"] == "max_minutes"
    rows = read_metrics(tmp_path / "run")
    assert all(r["grad_norm"] > 0 and r["lr"] > 0 for r in rows)
    totals = RecordingBar.last.totals
    assert totals[0] == 10**6 and summary["step"] / 2 < totals[-1] < 10 * summary["step"] + 50


def test_steps_by_deadline():
    assert steps_by_deadline(100, 10_000, 50, 10.0, 30.0) == 250
    assert steps_by_deadline(100, 200, 50, 10.0, 30.0) == 200  # max_steps first
    assert steps_by_deadline(100, 10_000, 0, 0.0, 30.0) == 10_000  # no speed yet
    assert steps_by_deadline(100, 10_000, 50, 10.0, -5.0) == 100  # past the deadline


def test_messages_go_through_tqdm_write():
    import inspect

    from tqdm import tqdm

    assert inspect.signature(training.train).parameters["log"].default == tqdm.write


def test_tensorboard_gets_the_metrics(tmp_path):
    import_or_skip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from test_train import tiny_run

    model_cfg, cfg = tiny_run(
        tmp_path, max_steps=4, log_every=2, eval_every=2, report_to=["tensorboard"]
    )
    training.train(model_cfg, cfg, progress=False, log=lambda *a: None)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "lr", "grad_norm", "valid_loss"} <= tags
    assert [e.step for e in events.Scalars("loss")] == [2, 4]
    with pytest.raises(
        ValueError, match="report_to='tensorbord' is not one of: 'tensorboard'; did you mean"
    ):
        tiny_run(tmp_path, report_to=["tensorbord"])


def test_print_config_is_a_run_file_that_loads_to_the_same_config(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--config",
                "tiny",
                "--set",
                "train.lr=0.01",
                "--max-steps",
                "7",
                "--print-config",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    (tmp_path / "shown.toml").write_text(printed)
    shown_model, shown_train = load_run_config(tmp_path / "shown.toml")
    model_cfg, cfg = load_run_config("tiny", {"train": {"lr": 0.01, "max_steps": 7}})
    assert shown_model == model_cfg and shown_train == cfg


def test_the_docs_command_lines_parse():
    """Every concrete `minitune ...` line of the text blocks of the README and docs/ is a valid
    command line (synopsis lines, with placeholders such as DIR or [--flag], are left out)."""
    import re
    import shlex

    from minitune.cli import build_parser

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    lines = [
        line.strip()
        for page in pages
        for block in re.findall(r"```text\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
        for line in block.splitlines()
    ]
    commands = [
        re.split(r"\s{2,}", line)[0]
        for line in lines
        if line.startswith("minitune ") and not re.search(r"[\[|]|\.\.\.|\b[A-Z]{2,}\b", line)
    ]
    assert any(c.startswith("minitune download flan-t5-small") for c in commands)
    assert any(c.startswith("minitune export --checkpoint") for c in commands)
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])  # SystemExit(2) on an unknown flag
