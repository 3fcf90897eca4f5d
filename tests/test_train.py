import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import import_or_skip, interrupt_at

from minitune.config import TrainConfig
from minitune.data.batching import collate, encode_records
from minitune.data.formats import read_records
from minitune.evaluate import exact_match, lcs_length, rouge_l, token_f1
from minitune.model import Seq2SeqTransformer
from minitune.optim import Adafactor, lr_factor, parameter_groups
from minitune.run.checkpoint import (
    CheckpointError,
    load_model,
    load_safetensors,
    save_safetensors,
)
from minitune.run.settings import load_run_config, parse_override
from minitune.tokenizer import Tokenizer
from minitune.train import StepSetup, forward_backward, train

ROOT = Path(__file__).resolve().parents[1]


def small_data(tmp_path: Path, n: int = 160) -> str:
    """The first n lines of the shipped train split (many tasks, real lengths)."""
    lines = (ROOT / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "small.jsonl"
    path.write_text("\n".join(lines[::84][:n]) + "\n", encoding="utf-8")
    return str(path)


def tiny_run(tmp_path: Path, **train_overrides):
    overrides = {
        "data": [small_data(tmp_path)],
        "valid_data": small_data(tmp_path, 40),
        "tokenizer": str(ROOT / "tokenizer" / "minitune.model"),
        "out": str(tmp_path / "run"),
        **train_overrides,
    }
    return load_run_config(ROOT / "configs" / "tiny.toml", {"train": overrides})


def read_metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_tiny_end_to_end_loss_falls_checkpoint_loads_and_evaluates(tmp_path):
    model_cfg, cfg = tiny_run(tmp_path, max_steps=40, eval_every=20)
    summary = train(model_cfg, cfg, progress=False, log=lambda *a: None)
    assert summary["step"] == 40 and summary["stop_reason"] == "max_steps"
    rows = [r for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]
    for name in ("best", "last"):
        assert (tmp_path / "run" / name / "model.safetensors").is_file()
    assert (tmp_path / "run" / "last" / "trainer.pt").is_file()
    info = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
    assert info["train"]["max_steps"] == 40 and info["step"] == 40 and info["seed"] == 0
    assert info["tokenizer_sha"] == Tokenizer(ROOT / "tokenizer" / "minitune.model").fingerprint()
    from minitune.evaluate import evaluate_files

    model, _ = load_model(tmp_path / "run" / "best")
    tok = Tokenizer(tmp_path / "run" / "best" / "tokenizer.model")
    result = evaluate_files(model, tok, [str(ROOT / "data" / "test.jsonl")], 12, 64, 16)
    from minitune.cli.use import answer

    for s in result["scored"]:  # batched, sorted by length, mapped back: each to its own prompt
        assert s.prediction == answer(model, tok, s.prompt, {"max_new_tokens": 16}, 64)
        assert s.exact_match == float(s.prediction.strip() == s.reference.strip())
    tasks: dict[str, list[float]] = {}
    for s in result["scored"]:
        tasks.setdefault(s.task, []).append(s.exact_match)
    expected = 100 * sum(sum(v) / len(v) for v in tasks.values()) / len(tasks)  # per-task mean
    assert result["report"]["test"]["average"]["exact_match"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "spelled, where",
    [
        ({}, "next_micro_batches"),
        ({"spell_prompts": 0.3}, "next_micro_batches"),
        ({"packing": True}, "next_micro_batches"),
        ({}, "train_step"),  # Ctrl-C after the step drew its batches: it is finished first
    ],
    ids=["plain", "spelled", "packed", "mid-step"],
)
def test_resume_equals_an_uninterrupted_run(tmp_path, spelled, where, monkeypatch):
    straight_dir, split_dir = tmp_path / "straight", tmp_path / "split"
    straight_dir.mkdir()
    split_dir.mkdir()
    common = {
        "max_steps": 10,
        "log_every": 1,
        "eval_every": 100,
        "valid_data": None,
        "valid_fraction": 0,
        **spelled,
    }
    model_cfg, cfg = tiny_run(straight_dir, **common)
    model_cfg.dropout = 0.1  # the RNG state must be restored too
    train(model_cfg, cfg, progress=False, log=lambda *a: None)

    model_cfg, cfg = tiny_run(split_dir, **common)
    model_cfg.dropout = 0.1
    interrupt_at(monkeypatch, 5, where)  # Ctrl-C during step 5: last/ holds step 5
    first = train(model_cfg, cfg, progress=False, log=lambda *a: None)
    assert first["step"] == 5 and first["stop_reason"] == "signal"
    assert first["signal"] == signal.SIGINT and first["save_seconds"] > 0
    monkeypatch.undo()
    second = train(model_cfg, cfg, resume=True, progress=False, log=lambda *a: None)
    if cfg.packing:  # a batch is batch_size rows of several examples each
        assert second["examples"] > 10 * cfg.batch_size
    else:
        assert second["examples"] == 10 * cfg.batch_size  # counted across the two sessions

    assert [r["loss"] for r in read_metrics(split_dir / "run")] == [
        r["loss"] for r in read_metrics(straight_dir / "run")
    ]
    a = load_safetensors(straight_dir / "run" / "last" / "model.safetensors")
    b = load_safetensors(split_dir / "run" / "last" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_accumulation_4x2_equals_1x8_despite_different_padding():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(load_run_config(ROOT / "configs" / "tiny.toml")[0])
    tok = Tokenizer(ROOT / "tokenizer" / "minitune.model")
    records = read_records(ROOT / "data" / "valid.jsonl")[::90][:8]
    examples, _ = encode_records(records, tok, 64, 32)
    setup = StepSetup("cpu", tok.pad_id)  # float32, one process

    model.zero_grad()
    forward_backward(model, [collate(examples, tok.pad_id)], setup)
    big = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    micro = [collate(examples[i : i + 2], tok.pad_id) for i in range(0, 8, 2)]
    assert len({m["input_ids"].shape[1] for m in micro}) > 1  # the padding really differs
    forward_backward(model, micro, setup)
    for g, p in zip(big, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-5)


def test_a_packed_step_has_the_gradient_of_the_padded_step():
    """train_step's own path (shift_right per example, token counts) on real prompts."""
    from minitune.data.packing import collate_packed, pack_rows

    torch.manual_seed(0)
    model_cfg = load_run_config(ROOT / "configs" / "tiny.toml")[0]
    model_cfg.position, model_cfg.copy_head = "relative+sinusoidal", True  # the laptop's kind
    model = Seq2SeqTransformer(model_cfg)
    tok = Tokenizer(ROOT / "tokenizer" / "minitune.model")
    examples, _ = encode_records(read_records(ROOT / "data" / "valid.jsonl")[::90][:8], tok, 64, 32)
    setup = StepSetup("cpu", tok.pad_id)  # float32, one process
    model.zero_grad()
    loss, tokens = forward_backward(model, [collate(examples, tok.pad_id)], setup)
    padded = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    rows = pack_rows([len(e.source) for e in examples], [len(e.target) for e in examples], 96, 40)
    assert len(rows) < len(examples)  # several examples share a row
    batch = collate_packed([[examples[i] for i in row] for row in rows], tok.pad_id, 96, 40, 5)
    packed_loss, packed_tokens = forward_backward(model, [batch], setup)
    assert packed_tokens == tokens and abs(packed_loss - loss) <= 1e-5 * loss
    for g, p in zip(padded, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-5)


def test_metric_worked_examples():
    assert exact_match(" Paris ", "Paris") == 1.0 and exact_match("paris", "Paris") == 0.0
    assert token_f1("the red car", "the blue car") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert lcs_length("a b c d".split(), "a c b d".split()) == 3
    assert rouge_l("a b c d", "a c b d") == pytest.approx(0.75)
    assert rouge_l("the cat sat", "the cat sat") == 1.0
    # ROUGE-L counts order, token F1 does not
    assert token_f1("c b a", "a b c") == 1.0 and rouge_l("c b a", "a b c") == pytest.approx(1 / 3)


def test_config_overrides_and_errors(tmp_path):
    assert parse_override("train.lr=3e-4") == ("train", "lr", 3e-4)
    assert parse_override("model.position=sinusoidal") == ("model", "position", "sinusoidal")
    assert parse_override('train.data=["a.jsonl", "b.jsonl"]') == (
        "train",
        "data",
        ["a.jsonl", "b.jsonl"],
    )
    with pytest.raises(ValueError, match=r"model\.KEY=VALUE"):
        parse_override("lr=3")
    model_cfg, cfg = load_run_config(
        ROOT / "configs" / "laptop.toml", {"train": {"lr": 5e-4}, "model": {"dropout": 0.2}}
    )
    assert cfg.lr == 5e-4 and model_cfg.dropout == 0.2 and model_cfg.d_model == 192
    with pytest.raises(ValueError, match=r"\[train\] unknown key 'lrate'"):
        load_run_config(None, {"train": {"lrate": 1}})
    with pytest.raises(ValueError, match="did you mean 'max_steps'"):
        load_run_config(None, {"train": {"max_step": 1}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.toml: not valid TOML"):
        load_run_config(bad)
    with pytest.raises(ValueError, match=r"TrainConfig\.optimizer='sgd'"):
        TrainConfig(optimizer="sgd")


def test_schedules():
    cfg = TrainConfig(warmup_steps=10, max_steps=110, schedule="cosine")
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(110, cfg) == pytest.approx(0.1)
    assert lr_factor(60, cfg) == pytest.approx(0.55)
    cfg.schedule = "inverse_sqrt"
    assert lr_factor(39, cfg) == pytest.approx(0.5)
    cfg.schedule = "constant"
    assert lr_factor(100, cfg) == 1.0


def test_no_weight_decay_on_norms_biases_embeddings():
    model = Seq2SeqTransformer(load_run_config(ROOT / "configs" / "tiny.toml")[0])
    decay, no_decay = parameter_groups(model, 0.1)
    assert model.embed.weight in [p for p in no_decay["params"]]
    decayed = {id(p) for p in decay["params"]}
    for name, p in model.named_parameters():
        is_matrix = name.endswith(
            (
                "q.weight",
                "k.weight",
                "v.weight",
                "o.weight",
                "wi.weight",
                "wi_gate.weight",
                "wo.weight",
            )
        )
        assert (id(p) in decayed) == is_matrix, name


def test_adafactor_minimises_a_least_squares_problem():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(8, 4))
    b = torch.nn.Parameter(torch.zeros(4))
    x = torch.randn(64, 8)
    target = x @ torch.randn(8, 4) + 0.5  # a linear map the optimizer can find
    optimizer = Adafactor([w, b], lr=0.05)
    losses = []
    for _ in range(200):
        loss = ((x @ w + b - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    assert set(optimizer.state[w]) == {"step", "row", "col"}  # factored: no full matrix


def test_safetensors_round_trip_and_truncation(tmp_path):
    tensors = {
        "a": torch.randn(3, 4),
        "b": torch.arange(5),
        "c": torch.randn(2).bfloat16(),
        "d": torch.tensor(True),
        "e": torch.zeros(0, 3),
    }
    save_safetensors(tensors, tmp_path / "t.safetensors", metadata={"format": "pt"})
    back = load_safetensors(tmp_path / "t.safetensors")
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    raw = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-5])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: truncated"):
        load_safetensors(tmp_path / "cut.safetensors")


def test_safetensors_interoperates_with_the_reference_library(tmp_path):
    st = import_or_skip("safetensors.torch")
    tensors = {"w": torch.randn(4, 5), "i": torch.arange(6).view(2, 3), "h": torch.randn(3).half()}
    save_safetensors(tensors, tmp_path / "ours.safetensors")
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    assert all(torch.equal(theirs[k], v) for k, v in tensors.items())
    st.save_file(tensors, str(tmp_path / "theirs.safetensors"))
    ours = load_safetensors(tmp_path / "theirs.safetensors")
    assert all(torch.equal(ours[k], v) for k, v in tensors.items())


def test_pipeline_command_end_to_end(tmp_path):
    out = tmp_path / "pipe"
    run = [sys.executable, "-m", "minitune"]
    done = subprocess.run(
        [
            *run,
            "pipeline",
            "--config",
            "configs/tiny.toml",
            "--max-steps",
            "8",
            "--limit",
            "4",
            "--out",
            str(out),
            "--no-progress",
            "--pretrain-steps",
            "3",
            "--from-scratch",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seen tasks, seen phrasings: exact match" in done.stdout
    report = json.loads((out / "report.json").read_text())
    # next to each split: how far training went (a slow machine is not a bad recipe)
    best = json.loads((out / "best" / "config.json").read_text())
    assert (best["step"] - 1) * 8 < best["examples_seen"] <= best["step"] * 8  # batch_size 8
    assert 7 * 8 < report["train"]["examples"] <= 8 * 8
    assert (
        f"model of step {best['step']:,} of 8, {best['examples_seen']:,} examples seen"
        in done.stdout
    )
    assert set(report["eval"]) == {
        "test",
        "heldout_phrasings",
        "heldout_tasks",
        "contrast",
        "heldout_compositions",
    }
    # the answers shown next to the expected ones: at least one from each evaluation split
    assert {e["split"] for e in report["examples"]} == set(report["eval"])
    first = report["examples"][0]
    assert f"  expected: {first['expected']}\n  answer:   {first['answer']}" in done.stdout
    assert (out / "pretrain" / "last" / "model.safetensors").is_file()
    generated = subprocess.run(
        [*run, "generate", "--checkpoint", str(out / "best"), "--num-beams", "2", "What is 1 + 2?"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    from minitune.cli.use import answer
    from minitune.run.checkpoint import load_checkpoint

    model, tok, _ = load_checkpoint(str(out / "best"), "cpu")
    expected = answer(model, tok, "What is 1 + 2?", {"max_new_tokens": 64, "num_beams": 2})
    assert expected and generated.stdout == expected + "\n"
    as_json = subprocess.run(
        [
            *run,
            "eval",
            "--checkpoint",
            str(out / "best"),
            "--data",
            "data/heldout_tasks.jsonl",
            "--limit",
            "3",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "heldout_tasks" in json.loads(as_json.stdout)
    missing = subprocess.run(
        [*run, "eval", "--checkpoint", str(tmp_path / "nothing"), "--data", "data/test.jsonl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "not a checkpoint folder" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_train_state_round_trips_and_keeps_trainer_pt_keys():
    from minitune.run.state import TrainState

    state = TrainState(
        step=7,
        examples=56,
        tokens=900,
        epoch=1,
        index=3,
        best_valid_loss=2.5,
        elapsed=10.0,
        losses=[1.0, 2.0],
        skipped=1,
        rng=[{"python": 1}],
    )
    saved = state.state_dict()
    # the keys trainer.pt has always held next to "optimizer" and "scaler", "examples", "tokens"
    assert list(saved) == [
        "step",
        "examples",
        "tokens",
        "epoch",
        "index",
        "best_valid_loss",
        "elapsed",
        "losses",
        "skipped",
        "rng",
    ]
    older = TrainState()
    older.load_state_dict({k: v for k, v in saved.items() if k not in ("examples", "tokens")})
    assert older.step == 7 and older.examples == 0 and older.tokens == 0
    assert saved["elapsed"] >= 10.0 and saved["losses"] is not state.losses
    other = TrainState()
    other.load_state_dict(saved)
    assert (other.step, other.examples, other.epoch, other.index, other.skipped) == (7, 56, 1, 3, 1)
    assert other.tokens == 900
    assert other.losses == [1.0, 2.0] and other.saved_step == 7 and other.rng == [{"python": 1}]
    assert other.seconds() >= saved["elapsed"]
