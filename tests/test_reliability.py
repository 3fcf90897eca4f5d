"""Reliability: crashes, interrupts, corrupted files, mismatches and bad values never lose work
and never end in a traceback for a user's mistake."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_train import read_metrics, small_data, tiny_run

from minitune.config import TrainConfig
from minitune.data.formats import DataError, read_records
from minitune.model import Seq2SeqTransformer
from minitune.run.checkpoint import (
    CheckpointError,
    load_model,
    load_safetensors,
    load_trainer_state,
    save_checkpoint,
)
from minitune.run.errors import DivergenceError, RunError
from minitune.run.settings import load_run_config
from minitune.tokenizer import train_tokenizer
from minitune.train import train

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tokenizer" / "minitune.model"


def _cli(*args, cwd=ROOT, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "minitune", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _train_args(tmp_path: Path, out: Path, steps: int) -> list[str]:
    return [
        "train",
        "--config",
        "configs/tiny.toml",
        "--data",
        small_data(tmp_path, 120),
        "--out",
        str(out),
        "--max-steps",
        str(steps),
        "--no-progress",
        "--set",
        "train.save_every=3",
        "--set",
        "train.log_every=1",
        "--set",
        "train.eval_every=5",
        "--set",
        f"train.valid_data='{small_data(tmp_path, 20)}'",
        "--set",
        "model.dropout=0.1",
        "--set",
        "train.batch_size=4",
    ]


def _losses(folder: Path) -> list:
    return [(r["step"], r.get("loss"), r.get("valid_loss")) for r in read_metrics(folder)]


def test_a_run_killed_at_a_random_step_resumes_to_the_same_weights_and_losses(tmp_path):
    steps = 40
    straight = _cli(*_train_args(tmp_path, tmp_path / "straight", steps))
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    # a seeded choice, printed on failure; MINITUNE_TEST_SEED=n replays (or explores) another
    seed = int(os.environ.get("MINITUNE_TEST_SEED", "0"))
    kill_at = random.Random(seed).randint(4, 30)
    where = f"killed at step {kill_at} (MINITUNE_TEST_SEED={seed})"
    killed = _cli(*_train_args(tmp_path, tmp_path / "killed", steps))
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and killed.poll() is None:
        if metrics.exists() and any(
            json.loads(line)["step"] >= kill_at
            for line in metrics.read_text().splitlines()[-3:]
            if line.endswith("}")
        ):
            break
        time.sleep(0.002)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL, f"the run ended before: {where}"

    resumed = _cli(*_train_args(tmp_path, tmp_path / "killed", steps), "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, f"{where}: {err}"
    assert "resumed from" in out + err
    assert _losses(tmp_path / "killed") == _losses(tmp_path / "straight"), where
    a = load_safetensors(tmp_path / "straight" / "last" / "model.safetensors")
    b = load_safetensors(tmp_path / "killed" / "last" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), where


def test_ctrl_c_saves_last_and_exits_130_without_a_traceback(tmp_path):
    run = _cli(*_train_args(tmp_path, tmp_path / "run", 100000))
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text()) > 200):
        time.sleep(0.01)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    info = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
    assert info["step"] > 0
    # "after step N: saved ..." or, just after a periodic save (every 3 steps here), "at step N:
    # nothing new to save"
    assert re.search(rf"stopped by SIGINT (after|at) step {info['step']}: ", out), out[-500:]
    load_trainer_state(tmp_path / "run" / "last")  # complete and verified


def test_nan_loss_stops_before_the_update_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import minitune.train as training

    real = training.token_nll_sum
    calls = {"n": 0}

    def poisoned(*args, **kwargs):  # the 8th step's loss (one micro-batch, no validation)
        loss_sum, n = real(*args, **kwargs)
        calls["n"] += 1
        return (loss_sum * float("nan") if calls["n"] == 8 else loss_sum), n

    monkeypatch.setattr(training, "token_nll_sum", poisoned)
    model_cfg, cfg = tiny_run(
        tmp_path, max_steps=20, save_every=5, valid_data=None, valid_fraction=0
    )
    with pytest.raises(
        DivergenceError,
        match=r"loss nan at step 8: stopped before updating the weights; .*last holds step 5",
    ):
        train(model_cfg, cfg, progress=False, log=lambda *a: None)
    model, info = load_model(tmp_path / "run" / "last")
    assert info["step"] == 5
    assert all(torch.isfinite(p).all() for p in model.parameters())

    calls["n"] = 0
    model_cfg, cfg = tiny_run(
        tmp_path, max_steps=12, valid_data=None, valid_fraction=0, on_nonfinite="skip"
    )
    summary = train(model_cfg, cfg, progress=False, log=lambda *a: None)
    assert summary["step"] == 12 and summary["skipped"] == 1
    assert any(r.get("skipped_nonfinite") == 1 for r in read_metrics(tmp_path / "run"))


def test_nan_through_the_command_line_is_a_message_with_status_1(tmp_path):
    run = _cli(
        *_train_args(tmp_path, tmp_path / "run", 5),
        "--set",
        "train.lr=1e30",
        "--set",
        "train.warmup_steps=1",
        "--set",
        "train.clip_grad=0.0",
    )
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1, err
    assert "stopped before updating the weights" in err and "Traceback" not in err


def _saved(tmp_path: Path) -> Path:
    model = Seq2SeqTransformer(load_run_config(ROOT / "configs" / "tiny.toml")[0])
    save_checkpoint(tmp_path / "ckpt", model, {"step": 3}, TOKENIZER, {"step": 3, "x": [1, 2]})
    return tmp_path / "ckpt"


@pytest.mark.parametrize("name", ["model.safetensors", "trainer.pt", "tokenizer.model"])
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_truncated_or_corrupted_files_are_named(tmp_path, name, damage):
    folder = _saved(tmp_path)
    path = folder / name
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    expected = "truncated" if damage == "truncate" else "corrupted"
    with pytest.raises(CheckpointError, match=f"{name}: {expected}"):
        load_model(folder) if name != "trainer.pt" else load_trainer_state(folder)


def test_a_crash_between_the_two_renames_is_recovered(tmp_path):
    folder = _saved(tmp_path)
    folder.rename(tmp_path / "ckpt.old")  # the state after the first rename of a swap...
    shutil.copytree(tmp_path / "ckpt.old", tmp_path / "ckpt.tmp")  # ...with the new one complete
    _, info = load_model(folder)
    assert info["step"] == 3 and folder.is_dir() and not (tmp_path / "ckpt.tmp").exists()


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    import minitune.run.checkpoint as ckpt

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_safetensors", crash)
    model = Seq2SeqTransformer(load_run_config(ROOT / "configs" / "tiny.toml")[0])
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(folder, model, {"step": 4}, TOKENIZER)
    assert load_model(folder)[1]["step"] == 3


def test_compile_and_ddp_prefixes_are_handled(tmp_path):
    folder = _saved(tmp_path)
    state = load_safetensors(folder / "model.safetensors")
    prefixed = {f"module._orig_mod.{k}": v for k, v in state.items()}
    from minitune.run.checkpoint import save_safetensors

    save_safetensors(prefixed, folder / "model.safetensors")
    info = json.loads((folder / "config.json").read_text())
    del info["files"]  # as written by another tool
    (folder / "config.json").write_text(json.dumps(info))
    model, _ = load_model(folder)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    compiled = torch.nn.Module()
    compiled._orig_mod = model  # what torch.compile's wrapper looks like to state_dict()
    compiled.config, compiled.lora = model.config, None
    save_checkpoint(tmp_path / "again", compiled, {"step": 0}, TOKENIZER)
    assert set(load_safetensors(tmp_path / "again" / "model.safetensors")) == set(state)


def _other_tokenizer(tmp_path: Path) -> Path:
    text = tmp_path / "text.txt"
    text.write_text((ROOT / "data" / "pretrain.txt").read_text(encoding="utf-8")[:60000])
    return Path(train_tokenizer([text], tmp_path / "other", vocab_size=500))


def test_a_different_tokenizer_is_refused_on_resume_and_on_init(tmp_path):
    model_cfg, cfg = tiny_run(tmp_path, max_steps=3, valid_data=None, valid_fraction=0)
    train(model_cfg, cfg, progress=False, log=lambda *a: None)
    other = str(_other_tokenizer(tmp_path))
    model_cfg, cfg = tiny_run(
        tmp_path, max_steps=6, valid_data=None, valid_fraction=0, tokenizer=other
    )
    with pytest.raises(RunError, match="trained with another tokenizer"):
        train(model_cfg, cfg, resume=True, progress=False, log=lambda *a: None)
    model_cfg, cfg = tiny_run(
        tmp_path,
        max_steps=3,
        valid_data=None,
        valid_fraction=0,
        tokenizer=other,
        init=str(tmp_path / "run" / "last"),
        out=str(tmp_path / "b"),
    )
    with pytest.raises(RunError, match=r"is not the tokenizer .* was trained with"):
        train(model_cfg, cfg, progress=False, log=lambda *a: None)
    model_cfg, cfg = tiny_run(tmp_path, max_steps=6, valid_data=None, valid_fraction=0)
    model_cfg.d_ff = 96
    with pytest.raises(RunError, match="other settings \\(d_ff: 64 -> 96\\)"):
        train(model_cfg, cfg, resume=True, progress=False, log=lambda *a: None)


def test_user_mistakes_on_the_command_line_are_one_line_and_status_2(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"instruction": "a", "output": "b"}\n{"instruction": "a"\n{"instruction": 3, "output": "x"}\n'
    )
    cases = [
        (["--out", str(blocker / "run")], "cannot write to the output folder"),
        (["--set", "train.optimizer=adamm"], "did you mean 'adamw'?"),
        (["--set", "train.lr='fast'"], "TrainConfig.lr must be a number, got 'fast' (str)"),
        (["--set", "train.lrate=1"], "did you mean 'lr'?"),
        (["--set", "model.position=rotory"], "did you mean 'rotary'?"),
        (["--data", str(bad)], "bad.jsonl:2: malformed JSON"),
        (["--set", "train.batch_size=-3"], "TrainConfig.batch_size must be >= 1, got -3"),
    ]
    for extra, message in cases:
        run = _cli(
            "train",
            "--config",
            "configs/tiny.toml",
            "--max-steps",
            "2",
            "--no-progress",
            "--out",
            str(tmp_path / "ok"),
            *extra,
        )
        _, err = run.communicate(timeout=300)
        assert run.returncode == 2, (extra, err)
        assert message in err and "Traceback" not in err, (extra, err)
    _, err = _cli("train", "--config", "configs/tiny.toml", "--data", str(bad)).communicate()
    assert 'bad.jsonl:3: field "instruction" must be a string' in err  # all problems at once


def test_a_zero_or_negative_budget_is_refused_in_one_line(tmp_path, capsys):
    # the command line: exit status 2 and one line naming the field, no traceback, no step run
    run = _cli(
        "train",
        "--config",
        "configs/tiny.toml",
        "--max-minutes",
        "-1",
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
    )
    _, err = run.communicate(timeout=300)
    assert run.returncode == 2, err
    assert err.strip().splitlines() == [
        "minitune: error: TrainConfig.max_minutes must be > 0, got -1.0"
    ]
    assert not (tmp_path / "run" / "last").exists()
    from minitune.cli import main

    cases = [
        (["--max-minutes", "0"], "TrainConfig.max_minutes must be > 0"),
        (["--max-steps", "0"], "TrainConfig.max_steps must be >= 1, got 0"),
        (["--max-steps", "-5"], "TrainConfig.max_steps must be >= 1, got -5"),
        (["--set", "train.batch_size=0"], "TrainConfig.batch_size must be >= 1"),
        (["--set", "train.grad_accum=-1"], "TrainConfig.grad_accum must be >= 1"),
        (["--set", "train.threads=-2"], "TrainConfig.threads must be >= 1"),
        (["--set", "train.warmup_steps=-1"], "TrainConfig.warmup_steps must be >= 0, got -1"),
    ]
    for extra, message in cases:
        code = main(
            [
                "train",
                "--config",
                "configs/tiny.toml",
                "--no-progress",
                "--out",
                str(tmp_path / "run"),
                *extra,
            ]
        )
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (extra, err)
    for field, value in [("max_minutes", 0.0), ("max_minutes", -3), ("max_steps", 0)]:
        with pytest.raises(ValueError, match=f"TrainConfig.{field} must be"):
            TrainConfig(**{field: value})
    assert TrainConfig(max_minutes=None).max_minutes is None  # unset: no time limit


def test_truncation_is_counted_and_reported(tmp_path):
    lines = []
    model_cfg, cfg = tiny_run(
        tmp_path, max_steps=1, valid_data=None, valid_fraction=0, max_source_length=8
    )
    train(model_cfg, cfg, progress=False, log=lines.append)
    report = next(line for line in lines if line.startswith("train data:"))
    assert "prompts and" in report and "truncated to the maximum length" in report


# ---- fuzzing: arbitrary input gives a result or the documented error, never a crash ----------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "instruction",
                    "input",
                    "output",
                    "context",
                    "response",
                    "messages",
                    "role",
                    "content",
                    "task",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, max_size=5), st.sampled_from(["jsonl", "json"]))
def test_any_json_gives_records_or_a_data_error(tmp_path_factory, values, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"data.{suffix}"
    if suffix == "jsonl":
        path.write_text("\n".join(json.dumps(v) for v in values), encoding="utf-8")
    else:
        path.write_text(json.dumps(values), encoding="utf-8")
    try:
        records = read_records(path)
    except DataError as err:
        assert str(path) in str(err)
        return
    assert all(isinstance(r.instruction, str) and isinstance(r.output, str) for r in records)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([f.name for f in TrainConfig.__dataclass_fields__.values()]),
        json_values,
        max_size=4,
    )
)
def test_any_config_values_give_a_config_or_a_value_error(values):
    try:
        TrainConfig(**values)
    except ValueError as err:
        assert "TrainConfig" in str(err)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_as_a_safetensors_file_give_tensors_or_a_checkpoint_error(
    tmp_path_factory, data, with_header
):
    path = tmp_path_factory.mktemp("st") / "x.safetensors"
    if with_header:  # a plausible length prefix, so the JSON parser is reached too
        data = len(data).to_bytes(8, "little") + data
    path.write_bytes(data)
    try:
        tensors = load_safetensors(path)
    except CheckpointError as err:
        assert str(path) in str(err)
        return
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())


def test_trainer_state_with_code_in_it_is_refused(tmp_path):
    folder = _saved(tmp_path)
    torch.save({"step": 1, "evil": os.system}, folder / "trainer.pt")  # a pickled function
    info = json.loads((folder / "config.json").read_text())
    del info["files"]  # skip the checksum, to reach the unpickler
    (folder / "config.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_trainer_state(folder)
