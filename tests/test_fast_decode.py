"""The fast decoder (minitune/fast/decode.py) gives the tokens of the model's own decode.

Every test compares `generate(..., fast_decode=True)` (what a model on the fast path uses) with
`fast_decode=False` (ModelStep: `model.decode` with a DecoderCache, what a model built in Python
uses) on the same weights, or the step logits directly.
"""

import pytest
import torch
from conftest import random_batch, tiny_model

from minitune import cross_entropy_loss, shift_right
from minitune.fast.decode import FastDecodeStep, unsupported_reason
from minitune.generate import ModelStep, decode_step

# T5 v1.1 / Flan-T5 (gated-GELU, untied head, unscaled scores), T5 v1.0 (ReLU, tied, scaled
# output), the laptop preset's copy head, swiglu, no positions
SUPPORTED = {
    "flan-t5": dict(ffn="gated-gelu", tie_embeddings=False, scale_attention=False),
    "t5-v1.0": dict(ffn="relu", tie_embeddings=True, scale_attention=False),
    "copy-head": dict(copy_head=True),
    "swiglu-no-positions": dict(ffn="swiglu", position="none"),
}


def both(model, *args, **kwargs):
    fast = model.generate(*args, fast_decode=True, **kwargs)
    slow = model.generate(*args, fast_decode=False, **kwargs)
    return fast, slow


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_supported_configs_use_the_fast_step(name):
    model = tiny_model(**SUPPORTED[name])
    assert unsupported_reason(model) is None
    input_ids, mask, _ = random_batch()
    with torch.inference_mode():
        memory = model.encode(input_ids, mask)
        step = decode_step(model, memory, mask, input_ids, 4, use_cache=True, fast_decode=True)
    assert isinstance(step, FastDecodeStep)


@pytest.mark.parametrize("name", list(SUPPORTED))
def test_step_logits_equal_the_model_decode(name):
    """Step by step (padding in the batch), the logits of both steps agree to float32 rounding."""
    model = tiny_model(seed=2, **SUPPORTED[name])
    input_ids, mask, _ = random_batch(seed=4)
    with torch.inference_mode():
        memory = model.encode(input_ids, mask)
        fast = FastDecodeStep(model, memory, mask, input_ids, max_length=8)
        slow = ModelStep(model, memory, mask, input_ids, 8, use_cache=True)
        tokens = torch.zeros(3, 1, dtype=torch.long)
        for _ in range(8):
            a, b = fast(tokens), slow(tokens)
            assert a.dtype == b.dtype == torch.float32
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
            tokens = torch.cat([tokens, b.argmax(-1, keepdim=True)], dim=1)


@pytest.mark.parametrize("name", list(SUPPORTED))
@pytest.mark.parametrize("num_beams", [1, 3])
def test_greedy_and_beam_tokens_are_identical(name, num_beams):
    model = tiny_model(seed=1, **SUPPORTED[name])
    input_ids, mask, _ = random_batch(seed=7)  # rows padded differently
    fast, slow = both(model, input_ids, mask, max_new_tokens=12, num_beams=num_beams)
    assert fast.shape[1] > 0
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("early_stopping", [True, False, "never"])
def test_beam_search_settings_give_identical_tokens(early_stopping):
    model = tiny_model(seed=5, **SUPPORTED["flan-t5"])
    input_ids, mask, _ = random_batch(seed=3)
    kwargs = dict(num_beams=4, early_stopping=early_stopping, length_penalty=0.7)
    fast, slow = both(model, input_ids, mask, max_new_tokens=10, **kwargs)
    assert torch.equal(fast, slow)


def test_seeded_sampling_gives_identical_tokens():
    model = tiny_model(seed=3, copy_head=True)
    input_ids, mask, _ = random_batch(seed=2)

    def sample(fast_decode):
        g = torch.Generator().manual_seed(11)
        return model.generate(
            input_ids,
            mask,
            max_new_tokens=12,
            do_sample=True,
            top_k=20,
            top_p=0.9,
            temperature=0.8,
            generator=g,
            fast_decode=fast_decode,
        )

    assert torch.equal(sample(True), sample(False))


