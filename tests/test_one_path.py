"""One code path: every command runs the classes in minitune/layers/, and the one fused branch
inside them (attention's scaled_dot_product_attention) gives the numbers of the explicit
arithmetic.

A spy wrapped around `Attention.attend` on the class sees calls under each command; with the
fused kernels off (`--fused-kernels off`, and `auto` on a CPU; model.use_fused_kernels(False)) an
edit to the explicit arithmetic (`attention_reference`) takes effect under each command.
"""

import json

import pytest
import torch
from conftest import random_batch, tiny_model
from test_train import ROOT, read_metrics, small_data, tiny_run

import minitune.layers.attention as attention_module
from minitune import PRESETS, ModelConfig, Seq2SeqTransformer, cross_entropy_loss, shift_right
from minitune.cli import main
from minitune.layers import registry
from minitune.layers.attention import Attention
from minitune.layers.feedforward import FeedForward
from minitune.run.checkpoint import load_model, save_checkpoint
from minitune.train import train

HEADS = {"no copy head": dict(copy_head=False), "copy head": dict(copy_head=True)}


# ---- every layer is the registry's class -----------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_layer_of_every_preset_is_the_registrys_class(name):
    cfg = ModelConfig.preset(name)
    with torch.device("meta"):  # shapes only: t5-base is large
        model = Seq2SeqTransformer(cfg)
    attention = registry.resolve("attention", cfg.attention)
    attentions = [m for m in model.modules() if isinstance(m, Attention)]
    assert attentions and {type(m) for m in attentions} == {attention}
    ffs = [m for m in model.modules() if isinstance(m, FeedForward)]
    assert ffs and {type(m) for m in ffs} == {registry.resolve("ffn", cfg.ffn)}
    for module in model.modules():  # nothing from outside the layers a learner reads
        assert type(module).__module__.startswith(("minitune.", "torch.")), type(module)


def test_a_loaded_model_is_built_of_the_same_classes_whatever_its_config_says(tmp_path):
    """A config.json of an earlier version that saved a path ("impl": "fast") loads into the
    one path there is, with the same numbers."""
    from minitune.run.paths import find_shipped

    model = tiny_model(vocab_size=3000)
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, model, {"step": 0}, find_shipped("tokenizer/minitune.model"))
    config = json.loads((folder / "config.json").read_text())
    assert "impl" not in config["model"]
    config["model"]["impl"] = "fast"  # as checkpoints of earlier versions have it
    (folder / "config.json").write_text(json.dumps(config))
    loaded, _ = load_model(folder)
    assert {type(m) for m in loaded.modules() if isinstance(m, Attention)} == {Attention}
    input_ids, mask, dec = random_batch()
    torch.testing.assert_close(loaded(input_ids, dec, mask), model(input_ids, dec, mask))


def test_load_t5_builds_the_same_classes(tmp_path):
    from minitune import export_t5, load_t5

    model = tiny_model(ffn="gated-gelu", tie_embeddings=False, scale_attention=False)
    export_t5(model, tmp_path / "t5")
    loaded = load_t5(tmp_path / "t5")
    assert {type(m) for m in loaded.modules() if isinstance(m, Attention)} == {Attention}
    assert not loaded.fused_kernels  # a loaded model, like a new one, runs the explicit steps


# ---- the fused branch equals the explicit arithmetic -----------------------------------------


