import math

import pytest
import torch
import torch.nn.functional as F

from minitune import ModelConfig
from minitune.layers.attention import (
    attention_reference,
    make_attention_bias,
    make_attention_mask,
)
from minitune.layers.feedforward import FeedForward
from minitune.layers.kv_cache import KVCache
from minitune.layers.norm import LayerNorm, RMSNorm
from minitune.layers.positions import SinusoidalPositions, relative_position_bucket


def _cfg(**overrides) -> ModelConfig:
    return ModelConfig.preset("tiny", **overrides)


def test_causal_mask_worked_example():
    mask = make_attention_mask(None, 3, 3, causal=True)
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask[0, 0], expected)


def test_mask_combines_padding_causality_and_offset():
    padding = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    # two new queries at positions 2 and 3 of a 4-key sequence (a cache holds keys 0 and 1)
    mask = make_attention_mask(padding, q_len=2, k_len=4, causal=True, offset=2)
    assert mask.shape == (2, 1, 2, 4)
    assert mask[0, 0].tolist() == [[True, True, True, False], [True, True, True, False]]
    assert mask[1, 0].tolist() == [[True, True, True, False], [True, True, True, True]]


def test_single_new_token_at_the_end_needs_no_mask():
    assert make_attention_mask(None, 1, 5, causal=True, offset=4) is None


def test_bias_uses_the_most_negative_float_not_a_small_constant():
    mask = make_attention_mask(None, 2, 2, causal=True)
    bias = make_attention_bias(mask, None)
    assert bias[0, 0, 0, 1] == torch.finfo(torch.float32).min
    assert bias[0, 0, 1, 0] == 0


def _random_qkv(B=2, H=3, Tq=5, Tk=7, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=g) for T in (Tq, Tk, Tk)]


@pytest.mark.parametrize("with_padding", [False, True])
@pytest.mark.parametrize("with_position_bias", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_the_fused_attend_equals_the_explicit_steps(with_padding, with_position_bias, causal):
    from minitune.layers.attention import Attention

    q, k, v = _random_qkv(Tq=7, Tk=7)
    padding = torch.tensor([[1] * 7, [1] * 4 + [0] * 3]) if with_padding else None
    position_bias = torch.randn(1, 3, 7, 7) if with_position_bias else None
    bias = make_attention_bias(make_attention_mask(padding, 7, 7, causal), position_bias)
    for scale_attention in (False, True):  # T5's scale 1, and 1/sqrt(D)
        attention = Attention(_cfg(n_heads=3, d_head=8, scale_attention=scale_attention)).eval()
        ref, weights = attention_reference(q, k, v, bias, attention.scale)
        assert not attention.fused  # a new layer runs the explicit steps
        attention.fused = True  # scaled_dot_product_attention
        torch.testing.assert_close(attention.attend(q, k, v, bias), ref, atol=1e-5, rtol=1e-5)
        attention.fused = False
        torch.testing.assert_close(attention.attend(q, k, v, bias), ref)  # the four steps
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 7))


def test_reference_attention_by_hand():
    # one head, one query, two keys: weights = softmax([q·k0, q·k1])
    q = torch.tensor([[[[1.0, 0.0]]]])
    k = torch.tensor([[[[2.0, 0.0], [0.0, 1.0]]]])
    v = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    out, weights = attention_reference(q, k, v, None, scale=1.0)
    w0 = math.exp(2) / (math.exp(2) + math.exp(0))
    assert weights[0, 0, 0].tolist() == pytest.approx([w0, 1 - w0], abs=1e-6)
    assert out[0, 0, 0].tolist() == pytest.approx([w0, 1 - w0], abs=1e-6)


def test_masked_keys_get_zero_weight():
    q, k, v = _random_qkv(B=1, Tq=3, Tk=4)
    padding = torch.tensor([[1, 1, 0, 0]])
    bias = make_attention_bias(make_attention_mask(padding, 3, 4, causal=False), None)
    _, weights = attention_reference(q * 100, k * 100, v, bias, 1.0)  # huge scores
    assert torch.all(weights[..., 2:] == 0)


def test_kv_cache_appends_in_place_and_reorders():
    cache = KVCache(max_length=4)
    k1, v1 = torch.randn(2, 1, 1, 3), torch.randn(2, 1, 1, 3)
    k2, v2 = torch.randn(2, 1, 2, 3), torch.randn(2, 1, 2, 3)
    cache.update(k1, v1)
    k, _ = cache.update(k2, v2)
    assert cache.length == 3
    torch.testing.assert_close(k, torch.cat([k1, k2], dim=2))
    cache.reorder(torch.tensor([1, 1]))
    _, v = cache.update(None, None)  # nothing new: everything stored so far
    torch.testing.assert_close(v[0], torch.cat([v1, v2], dim=2)[1])
    with pytest.raises(ValueError, match="holds 4 positions"):
        cache.update(k2, v2)


