"""The copy head (minitune/layers/copy.py): a distribution, equal with and without the cache,
blind to padding, reducing to the plain model when it never copies, and copying unseen tokens."""

import pytest
import torch
import torch.nn.functional as F
from conftest import random_batch, tiny_model

from minitune import cross_entropy_loss, shift_right
from minitune.interop.t5 import hf_config


def copy_model(seed: int = 0, **overrides):
    return tiny_model(seed=seed, copy_head=True, **overrides)


def test_output_is_a_log_distribution():
    model = copy_model()
    input_ids, mask, dec = random_batch()
    log_p = model(input_ids, dec, mask)  # (B, T, V)
    torch.testing.assert_close(log_p.logsumexp(-1), torch.zeros(log_p.shape[:2]), atol=1e-5, rtol=0)
    # softmax of the output is the distribution itself: the loss is -log p(y)
    labels = torch.randint(3, 128, dec.shape)
    logits = model(input_ids, shift_right(labels, 0, 0), mask)
    nll = -logits.gather(-1, labels[..., None]).mean()
    torch.testing.assert_close(cross_entropy_loss(logits, labels), nll, atol=1e-5, rtol=1e-5)


def test_cache_gives_the_same_output_at_every_step():
    model = copy_model(position="relative+sinusoidal")
    input_ids, mask, dec = random_batch(T=7)
    memory = model.encode(input_ids, mask)
    full = model.decode(dec, memory, mask, source_ids=input_ids)
    cache = model.new_cache(max_length=7, source_length=input_ids.shape[1])
    for t in range(dec.shape[1]):
        step = model.decode(dec[:, t : t + 1], memory, mask, cache=cache, source_ids=input_ids)
        torch.testing.assert_close(step[:, 0], full[:, t], atol=1e-5, rtol=1e-5)


def test_source_padding_changes_nothing():
    model = copy_model()
    input_ids, _, dec = random_batch(B=2, S=6)
    log_p = model(input_ids, dec)
    padded = torch.cat([input_ids, torch.full((2, 5), 7)], dim=1)  # pad positions hold token 7
    mask = torch.cat([torch.ones(2, 6), torch.zeros(2, 5)], dim=1).long()
    torch.testing.assert_close(model(padded, dec, mask), log_p, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(padded, dec), log_p, atol=1e-4)  # unmasked, 7 is pointed at


def test_a_closed_gate_is_the_plain_model_and_an_open_one_only_copies():
    model = copy_model()
    input_ids, mask, dec = random_batch()
    with torch.no_grad():
        model.copy_head.gate.bias.fill_(60.0)  # g = 1: always generate
    memory = model.encode(input_ids, mask)
    h_logits = model.copy_head  # keep a handle; compute the plain logits by removing the head
    model.copy_head = None
    plain = model.decode(dec, memory, mask)
    model.copy_head = h_logits
    torch.testing.assert_close(
        model(input_ids, dec, mask), F.log_softmax(plain, -1), atol=1e-4, rtol=1e-4
    )
    with torch.no_grad():
        model.copy_head.gate.bias.fill_(-60.0)  # g = 0: always copy
    p = model(input_ids, dec, mask).exp()  # (B, T, V)
    for b in range(input_ids.shape[0]):
        in_source = torch.zeros(128, dtype=torch.bool)
        in_source[input_ids[b][mask[b] == 1]] = True
        torch.testing.assert_close(
            p[b][:, in_source].sum(-1), torch.ones(dec.shape[1]), atol=1e-5, rtol=0
        )


def test_greedy_beam_and_uncached_decoding_agree():
    model = copy_model(seed=3)
    input_ids, mask, _ = random_batch()
    greedy = model.generate(input_ids, mask, max_new_tokens=8)
    assert torch.equal(model.generate(input_ids, mask, max_new_tokens=8, num_beams=1), greedy)
    assert torch.equal(model.generate(input_ids, mask, max_new_tokens=8, use_cache=False), greedy)
    beams = model.generate(input_ids, mask, max_new_tokens=8, num_beams=3)
    assert beams.shape[0] == 3


def test_the_copy_head_copies_tokens_it_never_saw_in_training():
    """Repeat 3 tokens (the source ends with EOS, as the training data's do): trained on ids
    3..62 only, tested on ids 63..127, whose output logits the plain model never learned."""
    results = {}
    for copy_head in (False, True):
        model = tiny_model(seed=0, copy_head=copy_head).train()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(200):
            source = torch.cat(
                [torch.randint(3, 63, (32, 3), generator=g), torch.ones(32, 1, dtype=torch.long)],
                dim=1,
            )
            loss = cross_entropy_loss(model(source, shift_right(source, 0, 0)), source)
            opt.zero_grad()
            loss.backward()
            opt.step()
        test = torch.cat(
            [torch.randint(63, 128, (64, 3), generator=g), torch.ones(64, 1, dtype=torch.long)],
            dim=1,
        )
        out = model.eval().generate(test, max_new_tokens=4)
        results[copy_head] = (out == test).all(-1).float().mean().item()
    assert results[True] >= 0.5, results  # copies unseen tokens (measured: 0.69)
    assert results[False] <= 0.05, results  # the plain model cannot (measured: 0.0)


@pytest.mark.parametrize("field", ["copy_head", "position"])
def test_models_that_are_not_t5_are_not_exported_as_t5(field):
    value = {"copy_head": True, "position": "relative+sinusoidal"}[field]
    model = tiny_model(**{field: value}, scale_attention=False)
    with pytest.raises(ValueError, match=field):
        hf_config(model.config)