@pytest.mark.parametrize("head", list(HEADS))
def test_fused_and_explicit_give_the_same_training_losses_and_weights(head):
    """Three AdamW steps from the same weights, fused kernels on and off."""
    input_ids, mask, _ = random_batch(B=4, S=9)
    labels = torch.randint(3, 128, (4, 5))
    labels[:, -1] = 1
    labels[3, 3:] = -100  # a shorter target
    dec = shift_right(labels, 0, 0)
    losses, models = {}, {}
    for fused in (True, False):
        model = tiny_model(seed=3, fused=fused, dropout=0.0, ffn="gated-gelu", **HEADS[head])
        optimizer = torch.optim.AdamW(model.train().parameters(), lr=1e-2)
        losses[fused] = []
        for _ in range(3):
            loss = cross_entropy_loss(model(input_ids, dec, mask), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[fused].append(loss.item())
        models[fused] = model
    assert losses[True] == pytest.approx(losses[False], rel=1e-5, abs=1e-6)
    assert losses[True][-1] < losses[True][0]  # the steps did something
    explicit = models[False].state_dict()
    for name, value in models[True].state_dict().items():
        torch.testing.assert_close(value, explicit[name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize(
    "decoding",
    [dict(num_beams=1), dict(num_beams=3), dict(num_beams=3, early_stopping=False)],
    ids=["greedy", "beam", "beam-late-stop"],
)
def test_fused_and_explicit_generate_the_same_tokens(head, decoding):
    model = tiny_model(seed=1, ffn="gated-gelu", **HEADS[head])
    input_ids, mask, _ = random_batch(seed=7)  # rows padded differently
    fused = model.generate(input_ids, mask, max_new_tokens=10, **decoding)
    model.use_fused_kernels(False)
    explicit = model.generate(input_ids, mask, max_new_tokens=10, **decoding)
    assert fused.shape[1] > 0 and torch.equal(fused, explicit)


def test_seeded_sampling_gives_the_same_tokens_fused_and_explicit():
    model = tiny_model(seed=4)
    input_ids, mask, _ = random_batch(seed=3)
    kwargs = dict(max_new_tokens=8, do_sample=True, temperature=1.3, top_k=20, top_p=0.9)
    fused = model.generate(input_ids, mask, generator=torch.Generator().manual_seed(5), **kwargs)
    model.use_fused_kernels(False)
    explicit = model.generate(input_ids, mask, generator=torch.Generator().manual_seed(5), **kwargs)
    assert torch.equal(fused, explicit)


# ---- every command runs Attention.attend; the switch reaches the explicit arithmetic ---------


class Spy:
    """Counts calls of a function while passing them on."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


@pytest.fixture
def spies(monkeypatch):
    """Spies on `Attention.attend` (the class), on `attention_reference` (the explicit four
    steps) and on PyTorch's fused kernel, which attend calls only with the fused kernels on."""
    attend = Spy(Attention.attend)
    monkeypatch.setattr(Attention, "attend", lambda self, *a, **k: attend(self, *a, **k))
    explicit = Spy(attention_module.attention_reference)
    monkeypatch.setattr(attention_module, "attention_reference", explicit)
    fused = Spy(torch.nn.functional.scaled_dot_product_attention)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", fused)
    return attend, explicit, fused


def check_spies(spies, fused: bool) -> None:
    """On a CPU `--fused-kernels auto` is off: only "on" runs the fused kernel."""
    attend, explicit, kernel = spies
    assert attend.calls > 0  # a breakpoint on Attention.attend fires under the command
    assert attend.calls == explicit.calls + kernel.calls  # each call takes one of the branches
    assert (kernel.calls > 0) == fused  # off: only the explicit four steps run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny model trained for one step."""
    tmp = tmp_path_factory.mktemp("one_path")
    model_cfg, cfg = tiny_run(tmp, max_steps=1, valid_data=None, valid_fraction=0)
    train(model_cfg, cfg, progress=False, log=lambda *a: None)
    return str(tmp / "run" / "last")


def training_args(tmp_path, command: str) -> list[str]:
    out = ["--out", str(tmp_path / command), "--max-steps", "2", "--no-progress"]
    data = ["--data", small_data(tmp_path, 30) if command == "train" else small_text(tmp_path)]
    return [command, "--config", "tiny", *data, *out, "--set", "train.batch_size=4"]


def small_text(tmp_path) -> str:
    """The first documents of the shipped pretraining corpus (the whole file takes the tiny
    run half a minute to read and corrupt; a few documents exercise the same code)."""
    lines = (ROOT / "data" / "pretrain.txt").read_text(encoding="utf-8").splitlines()[:400]
    path = tmp_path / "small.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def use_args(checkpoint: str, command: str, tmp_path) -> list[str]:
    if command == "eval":
        return ["eval", "--checkpoint", checkpoint, "--data", small_data(tmp_path, 3)]
    if command == "generate":
        return ["generate", "--checkpoint", checkpoint, "--max-new-tokens", "3", "hi there"]
    return ["chat", "--checkpoint", checkpoint, "--max-new-tokens", "3"]


KERNELS = {"auto": [], "on": ["--fused-kernels", "on"], "off": ["--fused-kernels", "off"]}


@pytest.mark.parametrize("kernels", list(KERNELS))
@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_training_commands_run_attention_attend(command, kernels, spies, tmp_path):
    assert main([*training_args(tmp_path, command), *KERNELS[kernels]]) == 0
    check_spies(spies, fused=kernels == "on")


@pytest.mark.parametrize("kernels", list(KERNELS))
@pytest.mark.parametrize("command", ["eval", "generate", "chat"])
def test_commands_that_use_a_checkpoint_run_attention_attend(
    command, kernels, spies, checkpoint, tmp_path, monkeypatch, capsys
):
    lines = iter(["hello there", ""])  # an empty line ends the chat
    monkeypatch.setattr("builtins.input", lambda _: next(lines))  # chat: one turn
    argv = use_args(checkpoint, command, tmp_path)
    assert main([*argv[:3], *KERNELS[kernels], *argv[3:]]) == 0
    check_spies(spies, fused=kernels == "on")


@pytest.mark.slow
@pytest.mark.parametrize("kernels", list(KERNELS))
def test_the_pipeline_runs_attention_attend(kernels, spies, tmp_path):
    argv = ["pipeline", "--config", "tiny", "--max-steps", "2", "--limit", "2"]
    argv += ["--out", str(tmp_path / "pipe"), "--no-progress", "--set", "train.batch_size=4"]
    assert main([*argv, *KERNELS[kernels]]) == 0
    check_spies(spies, fused=kernels == "on")


def test_an_edit_to_the_explicit_arithmetic_takes_effect_with_the_switch_off(monkeypatch):
    model = tiny_model(seed=5)  # fused kernels on
    input_ids, mask, dec = random_batch()
    before = model(input_ids, dec, mask)
    real = attention_module.attention_reference

    def uniform(q, k, v, attn_bias, scale, dropout=0.0):  # a student's edit: ignore the scores
        return real(q, k, v, attn_bias, 0.0, dropout)

    monkeypatch.setattr(attention_module, "attention_reference", uniform)
    torch.testing.assert_close(model(input_ids, dec, mask), before)  # fused: the edit is not read
    model.use_fused_kernels(False)
    assert not torch.allclose(model(input_ids, dec, mask), before, atol=1e-3)  # now it is


def test_train_config_and_flag_set_the_switch(tmp_path):
    """TrainConfig.fused_kernels (the flag --fused-kernels) reaches the model ("auto": off on a
    CPU) and the log's model line; the losses are the same either way."""
    losses = {}
    for kernels in ("on", "off", "auto"):
        (tmp_path / kernels).mkdir()
        model_cfg, cfg = tiny_run(
            tmp_path / kernels,
            max_steps=3,
            log_every=1,
            valid_data=None,
            valid_fraction=0,
            fused_kernels=kernels,
        )
        lines = []
        train(model_cfg, cfg, progress=False, log=lines.append)
        said = "fused kernels" if kernels == "on" else "explicit arithmetic"
        assert any(line.startswith("model: ") and said in line for line in lines), lines
        metrics = read_metrics(tmp_path / kernels / "run")
        losses[kernels] = [r["loss"] for r in metrics if "loss" in r]
    assert len(losses["on"]) == 3 and losses["off"] == losses["auto"]
    assert losses["on"] == pytest.approx(losses["off"], rel=1e-4)
    with pytest.raises(ValueError, match="fused_kernels"):
        tiny_run(tmp_path, fused_kernels="yes")
    from minitune.cli import build_parser
    from minitune.cli.training import command_line

    parser = build_parser()
    for command in ("train", "pretrain", "pipeline"):
        sources = command_line(parser.parse_args([command, "--fused-kernels", "on"]))
        assert [(source.where, source.train) for source in sources] == [
            ("--fused-kernels", {"fused_kernels": "on"})
        ]
        assert command_line(parser.parse_args([command])) == []  # the config's own


# ---- checkpoints and adapters saved with the earlier tensor names still load ----------------


def earlier_names(state: dict) -> dict:
    """A state dict as minitune named it before blocks held plain attributes."""
    import re

    pattern = re.compile(r"(layers\.\d+\.(?:self_attn|cross_attn|ff))(_norm)?\.")
    return {
        pattern.sub(lambda m: m[1] + (".norm." if m[2] else ".sublayer."), k): v
        for k, v in state.items()
    }


def test_a_checkpoint_and_an_adapter_with_earlier_tensor_names_load(tmp_path):
    from minitune.lora import add_lora
    from minitune.run.checkpoint import load_pretrained, weights_fingerprint
    from minitune.run.paths import find_shipped

    tokenizer = find_shipped("tokenizer/minitune.model")
    model = tiny_model(seed=6, vocab_size=3000)
    old = earlier_names(model.state_dict())
    assert "decoder.layers.0.self_attn.sublayer.q.weight" in old
    assert "decoder.layers.0.cross_attn.norm.weight" in old and len(old) == len(model.state_dict())
    save_checkpoint(tmp_path / "base", model, {"step": 0}, tokenizer, state_dict=old)
    loaded, _ = load_model(tmp_path / "base")
    input_ids, mask, dec = random_batch()
    expected = model(input_ids, dec, mask)
    torch.testing.assert_close(loaded(input_ids, dec, mask), expected)

    add_lora(model, rank=2)
    with torch.no_grad():  # adapters that change the output (B starts at zero)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    base = {"path": str(tmp_path / "base"), "sha": weights_fingerprint(tmp_path / "base")}
    info = {"step": 1, "base": base}
    save_checkpoint(
        tmp_path / "lora", model, info, tokenizer, state_dict=earlier_names(model.state_dict())
    )
    adapted, _, _ = load_pretrained(tmp_path / "lora")
    with torch.no_grad():
        torch.testing.assert_close(adapted(input_ids, dec, mask), model(input_ids, dec, mask))
    assert not torch.allclose(adapted(input_ids, dec, mask), expected, atol=1e-4)