def test_relative_bucket_worked_example_causal():
    # the example of the docstring; keys after the query (distance 5) fall in bucket 0
    distances = torch.tensor([0, -1, -2, -3, -4, -5, -6, -7, -8, -11, -12, -100, 5])
    buckets = relative_position_bucket(
        distances, bidirectional=False, num_buckets=8, max_distance=16
    )
    assert buckets.tolist() == [0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7, 0]


def test_relative_bucket_bidirectional_splits_left_and_right():
    distances = torch.tensor([0, 1, -1, 2, -2, 50, -50])
    buckets = relative_position_bucket(
        distances, bidirectional=True, num_buckets=8, max_distance=16
    )
    # 4 buckets per side; keys to the right of the query are shifted by 4
    assert buckets.tolist() == [0, 5, 1, 6, 2, 7, 3]


def test_sinusoidal_table_formula():
    pe = SinusoidalPositions(_cfg(d_model=6, n_heads=2)).table(torch.arange(3))
    for p in range(3):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_rms_norm_formula_and_fp32_statistics():
    x = torch.randn(2, 3, 8)
    norm = RMSNorm(_cfg(d_model=8))
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected)
    # bf16 input: mean(x²) and the scaling in float32, one rounding to bf16 at the end (a bf16
    # mean of squares and a bf16 product round several times and differ in many entries)
    g = torch.Generator().manual_seed(0)
    x16 = (torch.randn(64, 512, generator=g) * 3).to(torch.bfloat16)
    half = RMSNorm(_cfg(d_model=512)).to(torch.bfloat16)
    with torch.no_grad():
        half.weight.copy_(torch.rand(512, generator=g) + 0.5)
    wide = x16.float() * torch.rsqrt(x16.float().pow(2).mean(-1, keepdim=True) + 1e-6)
    out = half(x16)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, half.weight * wide.to(torch.bfloat16))


def test_layer_norm_without_bias():
    norm = LayerNorm(_cfg(d_model=8, bias=False))
    assert norm.bias is None
    x = torch.randn(4, 8)
    torch.testing.assert_close(norm(x), F.layer_norm(x, (8,), eps=1e-6))


@pytest.mark.parametrize(
    "kind,act,gated",
    [
        ("relu", F.relu, False),
        ("gelu", F.gelu, False),
        ("gated-gelu", lambda h: F.gelu(h, approximate="tanh"), True),
        ("swiglu", F.silu, True),
    ],
)
def test_feed_forward_formulas(kind, act, gated):
    ff = FeedForward(_cfg(d_model=8, d_ff=16, ffn=kind))
    x = torch.randn(2, 3, 8)
    h = act(x @ ff.wi.weight.t())
    if gated:
        h = h * (x @ ff.wi_gate.weight.t())
    torch.testing.assert_close(ff(x), h @ ff.wo.weight.t())
    assert (ff.wi_gate is not None) == gated


@pytest.mark.parametrize("n_kv_heads", [None, 1])
def test_fused_attention_equals_the_explicit_with_and_without_the_cache(n_kv_heads):
    from minitune.layers.attention import Attention

    torch.manual_seed(0)
    cfg = _cfg(n_kv_heads=n_kv_heads, dropout=0.0)
    teaching = Attention(cfg).eval()
    teaching.fused = False  # the explicit arithmetic
    attn = Attention(cfg).eval()
    attn.load_state_dict(teaching.state_dict())  # the same parameters, the fused branch on
    attn.fused = True  # scaled_dot_product_attention
    x = torch.randn(2, 6, cfg.d_model)
    bias = make_attention_bias(make_attention_mask(None, 6, 6, causal=True), None)
    reference = teaching(x, x, attn_bias=bias)
    torch.testing.assert_close(attn(x, x, attn_bias=bias), reference, atol=1e-5, rtol=1e-4)
    with torch.inference_mode():  # decoding: one token at a time
        cache = KVCache(6)
        steps = [attn(x[:, t : t + 1], x[:, t : t + 1], cache=cache) for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, 1), reference, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(steps[0], reference[:, 1:2])  # the comparison can fail
