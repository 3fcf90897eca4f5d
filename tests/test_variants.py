"""The coursework variants: rotary positions, ALiBi, grouped-query attention, QK-norm, LoRA, and
the pictures and `minitune check` command built on them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import import_or_skip, random_batch, tiny_model
from test_train import tiny_run

from minitune import ModelConfig, Seq2SeqTransformer, cross_entropy_loss
from minitune.layers.alibi import ALiBi, alibi_slopes
from minitune.layers.positions import token_positions
from minitune.layers.rotary import RotaryPositions
from minitune.lora import LoRALinear, add_lora, count_parameters, lora_state_dict, merge_lora
from minitune.run.checkpoint import CheckpointError, load_model
from minitune.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_rotary_scores_depend_only_on_the_distance():
    rope = RotaryPositions(ModelConfig.preset("tiny"))  # d_head 8
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m, n):
        at_m, at_n = token_positions(1, offset=m), token_positions(1, offset=n)
        return (rope.rotate(q, at_m) * rope.rotate(k, at_n)).sum().item()

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-4)
    assert score(0, 0) == pytest.approx((q * k).sum().item(), abs=1e-5)  # position 0: no turn
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)  # other distance, other score
    # a rotation keeps lengths
    torch.testing.assert_close(rope.rotate(q, token_positions(1, offset=7)).norm(), q.norm())


def test_alibi_slopes_and_bias_worked_example():
    assert alibi_slopes(4).tolist() == [1 / 4, 1 / 16, 1 / 64, 1 / 256]
    assert alibi_slopes(8).tolist()[0] == 0.5
    six = alibi_slopes(6).tolist()  # 4 from the power of two below, 2 more from 8's odd ones
    assert six == pytest.approx([1 / 4, 1 / 16, 1 / 64, 1 / 256, 2**-1, 2**-3])
    bias = ALiBi(ModelConfig.preset("tiny"), causal=True).position_bias(3, 3)  # 4 heads
    assert bias[0, 0].tolist() == [[0.0, -0.25, -0.5], [-0.25, 0.0, -0.25], [-0.5, -0.25, 0.0]]


@pytest.mark.parametrize("position", ["rotary", "alibi"])
def test_new_position_schemes_run_past_the_training_length(position):
    model = tiny_model(position=position)
    input_ids = torch.randint(3, 128, (1, 700))  # longer than any learned table
    assert model.generate(input_ids, max_new_tokens=3).shape == (1, 3)


def test_grouped_query_attention_equals_multi_head_with_shared_heads():
    # GQA with 2 K/V heads == MHA whose K/V heads come in identical pairs
    torch.manual_seed(0)
    gqa = Seq2SeqTransformer(ModelConfig.preset("tiny", n_kv_heads=2)).eval()
    mha = Seq2SeqTransformer(ModelConfig.preset("tiny")).eval()
    state = gqa.state_dict()
    for name, value in state.items():
        if name.endswith((".k.weight", ".v.weight")):  # (2·D, C) -> (4·D, C), heads repeated
            value = value.view(2, 8, 32).repeat_interleave(2, dim=0).reshape(32, 32)
        mha.state_dict()[name].copy_(value)
    input_ids, mask, dec = random_batch()
    torch.testing.assert_close(gqa(input_ids, dec, mask), mha(input_ids, dec, mask))
    n_gqa, n_mha = gqa.num_parameters(), mha.num_parameters()
    assert n_mha - n_gqa == 2 * 2 * 3 * 16 * 32  # k and v, half the heads, 6 attention layers


def test_multi_query_cache_holds_one_head():
    model = tiny_model(n_kv_heads=1)
    input_ids, mask, _ = random_batch()
    cache = model.new_cache(max_length=4, source_length=input_ids.shape[1])
    memory = model.encode(input_ids, mask)
    model.decode(torch.zeros(3, 1, dtype=torch.long), memory, mask, cache=cache)
    assert cache.self_attn[0].k.shape == (3, 1, 4, 8)  # (B, H_kv, max_length, D)


def test_qk_norm_bounds_the_scores():
    from minitune.layers.qk_norm import QKNormAttention

    attention = QKNormAttention(ModelConfig.preset("tiny"))  # d_model 32, 4 heads of D = 8
    x = 1e4 * torch.randn(1, 5, 32)
    q, k, _ = attention.project(x, x)
    scores = q @ k.transpose(-2, -1)
    assert scores.abs().max() <= 8 + 1e-3  # |q'·k'| <= D with unit gains


# ---- LoRA --------------------------------------------------------------------------------------


def test_a_fresh_adapter_changes_nothing_and_only_adapters_train():
    model = tiny_model().requires_grad_(False)  # frozen, as under LoRA (kernels may differ)
    input_ids, mask, dec = random_batch()
    before = model(input_ids, dec, mask)
    settings = add_lora(model, rank=4)
    torch.testing.assert_close(model(input_ids, dec, mask), before, atol=0, rtol=0)
    n_adapted = sum(isinstance(m, LoRALinear) for m in model.modules())
    assert n_adapted == 2 * 6  # q and v of 2 encoder + 2 decoder self + 2 cross layers
    trainable, total = count_parameters(model)
    assert trainable == n_adapted * 4 * (32 + 32) and total > 10 * trainable
    assert settings.alpha == 16.0 and settings.targets == ("q", "v")
    model.train()
    cross_entropy_loss(model(input_ids, dec, mask), dec.roll(-1, 1)).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (".lora_" in name), name
    lora_b_grads = [p.grad.abs().sum() for n, p in model.named_parameters() if "lora_B" in n]
    assert all(g > 0 for g in lora_b_grads)  # B gets a gradient although it starts at 0


def test_merged_equals_unmerged_and_where_selects_layers():
    model = tiny_model()
    add_lora(model, rank=2, targets=("q", "k", "v", "o"), where=("decoder", "cross"), alpha=4.0)
    assert not any(isinstance(m, LoRALinear) for m in model.encoder.modules())
    with torch.no_grad():
        for p in lora_state_dict(model).values():
            p.normal_(std=0.2)  # as after training
    input_ids, mask, dec = random_batch()
    adapted = model(input_ids, dec, mask)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert model.lora is None and all(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(model(input_ids, dec, mask), adapted, atol=1e-5, rtol=1e-5)


def test_bad_lora_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="targets=\\['x'\\]: allowed are q, k, v, o"):
        add_lora(tiny_model(), targets=("x",))
    with pytest.raises(ValueError, match=r"give train\.init"):
        tiny_run(tmp_path, lora_rank=4)


def test_lora_training_saves_adapters_only_and_loads_back(tmp_path):
    (tmp_path / "base").mkdir()
    base_cfg, cfg = tiny_run(
        tmp_path / "base", max_steps=6, eval_every=100, valid_data=None, valid_fraction=0
    )
    train(base_cfg, cfg, progress=False, log=lambda *a: None)
    base = tmp_path / "base" / "run" / "last"
    lines = []
    (tmp_path / "lora").mkdir()
    model_cfg, cfg = tiny_run(
        tmp_path / "lora",
        max_steps=8,
        eval_every=4,
        init=str(base),
        lora_rank=4,
        out=str(tmp_path / "lora" / "run"),
    )
    train(model_cfg, cfg, progress=False, log=lines.append)
    assert any("trainable of" in line for line in lines)
    run = tmp_path / "lora" / "run"
    for name in ("best", "last"):
        files = {p.name for p in (run / name).iterdir()}
        assert "adapter.safetensors" in files and "model.safetensors" not in files
    size = (run / "last" / "adapter.safetensors").stat().st_size
    assert size < 0.2 * (base / "model.safetensors").stat().st_size
    model, info = load_model(run / "last")
    assert info["lora"]["rank"] == 4 and model.lora.rank == 4
    base_model, _ = load_model(base)
    moved = [n for n, p in model.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert moved  # the adapters trained
    frozen = {k: v for k, v in model.state_dict().items() if ".lora_" not in k}
    for name, value in base_model.state_dict().items():  # the base is untouched
        ours = frozen.get(name, frozen.get(name.replace(".weight", ".base.weight")))
        assert torch.equal(ours, value), name

    # resume continues the adapters; merge writes a plain checkpoint with the same outputs
    model_cfg.max_steps = cfg.max_steps = 10
    train(model_cfg, cfg, resume=True, progress=False, log=lambda *a: None)
    merged_dir = tmp_path / "merged"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "minitune",
            "lora",
            "merge",
            "--checkpoint",
            str(run / "last"),
            "--out",
            str(merged_dir),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    merged, info = load_model(merged_dir)
    assert "lora" not in info and (merged_dir / "model.safetensors").is_file()
    adapted, _ = load_model(run / "last")
    input_ids, mask, dec = random_batch(vocab=3000)
    torch.testing.assert_close(
        merged(input_ids, dec, mask), adapted(input_ids, dec, mask), atol=1e-4, rtol=1e-4
    )

    # a changed or missing base is refused by name
    (base / "model.safetensors").write_bytes(
        (base / "model.safetensors").read_bytes()[:-4] + b"abcd"
    )
    with pytest.raises(CheckpointError, match="has changed since the adapters were trained"):
        load_model(run / "last")
    base.rename(tmp_path / "moved")
    with pytest.raises(CheckpointError, match="not there any more"):
        load_model(run / "last")


# ---- the command line: check and inspect ----------------------------------------------------


def _minitune(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "minitune", *args], capture_output=True, text=True, cwd=cwd
    )


def test_check_command_passes_a_good_variant_and_fails_a_broken_one(tmp_path):
    (tmp_path / "my_attention.py").write_text(
        "from minitune.layers.attention import Attention\n\n\n"
        "class NoMaskAttention(Attention):\n"
        "    def forward(self, x, context, attn_bias=None, cache=None, rotary=None):\n"
        "        return super().forward(x, context, None, cache, rotary)\n"
    )
    good = _minitune("check", "attention=qk-norm", "--set", "n_kv_heads=2", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "1 of 1 variants pass" in good.stdout and "n_kv_heads=2" in good.stdout
    bad = _minitune("check", "attention=my_attention:NoMaskAttention", cwd=tmp_path)
    assert bad.returncode == 1
    assert "FAIL  causal masking" in bad.stdout and "Traceback" not in bad.stderr
    typo = _minitune("check", "attention=my_atention:NoMaskAttention", cwd=tmp_path)
    assert typo.returncode == 2 and "cannot import 'my_atention'" in typo.stderr


def test_inspect_writes_the_pictures(tmp_path):
    import_or_skip("matplotlib")
    from minitune.run.checkpoint import save_checkpoint

    model = Seq2SeqTransformer(ModelConfig.preset("tiny", vocab_size=3000))
    save_checkpoint(tmp_path / "ckpt", model, {"step": 0}, ROOT / "tokenizer" / "minitune.model")
    result = _minitune(
        "inspect",
        "--checkpoint",
        str(tmp_path / "ckpt"),
        "--out",
        str(tmp_path / "pics"),
        "--max-new-tokens",
        "4",
        "What is 2 + 3?",
    )
    assert result.returncode == 0, result.stderr
    for name in (
        "attention_encoder_self",
        "attention_decoder_self",
        "attention_cross",
        "masks",
        "position_bias",
    ):
        data = (tmp_path / "pics" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    info = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert info["model"]["attention"] == "multi-head"
