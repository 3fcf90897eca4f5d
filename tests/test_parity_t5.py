"""Parity with an independent reference: Hugging Face's T5 (the `parity` extra; skipped without it).

Tiny random T5 models of both styles are built by the reference implementation, their weights
renamed into minitune's model (`minitune.interop.t5`), and the two must agree: logits on a padded batch,
greedy tokens, beam-search tokens.
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import import_or_skip

transformers = import_or_skip("transformers")  # an error instead where CI installs the extra

from minitune import Seq2SeqTransformer  # noqa: E402
from minitune.interop.t5 import config_from_hf, from_hf_state_dict, to_hf_state_dict  # noqa: E402

STYLES = {
    "v1.0": dict(feed_forward_proj="relu", tie_word_embeddings=True),
    "v1.1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}


def reference_and_ours(style: str, vocab_size: int = 64, seed: int = 0, sharpen: float = 1.0):
    torch.manual_seed(seed)
    hf_config = transformers.T5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        **STYLES[style],
    )
    reference = transformers.T5ForConditionalGeneration(hf_config).eval()
    with torch.no_grad():
        reference.shared.weight.mul_(sharpen)  # larger logits: EOS and beams matter sooner
        if style == "v1.1":  # a head of its own (transformers 5 would otherwise share `shared`)
            reference.lm_head.weight = torch.nn.Parameter(torch.randn(vocab_size, 32) * sharpen)
    cfg = config_from_hf(hf_config.to_dict(), reference.state_dict())  # weights: tied or not
    assert cfg.tie_embeddings == cfg.scale_output == (style == "v1.0")
    ours = Seq2SeqTransformer(cfg).eval()
    ours.load_state_dict(from_hf_state_dict(reference.state_dict(), cfg))
    return reference, ours


def padded_batch(vocab_size: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(2, vocab_size, (3, 11), generator=g)
    mask = torch.ones_like(input_ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return input_ids * mask, mask


def after_eos_as_pad(tokens: torch.Tensor, eos: int = 1, pad: int = 0) -> torch.Tensor:
    """Set every token after a row's first EOS to pad (the reference may pad with EOS)."""
    seen_eos = (tokens == eos).long().cumsum(dim=1)
    after = (seen_eos - (tokens == eos).long()) > 0
    return tokens.masked_fill(after, pad)


def same_tokens(reference_out: torch.Tensor, ours: torch.Tensor) -> bool:
    theirs = reference_out[:, 1:]  # the reference returns the start token too
    width = max(theirs.shape[1], ours.shape[1])
    theirs = after_eos_as_pad(F.pad(theirs, (0, width - theirs.shape[1])))
    return torch.equal(theirs, F.pad(ours, (0, width - ours.shape[1])))


@pytest.mark.parametrize("style", list(STYLES))
def test_logits_match_the_reference(style):
    reference, ours = reference_and_ours(style)
    input_ids, mask = padded_batch(64)
    decoder_input_ids = torch.randint(2, 64, (3, 6))
    decoder_input_ids[:, 0] = 0
    with torch.no_grad():
        expected = reference(
            input_ids=input_ids, attention_mask=mask, decoder_input_ids=decoder_input_ids
        ).logits
        got = ours(input_ids, decoder_input_ids, mask)
    relative_error = ((got - expected).abs().max() / expected.abs().max()).item()
    assert relative_error < 1e-5


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_beams", [1, 4])
def test_greedy_and_beam_tokens_match_the_reference(style, seed, num_beams):
    vocab = 8  # a small vocabulary with sharpened logits: EOS comes early, beams finish
    reference, ours = reference_and_ours(style, vocab_size=vocab, seed=seed, sharpen=4.0)
    input_ids, mask = padded_batch(vocab, seed=seed)
    kwargs = dict(max_new_tokens=12, num_beams=num_beams, length_penalty=1.0)
    with torch.no_grad():
        expected = reference.generate(
            input_ids=input_ids, attention_mask=mask, do_sample=False, early_stopping=True, **kwargs
        )
    assert same_tokens(expected, ours.generate(input_ids, mask, early_stopping=True, **kwargs))


def test_renaming_round_trip_is_exact():
    reference, ours = reference_and_ours("v1.1")
    back = to_hf_state_dict(ours.state_dict(), ours.config)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(back[name], tensor), name


