"""T5 interop beyond the parity tests: the layout transformers 5 writes, and `minitune export`
of every T5-architecture model (transformers, the `parity` extra, reads it with equal logits)."""

import json
import re
from pathlib import Path

import pytest
import torch

from minitune import ModelConfig, Seq2SeqTransformer, export_t5, load_t5
from minitune.cli import main
from minitune.interop.t5 import t5_problems
from minitune.run.checkpoint import load_safetensors, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tokenizer" / "minitune.model"


def batch(vocab: int):
    g = torch.Generator().manual_seed(3)
    input_ids = torch.randint(3, vocab, (2, 9), generator=g)
    mask = torch.ones_like(input_ids)
    mask[1, 6:] = 0
    dec = torch.randint(3, vocab, (2, 5), generator=g)
    dec[:, 0] = 0
    return input_ids * mask, mask, dec


def assert_same_logits(theirs, ours, vocab: int):
    input_ids, mask, dec = batch(vocab)
    with torch.no_grad():
        expected = theirs(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
        got = ours(input_ids, dec, mask)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-5


def test_head_tying_and_output_scaling_are_separate_settings():
    tied = ModelConfig.preset("tiny")
    assert tied.tie_embeddings and tied.scale_output  # T5 v1.0, minitune's presets
    assert not ModelConfig.preset("t5-v1_1-small").scale_output
    plain = ModelConfig.preset("tiny", scale_output=False)
    torch.manual_seed(0)
    a = Seq2SeqTransformer(tied).eval()
    b = Seq2SeqTransformer(plain).eval()
    b.load_state_dict(a.state_dict())
    input_ids, mask, dec = batch(128)
    with torch.no_grad():
        torch.testing.assert_close(a(input_ids, dec, mask), b(input_ids, dec, mask) * 32**-0.5)


def test_transformers_5_tied_head_without_scaling_loads(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=64,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
    )
    config.tie_word_embeddings, config.scale_decoder_outputs = True, False  # what 5.x writes
    reference = transformers.T5ForConditionalGeneration(config).eval()
    reference.tie_weights()
    reference.save_pretrained(tmp_path / "v11")
    saved = json.loads((tmp_path / "v11" / "config.json").read_text())
    tensors = load_safetensors(tmp_path / "v11" / "model.safetensors")
    if saved.get("scale_decoder_outputs") is not False or "lm_head.weight" in tensors:
        pytest.skip("this transformers version does not write the tied, unscaled layout")
    model = load_t5(tmp_path / "v11")
    assert model.config.tie_embeddings and not model.config.scale_output
    assert_same_logits(reference, model, 64)


CASES = {
    "tiny (scale_attention, tied, scaled)": dict(),
    "relu v1.0": dict(ffn="relu", scale_attention=False),
    "tied without scaling": dict(scale_output=False),
    "untied (v1.1)": dict(tie_embeddings=False, scale_attention=False),
    "uneven stacks": dict(n_decoder_layers=1, d_head=16),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_t5_architecture_exports_with_equal_logits(tmp_path, case):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    model = Seq2SeqTransformer(ModelConfig.preset("tiny", **CASES[case])).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)  # not the init: every weight matters
    export_t5(model, tmp_path / "out", tokenizer_file=TOKENIZER)
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    assert_same_logits(theirs, model, 128)
    assert_same_logits(theirs, load_t5(tmp_path / "out"), 128)  # and back


def test_export_command_and_its_refusal(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(2)
    model = Seq2SeqTransformer(
        ModelConfig.preset("laptop-t5", n_encoder_layers=1, n_decoder_layers=1)
    )
    save_checkpoint(tmp_path / "ckpt", model.eval(), {"step": 0}, TOKENIZER)
    assert (
        main(["export", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "t5")]) == 0
    )
    assert (tmp_path / "t5" / "spiece.model").read_bytes() == TOKENIZER.read_bytes()
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "t5").eval()
    assert_same_logits(theirs, model.eval(), 3000)
    assert (
        main(["export", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "t5")]) == 2
    )
    assert "is not empty" in capsys.readouterr().err

    other = Seq2SeqTransformer(
        ModelConfig.preset("tiny", vocab_size=3000, position="rotary", norm="layer")
    )
    save_checkpoint(tmp_path / "rotary", other, {"step": 0}, TOKENIZER)
    assert (
        main(["export", "--checkpoint", str(tmp_path / "rotary"), "--out", str(tmp_path / "x")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a T5 architecture" in err
    assert "position='rotary'" in err and "norm='layer'" in err and not (tmp_path / "x").exists()


def test_t5_problems_names_each_difference():
    assert t5_problems(ModelConfig.preset("laptop-t5")) == []
    assert [p.split("=")[0] for p in t5_problems(ModelConfig.preset("laptop"))] == ["copy_head"]
    assert t5_problems(ModelConfig.preset("t5-v1_1-small")) == []
    problems = t5_problems(ModelConfig.preset("tiny", n_kv_heads=1, bias=True, ffn="swiglu"))
    assert [p.split("=")[0] for p in problems] == ["attention", "bias", "ffn"]


def test_every_preset_the_export_help_names_exports(tmp_path, capsys):
    from minitune.cli.models import EXPORTABLE_PRESETS
    from minitune.config import PRESETS

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    named = [n for n in PRESETS if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", help_text)]
    assert sorted(named) == sorted(EXPORTABLE_PRESETS)  # names them all, and only those
    t5_presets = [n for n in PRESETS if not t5_problems(ModelConfig.preset(n))]
    assert sorted(t5_presets) == sorted(EXPORTABLE_PRESETS)
    small = dict(vocab_size=128, d_model=32, n_heads=4, d_head=8, d_ff=64)
    for name in named:  # each preset's architecture, at a small shape, exports and loads back
        torch.manual_seed(0)
        cfg = ModelConfig.preset(name, **small, n_encoder_layers=1, n_decoder_layers=1)
        model = Seq2SeqTransformer(cfg).eval()
        export_t5(model, tmp_path / name, tokenizer_file=TOKENIZER)
        input_ids, mask, dec = batch(128)
        with torch.no_grad():
            back = load_t5(tmp_path / name)(input_ids, dec, mask)
            torch.testing.assert_close(back, model(input_ids, dec, mask), rtol=1e-5, atol=1e-5)
