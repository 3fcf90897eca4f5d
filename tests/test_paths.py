"""Readable by default, fast by choice: the two paths a model can run, and the one switch.

A model built in Python runs the teaching core (minitune/layers/, `model.decode`); the
command line's jobs switch it to the production shell (minitune/fast/) with
`model.set_impl("fast")`. These tests prove the two give the same losses and the same tokens,
with and without the copy head, and that the switch keeps LoRA adapters and device moves working.
"""

import json

import pytest
import torch
from conftest import random_batch, tiny_model
from test_train import read_metrics, tiny_run

import minitune.generate
from minitune import PRESETS, ModelConfig, Seq2SeqTransformer, cross_entropy_loss, shift_right
from minitune.checkpoint import load_model, save_checkpoint
from minitune.fast import FAST_TWINS, FastAttention, FastDecodeStep, FastFeedForward
from minitune.generate import ModelStep
from minitune.layers.attention import Attention
from minitune.layers.feedforward import FeedForward
from minitune.train import train

TEACHING = (Attention, FeedForward)
HEADS = {"no copy head": dict(copy_head=False), "copy head": dict(copy_head=True)}


def layer_classes(model) -> set[type]:
    """The classes of the layers that have a production twin (or are one)."""
    kinds = {*FAST_TWINS, *FAST_TWINS.values()}
    return {type(m) for m in model.modules() if type(m) in kinds}


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_model_built_in_python_runs_the_teaching_classes(name):
    with torch.device("meta"):  # shapes only: t5-base is large
        model = Seq2SeqTransformer(ModelConfig.preset(name))
    assert model.impl == "reference"
    assert layer_classes(model) == set(TEACHING)


def test_a_loaded_model_runs_the_teaching_classes_whatever_its_checkpoint_says(tmp_path):
    """A checkpoint written before the path left the model config saved "impl": "fast"; the
    path is not taken from it."""
    from minitune.paths import find_shipped

    model = tiny_model(impl="fast", vocab_size=3000)
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, model, {"step": 0}, find_shipped("tokenizer/minitune.model"))
    config = json.loads((folder / "config.json").read_text())
    assert "impl" not in config["model"]  # the path is not saved
    config["model"]["impl"] = "fast"  # as older checkpoints have it
    (folder / "config.json").write_text(json.dumps(config))
    loaded, _ = load_model(folder)
    assert loaded.impl == "reference" and layer_classes(loaded) == set(TEACHING)


def test_load_t5_runs_the_teaching_classes(tmp_path):
    from minitune import export_t5, load_t5

    model = tiny_model(impl="fast", ffn="gated-gelu", tie_embeddings=False, scale_attention=False)
    export_t5(model, tmp_path / "t5")
    loaded = load_t5(tmp_path / "t5")
    assert loaded.impl == "reference" and layer_classes(loaded) == set(TEACHING)


def test_one_switch_flips_a_live_model_both_ways():
    model = tiny_model()
    input_ids, mask, dec = random_batch()
    reference = model(input_ids, dec, mask)
    weights = {k: v.data_ptr() for k, v in model.state_dict().items()}
    model.set_impl("fast")
    assert model.impl == "fast" and layer_classes(model) == {FastAttention, FastFeedForward}
    assert {k: v.data_ptr() for k, v in model.state_dict().items()} == weights  # same tensors
    torch.testing.assert_close(model(input_ids, dec, mask), reference, atol=1e-5, rtol=1e-5)
    model.set_impl("reference")
    assert model.impl == "reference" and layer_classes(model) == set(TEACHING)
    with pytest.raises(ValueError, match="impl must be one of 'reference', 'fast', got 'flash'"):
        model.set_impl("flash")


