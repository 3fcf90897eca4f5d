"""A damaged checkpoint folder is reported by name, on one line, with status 2, by every command
that reads checkpoints: generate, chat, eval, train --init, train --resume, inspect, lora merge.

Every file of a folder is damaged every way we could think of: cut short, overwritten with
random bytes (seeded by the case's name), overwritten with a readable file of the wrong shape
(its checksum updated in config.json, as another tool would, so that the damage gets past the
checksum to the parser), and config.json also as valid JSON of the wrong shape. The commands run
in-process through `minitune.cli.main` (fast); one case also runs as a real subprocess.
"""

import io
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability import json_values
from test_train import small_data

from minitune.cli import main
from minitune.run.checkpoint import CheckpointError, _sha256, load_pretrained, save_safetensors

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "tiny.toml")


def _train_argv(data: str, out: Path, steps: int, *extra: str) -> list[str]:
    return [
        "train",
        "--config",
        CONFIG,
        "--data",
        data,
        "--out",
        str(out),
        "--max-steps",
        str(steps),
        "--no-progress",
        "--set",
        "train.valid_data=''",
        "--set",
        "train.valid_fraction=0",
        "--set",
        "train.save_every=1",
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A plain run (run/last has every file, trainer.pt included) and a LoRA run on top of it."""
    root = tmp_path_factory.mktemp("runs")
    data = small_data(root, 16)
    assert main(_train_argv(data, root / "run", 2)) == 0
    lora = _train_argv(
        data, root / "lora", 1, "--init", str(root / "run" / "last"), "--lora-rank", "2"
    )
    assert main(lora) == 0
    assert (root / "lora" / "last" / "adapter.safetensors").is_file()
    return root, data


def _garbage(name: str, size: int) -> bytes:
    return random.Random(name).randbytes(size)  # seeded by the case's name: reproducible


def _rewrite(folder: Path, name: str, data: bytes) -> None:
    """Replace a file and update its size and sha256 in config.json (gets past the checksum)."""
    (folder / name).write_bytes(data)
    info = json.loads((folder / "config.json").read_text())
    info["files"][name] = {"size": len(data), "sha256": _sha256(folder / name)}
    (folder / "config.json").write_text(json.dumps(info))


def _wrong_shape_configs(info: dict) -> dict[str, object]:
    """Valid JSON that is not what config.json should hold."""
    model = info["model"]
    files = info["files"]
    return {
        "list": [info],
        "string": "config",
        "null": None,
        "no-model": {k: v for k, v in info.items() if k != "model"},
        "model-is-a-list": {**info, "model": list(model.values())},
        "model-field-wrong-type": {**info, "model": {**model, "d_model": "wide"}},
        "model-unknown-field": {**info, "model": {**model, "d_modle": 32}},
        "model-far-too-large": {**info, "model": {**model, "vocab_size": 10**12}},
        "model-other-shape": {**info, "model": {**model, "n_decoder_layers": 3}},
        "files-is-a-list": {**info, "files": list(files)},
        "files-entry-is-a-number": {**info, "files": {**files, "model.safetensors": 5}},
        "files-entry-climbs-out": {**info, "files": {"../config.json": files["tokenizer.model"]}},
        "step-is-a-string": {**info, "step": "two"},
    }


def _damages(name: str) -> list[str]:
    if name == "config.json":
        example = {"model": {}, "files": {"tokenizer.model": {}}}
        return ["truncated", "garbage", *(f"json:{k}" for k in _wrong_shape_configs(example))]
    return ["truncated", "garbage", "rewritten"]


def _damage(folder: Path, name: str, damage: str) -> None:
    path = folder / name
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(_garbage(f"{folder.name}/{name}", len(raw)))
    elif damage.startswith("json:"):
        path.write_text(json.dumps(_wrong_shape_configs(json.loads(raw))[damage[5:]]))
    elif name.endswith(".safetensors"):  # a readable safetensors file with the wrong tensors
        save_safetensors({"embed.weight": torch.zeros(3, 3)}, folder / "wrong.safetensors")
        _rewrite(folder, name, (folder / "wrong.safetensors").read_bytes())
        (folder / "wrong.safetensors").unlink()
    elif name == "trainer.pt":  # a readable torch file holding something else
        buffer = io.BytesIO()
        torch.save([1, 2, 3], buffer)
        _rewrite(folder, name, buffer.getvalue())
    else:  # tokenizer.model: random bytes, checksum updated
        _rewrite(folder, name, _garbage(name, len(raw)))


def _argv(command: str, folder: Path, out: Path, data: str) -> list[str]:
    ckpt = ["--checkpoint", str(folder)]
    return {
        "generate": ["generate", *ckpt, "--max-new-tokens", "2", "What is 1 + 2?"],
        "chat": ["chat", *ckpt, "--max-new-tokens", "2"],
        "eval": ["eval", *ckpt, "--data", data, "--limit", "1", "--max-new-tokens", "2"],
        "inspect": [
            "inspect",
            *ckpt,
            "--out",
            str(out / "pictures"),
            "--max-new-tokens",
            "2",
            "hi",
        ],
        "train --init": _train_argv(data, out / "new", 1, "--init", str(folder)),
        "train --resume": _train_argv(data, folder.parent, 3, "--resume", "--force"),
        "lora merge": ["lora", "merge", *ckpt, "--out", str(out / "merged")],
    }[command]


PLAIN_COMMANDS = ["generate", "chat", "eval", "inspect", "train --init", "train --resume"]
CASES = [
    (command, "run", name, damage)
    for command in PLAIN_COMMANDS
    for name in ("config.json", "model.safetensors", "tokenizer.model", "trainer.pt")
    for damage in _damages(name)
    # files a command never reads, replaced by readable ones, change nothing it does: --resume
    # uses the run's own tokenizer, the other commands do not read trainer.pt
    if not (
        damage == "rewritten"
        and (name, command == "train --resume")
        in [("tokenizer.model", True), ("trainer.pt", False)]
    )
] + [
    ("lora merge", "lora", name, damage)
    for name in ("config.json", "adapter.safetensors", "tokenizer.model")
    for damage in _damages(name)
]


@pytest.mark.parametrize("command,run,name,damage", CASES)
def test_damaged_file_is_one_line_naming_it_and_status_2(
    runs, tmp_path, capsys, monkeypatch, command, run, name, damage
):
    root, data = runs
    shutil.copytree(root / run, tmp_path / run)
    folder = tmp_path / run / "last"
    _damage(folder, name, damage)
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n\n"))  # for chat
    capsys.readouterr()
    status = main(_argv(command, folder, tmp_path, data))
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("minitune: error: ") and err.count("\n") == 1, err
    assert str(folder / name) in err or (name == "config.json" and str(folder) in err), err


def test_the_issue_case_as_a_real_command(runs, tmp_path):
    """A config.json cut short used to end generate in json.decoder.JSONDecodeError."""
    root, _ = runs
    shutil.copytree(root / "run", tmp_path / "run")
    folder = tmp_path / "run" / "last"
    _damage(folder, "config.json", "truncated")
    done = subprocess.run(
        [sys.executable, "-m", "minitune", "generate", "--checkpoint", str(folder), "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"minitune: error: {folder / 'config.json'}: not valid JSON")
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def _mutations():
    """A path into config.json (a top-level field, a model field or a file entry), a value."""
    top = st.sampled_from(["model", "files", "lora", "base", "step", "tokenizer_sha", "train"])
    model = st.sampled_from(
        [
            "vocab_size",
            "d_model",
            "n_heads",
            "d_ff",
            "n_encoder_layers",
            "position",
            "ffn",
            "norm",
            "dropout",
            "tie_embeddings",
        ]
    )
    entry = st.sampled_from(["model.safetensors", "tokenizer.model", "trainer.pt"])
    path = st.one_of(
        top.map(lambda k: (k,)),
        model.map(lambda k: ("model", k)),
        entry.map(lambda k: ("files", k)),
        st.tuples(st.just("files"), entry, st.sampled_from(["size", "sha256"])),
    )
    return st.lists(st.tuples(path, json_values), min_size=1, max_size=3)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_mutations())
def test_any_json_in_config_gives_a_model_or_an_error_naming_the_folder(runs, tmp_path, mutations):
    root, _ = runs
    folder = tmp_path / "fuzz"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(root / "run" / "last", folder)
    info = json.loads((folder / "config.json").read_text())
    for path, value in mutations:
        target = info
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = value
    (folder / "config.json").write_text(json.dumps(info))
    try:
        model, _, _ = load_pretrained(folder)
    except CheckpointError as err:
        assert str(folder) in str(err), (mutations, err)
        return
    assert model.num_parameters() > 0