def test_rows_stop_at_their_eos_as_on_the_model_path():
    """A tiny model trained to answer each source row with its own target, ending in EOS at
    different steps: both paths stop each row at its EOS and pad after it."""
    torch.manual_seed(0)
    model = tiny_model().train()
    targets = [[5, 6, 7, 1], [8, 1], [9, 10, 1]]
    input_ids, mask, _ = random_batch(B=3, S=6)
    labels = torch.tensor([t + [-100] * (4 - len(t)) for t in targets])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = cross_entropy_loss(model(input_ids, shift_right(labels, 0, 0), mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    expected = [[5, 6, 7, 1], [8, 1, 0, 0], [9, 10, 1, 0]]
    for num_beams in (1, 3):
        kwargs = dict(num_beams=num_beams, early_stopping=False)
        fast, slow = both(model, input_ids, mask, max_new_tokens=20, **kwargs)
        assert fast.tolist() == slow.tolist(), num_beams
        assert fast.tolist() == expected, num_beams


def test_stacked_weights_follow_an_optimizer_step_and_load_state_dict():
    model = tiny_model(seed=4, **SUPPORTED["flan-t5"])
    input_ids, mask, _ = random_batch()
    before = model.generate(input_ids, mask, max_new_tokens=6, fast_decode=True)  # stacks weights
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
    model.train()
    cross_entropy_loss(model(input_ids, input_ids[:, :4], mask), input_ids[:, :4]).backward()
    optimizer.step()
    model.eval()
    fast, slow = both(model, input_ids, mask, max_new_tokens=6)
    assert torch.equal(fast, slow)
    other = tiny_model(seed=9, **SUPPORTED["flan-t5"])
    model.load_state_dict(other.state_dict())
    fast, slow = both(model, input_ids, mask, max_new_tokens=6)
    assert torch.equal(fast, slow)
    assert not torch.equal(before, fast) or not torch.equal(before, slow)  # weights did change


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(position="rotary"), "position 'rotary'"),
        (dict(position="relative+sinusoidal"), "position"),
        (dict(n_kv_heads=1), "grouped-query"),
        (dict(attention="qk-norm"), "attention 'qk-norm'"),
        (dict(norm="layer"), "norm"),
        (dict(norm_position="post"), "norm"),
        (dict(bias=True), "biases"),
    ],
)
def test_unsupported_configs_fall_back_to_the_model_decode(overrides, fragment):
    model = tiny_model(**overrides)
    reason = unsupported_reason(model)
    assert reason is not None and fragment in reason
    input_ids, mask, _ = random_batch()
    with torch.inference_mode():
        memory = model.encode(input_ids, mask)
        step = decode_step(model, memory, mask, input_ids, 4, use_cache=True, fast_decode=True)
    assert isinstance(step, ModelStep)
    fast, slow = both(model, input_ids, mask, max_new_tokens=6, num_beams=2)
    assert torch.equal(fast, slow)


def test_lora_and_half_precision_fall_back():
    from minitune.lora import add_lora

    model = tiny_model()
    add_lora(model)
    assert "LoRA" in unsupported_reason(model)
    half = tiny_model().to(torch.bfloat16)
    assert "float32" in unsupported_reason(half)


@pytest.mark.parametrize("impl, step_class", [("reference", ModelStep), ("fast", FastDecodeStep)])
def test_by_default_the_step_follows_the_models_path(impl, step_class):
    """generate's default (fast_decode=None): the model's own decode on the teaching path (a new
    model's), the fast step once set_impl("fast") switched it (what the command line does)."""
    model = tiny_model(impl=impl)
    input_ids, mask, _ = random_batch()
    with torch.inference_mode():
        memory = model.encode(input_ids, mask)
        step = decode_step(model, memory, mask, input_ids, 4, use_cache=True, fast_decode=None)
    assert type(step) is step_class


def test_without_the_cache_the_model_path_is_used():
    model = tiny_model()
    input_ids, mask, _ = random_batch()
    with torch.inference_mode():
        memory = model.encode(input_ids, mask)
        step = decode_step(model, memory, mask, input_ids, 4, use_cache=False, fast_decode=True)
    assert isinstance(step, ModelStep) and step.cache is None