def test_missing_and_unexpected_tensors_are_listed():
    reference, ours = reference_and_ours("v1.0")
    state = dict(reference.state_dict())
    del state["decoder.block.1.layer.2.DenseReluDense.wo.weight"]
    state["encoder.block.9.layer.0.SelfAttention.q.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing \(1\): decoder.block.1.layer.2") as err:
        from_hf_state_dict(state, ours.config, source="model.safetensors")
    assert "unexpected (1): encoder.block.9" in str(err.value)
    assert "model.safetensors" in str(err.value)


# ---- loading Hugging Face folders -----------------------------------------------------------

from pathlib import Path  # noqa: E402

from minitune import export_t5, load_t5  # noqa: E402
from minitune.run.checkpoint import CheckpointError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def saved_reference(tmp_path, style, safe=True, shard=None, vocab_size=64):
    reference, _ = reference_and_ours(style, vocab_size=vocab_size)
    folder = tmp_path / f"{style}-{'st' if safe else 'bin'}-{shard or 'whole'}"
    kwargs = {"safe_serialization": safe}
    if shard:
        kwargs["max_shard_size"] = shard
    reference.save_pretrained(folder, **kwargs)
    return reference, folder


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("safe", [True, False])
def test_load_t5_folder_matches_the_reference(tmp_path, style, safe):
    reference, folder = saved_reference(tmp_path, style, safe)
    model = load_t5(folder)
    assert not model.training
    input_ids, mask = padded_batch(64)
    dec = torch.tensor([[0, 5, 9, 3]] * 3)
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
        got = model(input_ids, dec, mask)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-5


def test_sharded_folder_loads(tmp_path):
    reference, folder = saved_reference(tmp_path, "v1.1", safe=True, shard="20KB")
    assert (folder / "model.safetensors.index.json").is_file()
    model = load_t5(folder)
    exported = to_hf_state_dict(model.state_dict(), model.config)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(exported[name], tensor), name