@pytest.mark.parametrize("head", list(HEADS))
def test_both_paths_give_the_same_training_losses(head):
    """Three AdamW steps from the same weights on each path: the same losses and weights."""
    input_ids, mask, _ = random_batch(B=4, S=9)
    labels = torch.randint(3, 128, (4, 5))
    labels[:, -1] = 1
    labels[3, 3:] = -100  # a shorter target
    dec = shift_right(labels, 0, 0)
    losses, models = {}, {}
    for impl in ("reference", "fast"):
        model = tiny_model(seed=3, impl=impl, dropout=0.0, **HEADS[head]).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        losses[impl] = []
        for _ in range(3):
            loss = cross_entropy_loss(model(input_ids, dec, mask), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[impl].append(loss.item())
        models[impl] = model
    assert losses["reference"] == pytest.approx(losses["fast"], rel=1e-5, abs=1e-6)
    assert losses["reference"][-1] < losses["reference"][0]  # the steps did something
    fast_weights = models["fast"].state_dict()
    for name, value in models["reference"].state_dict().items():
        torch.testing.assert_close(fast_weights[name], value, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("decoding", [dict(num_beams=1), dict(num_beams=3)], ids=["greedy", "beam"])
def test_both_paths_generate_the_same_tokens(head, decoding, monkeypatch):
    model = tiny_model(seed=1, **HEADS[head])
    input_ids, mask, _ = random_batch(seed=7)  # rows padded differently
    steps = []  # which decoding step each call used
    real = minitune.generate.decode_step

    def spy(*args):
        step = real(*args)
        steps.append(type(step))
        return step

    monkeypatch.setattr(minitune.generate, "decode_step", spy)
    reference = model.generate(input_ids, mask, max_new_tokens=10, **decoding)
    model.set_impl("fast")
    fast = model.generate(input_ids, mask, max_new_tokens=10, **decoding)
    assert steps == [ModelStep, FastDecodeStep]  # model.decode by default; the fast step after
    assert reference.shape[1] > 0 and torch.equal(fast, reference)


def test_the_switch_keeps_lora_adapters_and_device_moves():
    from minitune.lora import add_lora

    model = tiny_model(seed=2)
    add_lora(model)
    with torch.no_grad():  # adapters that change the output (B starts at zero)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    input_ids, mask, dec = random_batch()
    reference = model(input_ids, dec, mask)
    model.set_impl("fast")
    model = model.double()  # a move (dtype here; devices alike): the classes travel along
    assert layer_classes(model) == {FastAttention, FastFeedForward}
    out = model(input_ids, dec, mask)
    torch.testing.assert_close(out, reference.double(), atol=1e-5, rtol=1e-4)
    out.sum().backward()
    adapters = [p for n, p in model.named_parameters() if "lora_" in n]
    assert adapters and all(p.grad is not None for p in adapters)
    tokens = model.generate(input_ids, mask, max_new_tokens=6)  # LoRA: model.decode, no error
    model.set_impl("reference")
    assert torch.equal(model.generate(input_ids, mask, max_new_tokens=6), tokens)


def test_a_training_run_takes_the_path_it_is_given_and_says_so_first(tmp_path):
    """TrainConfig.impl (--impl): "fast" by default, as the command line trains; "reference"
    the teaching classes. The first log line names the path; the losses are the same."""
    losses, first = {}, {}
    for impl in ("fast", "reference"):
        lines = []
        (tmp_path / impl).mkdir()
        model_cfg, cfg = tiny_run(
            tmp_path / impl,
            max_steps=4,
            log_every=1,
            valid_data=None,
            **({} if impl == "fast" else {"impl": impl}),
        )
        assert cfg.impl == impl
        train(model_cfg, cfg, progress=False, log=lines.append)
        first[impl] = lines[0]
        losses[impl] = [r["loss"] for r in read_metrics(tmp_path / impl / "run") if "loss" in r]
    assert first["fast"].startswith("path: fast") and "--impl reference" in first["fast"]
    assert first["reference"].startswith("path: reference") and "--impl fast" in first["reference"]
    assert len(losses["fast"]) == 4
    assert losses["fast"] == pytest.approx(losses["reference"], rel=1e-4)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny model trained for one step."""
    tmp = tmp_path_factory.mktemp("paths")
    model_cfg, cfg = tiny_run(tmp, max_steps=1, valid_data=None)
    train(model_cfg, cfg, progress=False, log=lambda *a: None)
    return str(tmp / "run" / "last")


@pytest.mark.parametrize(
    "flags, said", [([], "path: fast"), (["--impl", "reference"], "path: reference")]
)
def test_generate_on_the_command_line_says_its_path_first(flags, said, checkpoint, capsys):
    from minitune.cli import main

    argv = ["generate", "--checkpoint", checkpoint, "--max-new-tokens", "3", *flags, "hi"]
    assert main(argv) == 0
    assert capsys.readouterr().err.splitlines()[0].startswith(said)


def test_the_command_lines_impl_flag():
    """--impl on every job: train/pretrain/pipeline set train.impl (a config may set it too);
    eval/generate/chat load the checkpoint onto that path (default fast)."""
    from minitune.cli import build_parser
    from minitune.cli.run_setup import flag_layers

    parser = build_parser()
    for command in ("train", "pretrain", "pipeline"):
        layers = flag_layers(parser.parse_args([command, "--impl", "reference"]))
        assert [(layer.where, layer.train) for layer in layers] == [
            ("--impl", {"impl": "reference"})
        ]
        assert flag_layers(parser.parse_args([command])) == []  # the config's own
    for command in ("eval --data x.jsonl", "generate", "chat"):
        args = parser.parse_args([*command.split(), "--checkpoint", "c"])
        assert args.impl == "fast"
