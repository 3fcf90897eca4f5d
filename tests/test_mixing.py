"""Task mixing (minitune/data/mixing.py): weights follow the loss, a floor keeps every task,
held-out examples are never trained on, and a resumed run draws the same batches."""

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import interrupt_at

from minitune.data.batching import EncodedExample
from minitune.data.mixing import TaskMixer, task_weights
from minitune.run.safetensors_io import load_safetensors
from minitune.run.settings import load_run_config
from minitune.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_weights_follow_the_loss_with_a_floor():
    w = task_weights({"classify": 0.01, "translate": 2.0}, floor=0.2)
    assert w["translate"] == pytest.approx(2.0 / 2.201)  # the floor: 0.2 × mean 1.005
    assert w["classify"] == pytest.approx(0.201 / 2.201)
    assert task_weights({"a": 1.0, "b": 3.0}, floor=0.0) == {"a": 0.25, "b": 0.75}
    assert sum(task_weights({"a": 0.0, "b": 0.0, "c": 5.0}, floor=0.1).values()) == pytest.approx(1)


def examples_of(tasks: dict[str, int]) -> tuple[list[EncodedExample], list[str]]:
    names = [t for t, n in tasks.items() for _ in range(n)]
    return [EncodedExample([i + 3, 1], [1], i) for i in range(len(names))], names


def test_probe_is_held_out_and_weights_are_followed():
    examples, tasks = examples_of({"a": 50, "b": 50, "c": 50})
    mixer = TaskMixer(examples, tasks, batch_size=10, window=2, seed=0, probe_size=4)
    probe = {e.index for part in mixer.probe.values() for e in part}
    assert len(probe) == 12 and all(len(p) == 4 for p in mixer.probe.values())
    uniform = [e.index for _ in range(8) for e in next(mixer)[2]]  # 80 of 138
    assert not probe & set(uniform)  # never trained on
    assert len(set(uniform)) == len(uniform)  # no example twice while its task has unused ones
    mixer.weights = {"a": 0.8, "b": 0.1, "c": 0.1}
    drawn = Counter(tasks[e.index] for _ in range(300) for e in next(mixer)[2])
    assert 0.75 < drawn["a"] / 3000 < 0.85 and drawn["b"] > 200  # by weight; none left out


def test_a_restored_mixer_draws_the_same_batches():
    examples, tasks = examples_of({"a": 30, "b": 20})
    mixer = TaskMixer(examples, tasks, batch_size=4, window=3, seed=1)
    for _ in range(5):
        next(mixer)
    mixer.weights = {"a": 0.3, "b": 0.7}
    saved = json.loads(json.dumps(mixer.state_dict()))  # plain data, as trainer.pt keeps it
    ahead = [[e.index for e in next(mixer)[2]] for _ in range(20)]
    other = TaskMixer(examples, tasks, batch_size=4, window=3, seed=1)
    other.load_state_dict(saved)
    assert [[e.index for e in next(other)[2]] for _ in range(20)] == ahead


def four_tasks(tmp_path: Path) -> str:
    rows = [json.loads(line) for line in (ROOT / "data" / "train.jsonl").open()]
    by_task: dict[str, list] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    chosen = [r for task in list(by_task)[:4] for r in by_task[task][:40]]
    path = tmp_path / "four.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return str(path)


def test_mixed_training_resumes_exactly_and_logs_the_weights(tmp_path, monkeypatch):
    def run(folder: Path, **kwargs):
        overrides = {
            "data": [four_tasks(tmp_path)],
            "valid_data": None,
            "valid_fraction": 0,
            "max_steps": 12,
            "log_every": 1,
            "mix_tasks_every": 4,
            "out": str(folder),
            "tokenizer": str(ROOT / "tokenizer" / "minitune.model"),
        }
        model_cfg, cfg = load_run_config(ROOT / "configs" / "tiny.toml", {"train": overrides})
        return train(model_cfg, cfg, progress=False, log=lambda *a: None, **kwargs)

    run(tmp_path / "straight")
    interrupt_at(monkeypatch, 6)  # Ctrl-C during step 6: last/ holds step 6
    assert run(tmp_path / "split")["step"] == 6
    monkeypatch.undo()
    run(tmp_path / "split", resume=True)
    rows = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    straight = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    assert [r.get("loss") for r in rows] == [json.loads(x).get("loss") for x in straight]
    weights = [r["task_weight"] for r in rows if "task_weight" in r]
    assert len(weights) == 3 and len(weights[0]) == 4  # steps 4, 8, 12; four tasks
    assert all(sum(w.values()) == pytest.approx(1, abs=1e-3) for w in weights)
    assert len({tuple(w.values()) for w in weights}) > 1  # they follow the changing losses
    a = load_safetensors(tmp_path / "straight" / "last" / "model.safetensors")
    b = load_safetensors(tmp_path / "split" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