def test_export_round_trip_and_reference_reads_our_files(tmp_path):
    _, folder = saved_reference(tmp_path, "v1.0")
    model = load_t5(folder)
    export_t5(model, tmp_path / "exported")
    again = load_t5(tmp_path / "exported")
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "exported").eval()
    input_ids, mask = padded_batch(64)
    dec = torch.tensor([[0, 7, 8]] * 3)
    with torch.no_grad():
        torch.testing.assert_close(
            theirs(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits,
            model(input_ids, dec, mask),
            atol=1e-5,
            rtol=1e-5,
        )


def test_export_refuses_non_t5_variants():
    from minitune import ModelConfig, Seq2SeqTransformer

    model = Seq2SeqTransformer(ModelConfig.preset("tiny", position="sinusoidal"))
    with pytest.raises(ValueError, match="position='sinusoidal'"):
        export_t5(model, "/nonexistent")


def test_missing_weights_are_reported(tmp_path):
    _, folder = saved_reference(tmp_path, "v1.0")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_t5(folder)


def test_generate_command_and_fine_tuning_from_a_t5_folder(tmp_path):
    """The seed's recipe offline: a T5-layout folder (here a small random one with minitune's
    tokenizer as its spiece.model) answers prompts and can be instruction-tuned further."""
    import shutil
    import subprocess
    import sys

    from minitune import Tokenizer
    from minitune.run.settings import load_run_config
    from minitune.train import train

    reference, folder = saved_reference(tmp_path, "v1.1", vocab_size=3000)
    shutil.copyfile(ROOT / "tokenizer" / "minitune.model", folder / "spiece.model")
    prompt = "Translate to French: the cat"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "minitune",
            "generate",
            "--checkpoint",
            str(folder),
            "--max-new-tokens",
            "5",
            prompt,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-1000:]
    tok = Tokenizer(folder / "spiece.model")
    batch = tok.encode_batch([prompt], max_length=512)
    with torch.no_grad():  # the reference's greedy answer, decoded by the same tokenizer
        theirs = reference.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            do_sample=False,
            num_beams=1,
            max_new_tokens=5,
        )
    expected = tok.decode(theirs[0, 1:])
    assert expected.strip() and done.stdout == expected + "\n"
    lines = (ROOT / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:64]
    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, cfg = load_run_config(
        ROOT / "configs" / "tiny.toml",
        {
            "train": {
                "init": str(folder),
                "data": [str(data)],
                "valid_data": None,
                "valid_fraction": 0,
                "max_steps": 25,
                "log_every": 5,
                "out": str(tmp_path / "tuned"),
                "lr": 3e-3,
            }
        },
    )
    train(None, cfg, progress=False, log=lambda *a: None)
    rows = [json.loads(x) for x in (tmp_path / "tuned" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    tuned = json.loads((tmp_path / "tuned" / "last" / "config.json").read_text())
    assert tuned["model"]["d_head"] == 8 and tuned["model"]["ffn"] == "gated-gelu"


def test_fp16_training_of_t5_is_refused(tmp_path):
    from minitune.run.settings import load_run_config
    from minitune.train import train

    _, folder = saved_reference(tmp_path, "v1.0", vocab_size=3000)
    shutil = __import__("shutil")
    shutil.copyfile(ROOT / "tokenizer" / "minitune.model", folder / "spiece.model")
    _, cfg = load_run_config(
        None, {"train": {"init": str(folder), "precision": "fp16", "device": "cpu"}}
    )
    with pytest.raises(ValueError, match="overflow float16"):
        train(None, cfg, progress=False, log=lambda *a: None)


def test_half_precision_inference_stays_finite(tmp_path, monkeypatch):
    """T5's failure mode in float16: feed-forward outputs beyond 65504. The clamp keeps the
    residual stream finite; without it the logits are not."""
    from minitune.layers import blocks

    _, folder = saved_reference(tmp_path, "v1.1")
    model = load_t5(folder)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("wo.weight"):
                p.mul_(3e4)
    model = model.half()
    input_ids, mask = padded_batch(64)
    dec = torch.tensor([[0, 3]] * 3)
    with torch.no_grad():
        out = model(input_ids, dec, mask)
        assert out.dtype == torch.float16 and torch.isfinite(out).all()
        monkeypatch.setattr(blocks, "clamp_fp16", lambda x: x)
        assert not torch.isfinite(model(input_ids, dec, mask)).all()


def test_flan_t5_page_snippet_runs(tmp_path):
    import re
    import shutil

    import minitune

    _, folder = saved_reference(tmp_path, "v1.1", vocab_size=3000)
    shutil.copyfile(ROOT / "tokenizer" / "minitune.model", folder / "spiece.model")
    page = (ROOT / "docs" / "flan_t5.md").read_text(encoding="utf-8")
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", page, re.DOTALL) if "load_t5" in b)
    snippet = snippet.replace("path/to/flan-t5-small", str(folder)).replace(
        "path/to/copy", str(tmp_path / "copy")
    )
    namespace = {"minitune": minitune}
    exec(compile(snippet, "docs/flan_t5.md", "exec"), namespace)
    # the exported folder loads back as the same model with the same tokenizer...
    again = load_t5(tmp_path / "copy")
    original = namespace["model"].state_dict()
    assert again.state_dict().keys() == original.keys()
    assert all(torch.equal(v, original[k]) for k, v in again.state_dict().items())
    tok = minitune.Tokenizer(tmp_path / "copy" / "spiece.model")
    assert tok.fingerprint() == namespace["tok"].fingerprint()
    # ...and the reference implementation reads it and computes the same logits
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "copy").eval()
    input_ids, mask = padded_batch(3000)
    dec = torch.tensor([[0, 5, 6]] * 3)
    with torch.no_grad():
        expected = theirs(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
        got = again(input_ids, dec, mask)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-5


def test_bf16_inference_and_training_from_a_t5_folder(tmp_path):
    import shutil

    from minitune.run.settings import load_run_config
    from minitune.train import train

    _, folder = saved_reference(tmp_path, "v1.1", vocab_size=3000)
    shutil.copyfile(ROOT / "tokenizer" / "minitune.model", folder / "spiece.model")
    full, half = load_t5(folder), load_t5(folder, dtype=torch.bfloat16)
    assert half.embed.weight.dtype == torch.bfloat16
    input_ids, mask = padded_batch(3000)
    dec = torch.tensor([[0, 5, 6]] * 3)
    with torch.no_grad():
        a, b = full(input_ids, dec, mask), half(input_ids, dec, mask).float()
    assert ((a - b).abs().max() / a.abs().max()).item() < 0.05  # bf16 keeps ~3 digits
    lines = (ROOT / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:32]
    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, cfg = load_run_config(
        ROOT / "configs" / "tiny.toml",
        {
            "train": {
                "init": str(folder),
                "data": [str(data)],
                "valid_data": None,
                "valid_fraction": 0,
                "max_steps": 12,
                "log_every": 4,
                "out": str(tmp_path / "bf16"),
                "lr": 3e-3,
                "precision": "bf16",
            }
        },
    )
    train(None, cfg, progress=False, log=lambda *a: None)
    rows = [json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows) and rows[-1]["loss"] < rows[0]["loss"]
