"""Preemption: a run told to stop by a signal (a scheduler's SIGTERM, a terminal's Ctrl-C,
SIGHUP, SLURM's SIGUSR1) stops between two steps, saves last/ at the step it reached, exits
with 128 + the signal's number, and --resume ends with the weights of an uninterrupted run.

Real signals, sent through the kernel: to a subprocess from outside (SIGTERM, SIGINT to a
script's background job, SIGHUP under nohup, two processes under torchrun in the slow tests:
signalled through torchrun's agent, and in one worker only), or by a process to itself at a
moment no outside sender can hit (before the first step, in the middle of a save, during the
pipeline's evaluation). Every run saves last/ only every 1000 steps (never, in these runs of at
most 150), so the step a resumed run starts from can only come from the save the signal made.
A run bounded by the clock (max_minutes) continues its schedule from the saved training time.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import interrupt_at
from test_train import read_metrics, tiny_run

import minitune.train as training
from minitune.cli import main
from minitune.optim import lr_factor
from minitune.run.checkpoint import load_model, load_safetensors, load_trainer_state, read_config
from minitune.run.distributed import Distributed
from minitune.run.stop_signals import StopSignals

ROOT = Path(__file__).resolve().parents[1]
STEPS = 80  # each run's length; a signal comes after step REACHED, well before the end
REACHED = 4
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread a process: steady on 2 shared cores
PACKED = ("--set", "train.packing=true")
# the one line of a stopped run, e.g. "stopped by SIGTERM after step 7: saved runs/x/last in
# 0.09 s; to continue: minitune train --out runs/x --resume"
STOPPED = re.compile(
    r"stopped by (?P<signal>SIG\w+) after step (?P<step>\d+): saved (?P<last>\S+) in "
    r"(?P<seconds>[\d.]+) s; to continue: (?P<again>.+)"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A folder with small training and validation files (every 84th line of the shipped ones)."""
    folder = tmp_path_factory.mktemp("data")
    for split, n in (("train", 120), ("valid", 20)):
        lines = (ROOT / "data" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        (folder / f"{split}.jsonl").write_text("\n".join(lines[::84][:n]) + "\n")
    return folder


def _args(data: Path, out: Path, *extra: str, steps: int = STEPS) -> list[str]:
    """`minitune train` on the tiny preset with dropout (the random states matter on resume),
    a metrics row every step, one validation at the end, and no periodic save of last/."""
    return [
        "train",
        "--config",
        "tiny",
        "--data",
        str(data / "train.jsonl"),
        "--valid-data",
        str(data / "valid.jsonl"),
        "--out",
        str(out),
        "--max-steps",
        str(steps),
        "--no-progress",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.log_every=1",
        "--set",
        "train.eval_every=1000",
        "--set",
        "train.save_every=1000",
        "--set",
        "model.dropout=0.1",
        *extra,
    ]


def _minitune(*args: str) -> list[str]:
    return [sys.executable, "-m", "minitune", *args]


def _start(*command: str) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_step(run: subprocess.Popen, out: Path, step: int) -> None:
    """Wait until the run's metrics.jsonl has a row of `step` (or later)."""
    metrics, deadline = out / "metrics.jsonl", time.time() + 300
    while time.time() < deadline:
        if run.poll() is not None:
            raise AssertionError(f"the run ended before step {step}: {run.communicate()}")
        rows = metrics.read_text().splitlines()[-3:] if metrics.exists() else []
        if any(json.loads(row)["step"] >= step for row in rows if row.endswith("}")):
            return
        time.sleep(0.002)
    raise AssertionError(f"no step {step} in 300 s")


def _stopped(stdout: str, name: str, steps: int = STEPS) -> re.Match:
    """The stopped run's line, checked: the signal `name`, a step reached after REACHED."""
    line = STOPPED.search(stdout)
    assert line, stdout[-2000:]
    assert line["signal"] == name and REACHED <= int(line["step"]) < steps, line[0]
    return line


def _resume(line: re.Match, launcher=lambda *args: _minitune(*args)) -> str:
    """Run the command the stopped run printed (minitune ...), with `launcher`; returns what it
    printed."""
    command = shlex.split(line["again"])
    assert command[0] == "minitune"
    done = subprocess.run(
        launcher(*command[1:]), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {line['last']} at step {line['step']}" in done.stdout
    return done.stdout


def _assert_same_run(a: Path, b: Path, steps: int = STEPS) -> None:
    """Two run folders hold the same last/ weights and the same loss log."""
    x = load_safetensors(a / "last" / "model.safetensors")
    y = load_safetensors(b / "last" / "model.safetensors")
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    rows = [
        [(r["step"], r.get("loss"), r.get("valid_loss")) for r in read_metrics(f)] for f in (a, b)
    ]
    assert rows[0] == rows[1] and len(rows[0]) == steps + 1  # a loss every step, a validation


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """The uninterrupted run, padded or packed (made once, on first use): what every stopped
    and resumed run must end with."""
    made = {}

    def run(layout: str) -> Path:
        if layout not in made:
            out = tmp_path_factory.mktemp("uninterrupted") / layout
            extra = PACKED if layout == "packed" else ()
            done = subprocess.run(
                _minitune(*_args(data, out, *extra)), cwd=ROOT, env=ENV, capture_output=True
            )
            assert done.returncode == 0, done.stderr[-3000:]
            made[layout] = out
        return made[layout]

    return run


@pytest.fixture
def caught_outside():
    """A safety net for the tests that signal their own process: a SIGTERM, SIGHUP or SIGUSR1
    that no handler of minitune took lands here (and the test fails) instead of ending pytest."""
    caught = []

    def net(signum, frame):
        caught.append(signum)

    before = {s: signal.signal(s, net) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)}
    yield caught
    for signum, handler in before.items():
        assert signal.getsignal(signum) is net  # minitune put the handler back
        signal.signal(signum, handler)


# ---- one process, signalled from outside ----------------------------------------------------


@pytest.mark.parametrize(
    "layout",
    ["padded", pytest.param("packed", marks=pytest.mark.slow)],  # packed: 20 s more
)
def test_sigterm_between_two_saves_saves_the_step_reached_and_resume_ends_equal(
    data, uninterrupted, tmp_path, layout
):
    out = tmp_path / "run"
    run = _start(*_minitune(*_args(data, out, *(PACKED if layout == "packed" else ()))))
    _wait_for_step(run, out, REACHED)
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGTERM == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    line = _stopped(stdout, "SIGTERM")
    assert line["last"] == str(out / "last")
    assert read_config(out / "last")["step"] == int(line["step"])  # the step reached
    assert max(r["step"] for r in read_metrics(out)) == int(line["step"])  # no step after it
    assert line["again"] == f"minitune train --out {out} --resume"
    _resume(line)
    _assert_same_run(out, uninterrupted(layout))


@pytest.mark.slow  # a few seconds of subprocesses: the default suite stays under 10 minutes
def test_a_background_job_of_a_script_stops_on_sigint_too(data, tmp_path):
    """`minitune train ... &` in a script: a non-interactive shell starts it with SIGINT
    ignored, and minitune handles SIGINT anyway (a scheduler's `kill -INT` must stop it)."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    inherited = subprocess.run(
        ["sh", "-c", f"{shlex.join([sys.executable, '-c', probe])} & wait"],
        capture_output=True,
        text=True,
    )
    assert inherited.stdout.strip() == "True"  # the job starts with SIGINT ignored
    out, pid_file = tmp_path / "run", tmp_path / "pid"
    job = f"{shlex.join(_minitune(*_args(data, out)))} & echo $! > {pid_file}; wait $!"
    shell = _start("sh", "-c", job)
    _wait_for_step(shell, out, REACHED)
    os.kill(int(pid_file.read_text()), signal.SIGINT)
    stdout, stderr = shell.communicate(timeout=120)
    assert shell.returncode == 130, stderr[-3000:]  # `wait $!` passes the job's status on
    line = _stopped(stdout, "SIGINT")
    assert load_trainer_state(out / "last")["step"] == int(line["step"])


@pytest.mark.slow  # a few seconds of subprocesses: the default suite stays under 10 minutes
def test_sighup_ignored_by_nohup_stays_ignored(data, uninterrupted, tmp_path):
    out = tmp_path / "run"
    run = _start("nohup", *_minitune(*_args(data, out)))
    _wait_for_step(run, out, REACHED)
    for _ in range(3):  # a closed terminal, say
        run.send_signal(signal.SIGHUP)
        time.sleep(0.01)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0 and "stopped by" not in stdout, stderr[-3000:]
    _assert_same_run(out, uninterrupted("padded"))  # as if nothing had happened


@pytest.mark.slow  # a few seconds of subprocesses: the default suite stays under 10 minutes
def test_a_second_signal_while_saving_leaves_a_complete_last(data, tmp_path):
    out = tmp_path / "run"
    second = [sys.executable, str(ROOT / "tests" / "signal_while_saving.py"), "SIGINT"]
    run = _start(*second, *_args(data, out))
    _wait_for_step(run, out, REACHED)
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=120)
    assert "sent SIGINT while writing last.tmp" in stderr  # the second signal came mid-save
    assert run.returncode == 143, stderr[-3000:]  # the first signal's status
    line = _stopped(stdout, "SIGTERM")
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("last")) == ["last"]
    load_model(out / "last")  # complete: every file there, its size and sha256 as listed
    assert load_trainer_state(out / "last")["step"] == int(line["step"])


# ---- one process, signalled by itself at a chosen moment ------------------------------------


class SignalledWhileTalking(Distributed):
    """Two processes, as far as `StopSignals.agreed` can tell, and a SIGTERM that arrives while
    they talk: its handler runs as the all-reduce returns, before the answer is stored."""

    def __init__(self) -> None:
        super().__init__(rank=0, world_size=2)

    def max(self, value: int) -> int:
        signal.raise_signal(signal.SIGTERM)
        return value  # the other process received nothing


def test_a_signal_during_the_all_reduce_stops_the_next_step(caught_outside):
    with StopSignals() as stop:
        assert stop.agreed(SignalledWhileTalking()) == 0  # asked before the signal came
        assert stop.agreed(SignalledWhileTalking()) == signal.SIGTERM  # kept, not overwritten
    assert caught_outside == []


def test_a_signal_before_the_first_step_stops_without_saving_and_says_so(
    data, tmp_path, monkeypatch, capsys, caught_outside
):
    out = tmp_path / "run"
    args = _args(data, out, steps=4)

    def sigterm_while_reading_the_data(*a, **k):
        signal.raise_signal(signal.SIGTERM)
        return real_load_data(*a, **k)

    real_load_data = training.load_data
    monkeypatch.setattr(training, "load_data", sigterm_while_reading_the_data)
    assert main(args) == 143
    again = f"minitune {shlex.join([*args, '--overwrite'])}"  # the same command, to start again
    expected = f"stopped by SIGTERM before the first step: nothing saved; to continue: {again}"
    assert capsys.readouterr().out.strip().splitlines()[-1] == expected
    assert not (out / "last").exists() and not (out / "metrics.jsonl").exists()

    monkeypatch.setattr(training, "load_data", real_load_data)
    interrupt_at(monkeypatch, 2)  # the command it printed, stopped after step 2 by Ctrl-C
    assert main(shlex.split(again)[1:]) == 130
    saved = (out / "last" / "model.safetensors").read_bytes()
    monkeypatch.undo()

    # resumed, and stopped before its first step: last/ holds that step already
    monkeypatch.setattr(training, "load_data", sigterm_while_reading_the_data)
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 143
    resume = f"minitune train --out {out} --resume"
    expected = f"stopped by SIGTERM at step 2: nothing new to save ({out / 'last'} holds it)"
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"{expected}; to continue: {resume}"
    assert (out / "last" / "model.safetensors").read_bytes() == saved
    assert caught_outside == []  # every SIGTERM reached minitune's handler


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR1], ids=["SIGHUP", "SIGUSR1"])
def test_sighup_and_sigusr1_stop_a_run_as_sigterm_does(
    data, tmp_path, monkeypatch, capsys, caught_outside, signum
):
    out = tmp_path / "run"
    interrupt_at(monkeypatch, 3, signum=signum)  # sent during step 3
    assert main(_args(data, out)) == 128 + signum  # 129, 138
    line = STOPPED.search(capsys.readouterr().out)
    assert line["signal"] == signum.name and line["step"] == "3"
    assert load_trainer_state(out / "last")["step"] == 3
    assert caught_outside == []


def test_the_pipeline_stops_in_tuning_and_in_evaluation_and_resumes_each(
    data, tmp_path, monkeypatch, capsys, caught_outside
):
    import minitune.evaluate as evaluate

    out = tmp_path / "pipe"
    args = ["pipeline", "--config", "tiny", "--max-steps", "2", "--limit", "1", "--out", str(out)]
    args += ["--data", str(data / "train.jsonl"), "--valid-data", str(data / "valid.jsonl")]
    args += ["--no-progress", "--set", "train.batch_size=4", "--from-scratch"]
    again = "minitune " + shlex.join([*args, "--resume"])
    # a scheduler's SIGTERM during the tuning's first step: saved there
    interrupt_at(monkeypatch, 1, signum=signal.SIGTERM)
    assert main(args) == 143
    line = STOPPED.search(capsys.readouterr().out)
    assert (line["signal"], line["step"], line["again"]) == ("SIGTERM", "1", again)
    monkeypatch.undo()
    # resumed, then SIGUSR1 during the evaluation: it stops there, at once
    real_evaluate = evaluate.evaluate_files

    def sigusr1_while_evaluating(*a, **k):
        signal.raise_signal(signal.SIGUSR1)
        return real_evaluate(*a, **k)

    monkeypatch.setattr(evaluate, "evaluate_files", sigusr1_while_evaluating)
    assert main(shlex.split(again)[1:]) == 128 + signal.SIGUSR1
    printed = capsys.readouterr().out.strip().splitlines()
    assert f"resumed from {out / 'last'} at step 1" in printed
    assert printed[-2] == "== evaluation"
    assert printed[-1] == (
        f"stopped by SIGUSR1 during the evaluation (the tuning is saved in {out / 'last'}); "
        f"to continue (it evaluates again): {again}"
    )
    assert not (out / "report.json").exists()
    monkeypatch.undo()
    assert main(shlex.split(again)[1:]) == 0
    assert "== evaluation" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["train"]["step"] == 2
    assert caught_outside == []


@pytest.mark.slow  # a few seconds of subprocesses: the default suite stays under 10 minutes
def test_the_pipeline_stopped_in_its_pretraining_resumes_there(
    data, tmp_path, monkeypatch, capsys, caught_outside
):
    out = tmp_path / "pipe"
    args = ["pipeline", "--config", "tiny", "--max-steps", "2", "--pretrain-steps", "3"]
    args += ["--limit", "1", "--out", str(out), "--data", str(data / "train.jsonl")]
    args += ["--no-progress", "--set", "train.batch_size=4", "--from-scratch"]
    interrupt_at(monkeypatch, 2, signum=signal.SIGTERM)  # the pretraining's step 2 of 3
    assert main(args) == 143
    line = STOPPED.search(capsys.readouterr().out)
    assert (line["step"], line["last"]) == ("2", str(out / "pretrain" / "last"))
    assert not (out / "last").exists()  # the tuning has not started
    monkeypatch.undo()
    assert main(shlex.split(line["again"])[1:]) == 0
    printed = capsys.readouterr().out
    assert f"resumed from {out / 'pretrain' / 'last'} at step 2" in printed
    assert read_config(out / "pretrain" / "last")["step"] == 3
    assert json.loads((out / "report.json").read_text())["train"]["step"] == 2
    assert caught_outside == []


def test_a_clock_bounded_run_continues_its_schedule_from_the_saved_time(tmp_path, monkeypatch):
    """With max_minutes the cosine decays over the clock: a resumed run's learning rate is that
    of the training time saved in last/ plus the time since, not of a schedule started anew."""
    model_cfg, cfg = tiny_run(
        tmp_path,
        max_steps=10**6,
        max_minutes=5.0,
        warmup_steps=0,
        log_every=1,
        valid_data=None,
        valid_fraction=0,
    )
    quiet = {"progress": False, "log": lambda *a: None}
    interrupt_at(monkeypatch, 10)
    assert _train_stopped(model_cfg, cfg, quiet)["step"] == 10
    saved = load_trainer_state(tmp_path / "run" / "last")["elapsed"]
    assert saved > 0
    monkeypatch.undo()
    interrupt_at(monkeypatch, 1)  # one step more
    assert _train_stopped(model_cfg, cfg, {**quiet, "resume": True})["step"] == 11
    row = next(r for r in read_metrics(tmp_path / "run") if r["step"] == 11 and "lr" in r)
    # the step's lr came from a time between the saved one and the row's (rounded to 0.1 s)
    assert row["elapsed_s"] >= round(saved, 1)
    budget = 60 * cfg.max_minutes  # seconds
    latest, earliest = (row["elapsed_s"] + 0.05) / budget, saved / budget
    assert cfg.lr * lr_factor(10, cfg, latest) <= row["lr"] <= cfg.lr * lr_factor(10, cfg, earliest)


def _train_stopped(model_cfg, cfg, kwargs: dict) -> dict:
    summary = training.train(model_cfg, cfg, **kwargs)
    assert summary["stop_reason"] == "signal" and summary["signal"] == signal.SIGINT
    return summary


# ---- two processes under torchrun (slow) ----------------------------------------------------

# a step of two processes takes ~40 ms here, and torchrun's agent, on a busy machine, can take
# a second or more to forward a signal: 150 steps leave it 5 s
TORCHRUN_STEPS = 150


def _torchrun(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "minitune",
        *args,
    ]


def _worker(agent: int, rank: int) -> int:
    """The process id of torchrun's worker of `rank` (a child of the agent with RANK=rank in its
    environment), read from /proc (Linux)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            parent = int(re.search(r"PPid:\s+(\d+)", status.read_text())[1])
            environment = (status.parent / "environ").read_bytes().split(b"\0")
        except (OSError, TypeError):  # a process that ended meanwhile
            continue
        if parent == agent and f"RANK={rank}".encode() in environment:
            return int(status.parent.name)
    raise AssertionError(f"no worker of rank {rank} under process {agent}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "where, signum, extra",
    [
        ("agent", signal.SIGTERM, ()),  # a scheduler stopping the job: torchrun forwards it
        ("worker", signal.SIGUSR1, PACKED),  # one worker only: the other learns it by all-reduce
        ("worker", signal.SIGTERM, ("--fsdp",)),  # the save gathers FSDP's shards
    ],
    ids=["agent-padded", "one-worker-packed", "one-worker-fsdp"],
)
def test_two_processes_stop_together_and_resume_to_the_same_weights(
    data, tmp_path, where, signum, extra
):
    args = ["--device", "cpu", "--set", "train.batch_size=2", "--set", "train.grad_accum=2"]
    args += extra
    straight, out = tmp_path / "straight", tmp_path / "run"
    done = subprocess.run(
        _torchrun(*_args(data, straight, *args, steps=TORCHRUN_STEPS)),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = _start(*_torchrun(*_args(data, out, *args, steps=TORCHRUN_STEPS)))
    _wait_for_step(run, out, REACHED)
    os.kill(run.pid if where == "agent" else _worker(run.pid, rank=1), signum)
    stdout, stderr = run.communicate(timeout=300)
    line = _stopped(stdout, signum.name, TORCHRUN_STEPS)
    assert stdout.count("stopped by") == 1  # rank 0 speaks for both
    if where == "worker":  # rank 0 printed the line: it stopped on rank 1's signal, and said
        # so with 128 + signum (torchrun may end the slower one itself, once one has exited)
        assert re.search(rf"exitcode\s*:\s*{128 + signum}\b", stderr), stderr[-3000:]
    trainer = load_trainer_state(out / "last")
    assert trainer["step"] == int(line["step"]) and len(trainer["rng"]) == 2  # both saved
    _resume(line, _torchrun)
    _assert_same_run(out, straight, TORCHRUN_STEPS)
