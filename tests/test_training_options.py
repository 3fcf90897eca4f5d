"""Training options a user sets in a config, proved through `train` itself: best/ holds the
lowest validation loss, max_minutes stops the run, label smoothing reaches the loss, Adafactor is
the optimizer that runs, and the span-corruption objective learns and resumes exactly."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import interrupt_at
from test_train import read_metrics, tiny_run

from minitune import shift_right
from minitune.run.checkpoint import load_safetensors, load_trainer_state
from minitune.run.settings import load_run_config
from minitune.train import train

ROOT = Path(__file__).resolve().parents[1]
quiet = {"progress": False, "log": lambda *a: None}


def _weights(folder: Path) -> dict:
    return load_safetensors(folder / "model.safetensors")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_best_holds_the_weights_of_the_lowest_validation_loss(tmp_path, monkeypatch):
    import minitune.train as training

    scripted = iter([5.0, 2.0, 3.0, 4.0])  # the lowest comes second: best is not first or last
    monkeypatch.setattr(training, "validation_loss", lambda *a, **k: next(scripted))
    model_cfg, cfg = tiny_run(tmp_path, max_steps=4, eval_every=1, log_every=1)
    summary = train(model_cfg, cfg, **quiet)
    assert summary["best_valid_loss"] == 2.0
    run = tmp_path / "run"
    best = json.loads((run / "best" / "config.json").read_text())
    assert best["step"] == 2 and best["best_valid_loss"] == 2.0
    assert [r["valid_loss"] for r in read_metrics(run) if "valid_loss" in r] == [5, 2, 3, 4]
    # the weights are those of step 2: the same run stopped at step 2 has them in last/
    model_cfg, cfg = tiny_run(
        tmp_path,
        max_steps=4,
        valid_data=None,
        valid_fraction=0,
        log_every=1,
        out=str(tmp_path / "two"),
    )
    interrupt_at(monkeypatch, 2)  # Ctrl-C during step 2: last/ holds step 2
    assert train(model_cfg, cfg, **quiet)["step"] == 2
    assert _same(_weights(run / "best"), _weights(tmp_path / "two" / "last"))
    assert not _same(_weights(run / "best"), _weights(run / "last"))


def test_max_minutes_stops_the_run_and_saves_it(tmp_path):
    model_cfg, cfg = tiny_run(tmp_path, max_steps=300, max_minutes=0.01, eval_every=1000)
    summary = train(model_cfg, cfg, **quiet)
    assert summary["stop_reason"] == "max_minutes"
    assert 0 < summary["step"] < 300 and summary["minutes"] >= 0.01
    last = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
    assert last["step"] == summary["step"]
    rows = read_metrics(tmp_path / "run")
    # evaluated at the last step: a validation row (with its wall-clock time), no train loss
    assert set(rows[-1]) == {"step", "valid_loss", "examples", "elapsed_s"}, rows[-1]
    assert rows[-1]["step"] == summary["step"] and rows[-1]["elapsed_s"] >= 0.6


def _smoothed_loss(model, micro_batches, pad_id, eps) -> float:
    """(1-ε)·(-log p(y)) + ε·mean over the vocabulary of (-log p(v)), averaged over the target
    tokens of all micro-batches: label smoothing written out by hand."""
    total, count = 0.0, 0
    for b in micro_batches:
        y = b["labels"]
        dec = shift_right(y, model.config.decoder_start_id, pad_id)
        log_p = F.log_softmax(model(b["input_ids"], dec, b["attention_mask"]).float(), -1)
        keep = y != -100
        nll = -log_p.gather(-1, y.clamp(min=0)[..., None])[..., 0]  # (B, T)
        uniform = -log_p.mean(-1)  # (B, T)
        total += ((1 - eps) * nll + eps * uniform)[keep].sum().item()
        count += int(keep.sum())
    return total / count


def test_label_smoothing_reaches_the_loss_that_train_minimises(tmp_path, monkeypatch):
    import minitune.train as training

    real, seen = training.train_step, []

    def spy(model, optimizer, micro, lr, setup):
        with torch.no_grad():  # before the step changes the weights (dropout is 0 in tiny)
            expected = (
                _smoothed_loss(model, micro, setup.pad_id, 0.1),
                _smoothed_loss(model, micro, setup.pad_id, 0.0),
            )
        result = real(model, optimizer, micro, lr, setup)
        seen.append((result.loss, *expected))
        return result

    monkeypatch.setattr(training, "train_step", spy)
    model_cfg, cfg = tiny_run(
        tmp_path, max_steps=2, valid_data=None, valid_fraction=0, label_smoothing=0.1
    )
    train(model_cfg, cfg, **quiet)
    assert len(seen) == 2
    for loss, smoothed, plain in seen:
        assert math.isclose(loss, smoothed, rel_tol=1e-5), (loss, smoothed)
        # smoothing changes the number by more than the tolerance above: `loss` is not `plain`
        assert abs(smoothed - plain) > 10 * 1e-5 * abs(plain)
    logged = read_metrics(tmp_path / "run")[-1]["loss"]
    assert math.isclose(logged, (seen[0][0] + seen[1][0]) / 2, rel_tol=1e-6)


def test_adafactor_through_train_learns_and_keeps_factored_state(tmp_path):
    model_cfg, cfg = tiny_run(
        tmp_path,
        max_steps=30,
        valid_data=None,
        valid_fraction=0,
        optimizer="adafactor",
        log_every=5,
        lr=1e-2,
    )
    train(model_cfg, cfg, **quiet)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert losses[-1] < 0.8 * losses[0], losses
    states = load_trainer_state(tmp_path / "run" / "last")["optimizer"]["state"].values()
    assert any({"row", "col"} <= set(s) for s in states)  # matrices: factored second moments
    assert not any("exp_avg" in s or "exp_avg_sq" in s for s in states)  # not AdamW's


def _pretrain_run(tmp_path: Path, out: str, **overrides):
    text = (ROOT / "data" / "pretrain.txt").read_text(encoding="utf-8").split("\n\n")[:120]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(text) + "\n", encoding="utf-8")
    train_cfg = {
        "objective": "span",
        "data": [str(corpus)],
        "valid_data": None,
        "valid_fraction": 0,
        "tokenizer": str(ROOT / "tokenizer" / "minitune.model"),
        "out": str(tmp_path / out),
        "log_every": 1,
        "eval_every": 1000,
        **overrides,
    }
    return load_run_config(ROOT / "configs" / "tiny.toml", {"train": train_cfg})


def test_span_corruption_loss_falls(tmp_path):
    model_cfg, cfg = _pretrain_run(tmp_path, "run", max_steps=30, log_every=5)
    train(model_cfg, cfg, **quiet)
    rows = read_metrics(tmp_path / "run")
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.9 * losses[0], losses
    assert "valid_loss" in rows[-1]  # span runs validate on held-back corrupted documents


def test_span_corruption_resumes_exactly(tmp_path, monkeypatch):
    model_cfg, cfg = _pretrain_run(tmp_path, "straight", max_steps=6)
    model_cfg.dropout = 0.1  # the random states must be restored too
    train(model_cfg, cfg, **quiet)
    model_cfg, cfg = _pretrain_run(tmp_path, "split", max_steps=6)
    model_cfg.dropout = 0.1
    interrupt_at(monkeypatch, 3)  # Ctrl-C during step 3: last/ holds step 3
    assert train(model_cfg, cfg, **quiet)["step"] == 3
    monkeypatch.undo()
    train(model_cfg, cfg, resume=True, **quiet)
    losses = [r.get("loss") for r in read_metrics(tmp_path / "split")]
    assert losses == [r.get("loss") for r in read_metrics(tmp_path / "straight")]
    assert sum(loss is not None for loss in losses) == 6
    assert _same(_weights(tmp_path / "split" / "last"), _weights(tmp_path / "straight" / "last"))


def test_copy_fraction_makes_whole_chunk_targets():
    """copy_fraction: that share of chunks (of max_target_length - 1 tokens) get the whole chunk
    as target; the rest are ordinary span corruption. 0 keeps the old examples exactly."""
    from minitune.data.stream import span_examples
    from minitune.tokenizer import Tokenizer

    tok = Tokenizer(ROOT / "tokenizer" / "minitune.model")
    documents = [list(range(200 + i, 600 + i)) for i in range(20)]
    _, plain = load_run_config(ROOT / "configs" / "tiny.toml", {"train": {"objective": "span"}})
    _, mixed = load_run_config(
        ROOT / "configs" / "tiny.toml", {"train": {"objective": "span", "copy_fraction": 0.5}}
    )
    before = span_examples(documents, tok, plain, epoch=0)
    assert all(set(tok.sentinel_ids) & set(e.target) for e in before)  # spans only
    examples = span_examples(documents, tok, mixed, epoch=0)
    copies = [e for e in examples if not set(tok.sentinel_ids) & set(e.target)]
    assert 0.3 < len(copies) / len(examples) < 0.7
    for e in copies:  # the target is the chunk; the input is that chunk with spans cut out
        chunk, kept = e.target[:-1], [t for t in e.source[:-1] if t not in tok.sentinel_ids]
        assert len(e.target) <= mixed.max_target_length and len(kept) < len(chunk)
        it = iter(chunk)
        assert all(t in it for t in kept)  # kept tokens in their order
    # every document token is in some example, nothing lost
    assert {t for d in documents for t in d} <= {t for e in examples for t in e.target + e.source}
    with pytest.raises(ValueError, match="copy_fraction"):
        load_run_config(ROOT / "configs" / "tiny.toml", {"train": {"copy_fraction": 1.5}})
