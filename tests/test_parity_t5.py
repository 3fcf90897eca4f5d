"""Parity with an independent reference: Hugging Face's T5 (the `parity` extra; skipped without it).

Tiny random T5 models of both styles are built by the reference implementation, their weights
renamed into minitune's model (`minitune.t5`), and the two must agree: logits on a padded batch,
greedy tokens, beam-search tokens.
"""

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from minitune import Seq2SeqTransformer  # noqa: E402
from minitune.t5 import config_from_hf, from_hf_state_dict, to_hf_state_dict  # noqa: E402

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
    cfg = config_from_hf(hf_config.to_dict())
    assert cfg.tie_embeddings == (style == "v1.0")
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
