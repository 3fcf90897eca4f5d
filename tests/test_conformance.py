"""The conformance kit (minitune.kit.conformance): every built-in variant passes it, and it catches
broken variants, each for the right reason."""

import pytest
import torch
from torch import nn

from minitune.kit import conformance
from minitune.layers import registry
from minitune.layers.attention import Attention
from minitune.layers.feedforward import FeedForward
from minitune.layers.positions import SinusoidalPositions, token_positions

BUILT_IN = [(kind, name) for kind in registry.REGISTRY for name in registry.names(kind)]


@pytest.mark.parametrize("kind,name", BUILT_IN)
def test_every_built_in_variant_passes_the_kit(kind, name):
    report = conformance.check(kind, name)
    report.raise_if_failed()
    assert len(report.results) >= 7
    fused_check = [r for r in report.results if r.name == "fused branch == explicit arithmetic"]
    if kind == "attention":  # every built-in one derives from Attention: its SDPA branch
        assert [r.status for r in fused_check] == ["PASS"]
    else:  # the one fused branch of the model is attention's
        assert fused_check == []


def test_the_kit_catches_a_fused_branch_that_differs(monkeypatch):
    real = torch.nn.functional.scaled_dot_product_attention

    def unmasked(q, k, v, attn_mask=None, dropout_p=0.0, scale=None):  # forgets the mask
        return real(q, k, v, scale=scale)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", unmasked)
    report = conformance.check_attention("multi-head")
    assert _status(report, "fused branch == explicit arithmetic") == "FAIL"
    assert _status(report, "causal masking") == "PASS"  # a new layer: the explicit steps


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_grouped_and_multi_query_attention_pass_the_kit(n_kv_heads):
    conformance.check_attention("multi-head", n_kv_heads=n_kv_heads).raise_if_failed()


def test_post_norm_models_pass_the_model_checks():
    conformance.check_norm("layer", norm_position="post").raise_if_failed()


def test_the_attention_report_lists_its_checks_in_order():
    """The order a student reads: the layer's own checks, then the whole model's."""
    names = [r.name for r in conformance.check_attention("multi-head").results]
    assert names == [
        "output shapes (self- and cross-attention)",
        "causal masking: later tokens do not change earlier outputs",
        "padding invariance (self-attention)",
        "padding invariance (cross-attention)",
        "cache == no cache (self-attention, rotary positions)",
        "cache == no cache (cross-attention)",
        "fused branch == explicit arithmetic",
        "gradcheck in float64 (inputs and parameters)",
        "every parameter receives a finite gradient",
        "model: the decoder is causal",
        "model: source padding changes nothing",
        "model: cached decoding == uncached",
        "model: a tiny model fits one batch (60 Adam steps)",
    ]


def _status(report, fragment):
    found = [r for r in report.results if fragment in r.name]
    assert found, f"no check named like {fragment!r}"
    return found[0].status


class LeakyAttention(Attention):
    """Forgets the mask: reads the future and the padding."""

    def forward(self, x, context, attn_bias=None, cache=None, rotary=None):
        return super().forward(x, context, None, cache, rotary)


class ForgetfulAttention(Attention):
    """Never stores keys in the cache: each step sees only itself."""

    def forward(self, x, context, attn_bias=None, cache=None, rotary=None):
        return super().forward(x, context, attn_bias, None, rotary)


def test_the_kit_catches_attention_that_ignores_the_mask():
    report = conformance.check_attention(LeakyAttention)
    assert not report.ok
    assert _status(report, "causal masking") == "FAIL"
    assert _status(report, "padding invariance (self") == "FAIL"
    assert _status(report, "model: the decoder is causal") == "FAIL"
    assert _status(report, "output shapes") == "PASS"
    with pytest.raises(AssertionError, match="FAIL  causal masking"):
        report.raise_if_failed()


def test_the_kit_catches_attention_that_ignores_the_cache():
    report = conformance.check_attention(ForgetfulAttention)
    assert _status(report, "cache == no cache (self") == "FAIL"
    assert _status(report, "model: cached decoding") == "FAIL"
    assert _status(report, "causal masking") == "PASS"


class _WrongGradient(torch.autograd.Function):
    """relu forward with a backward that forgets the mask (gradient 1 everywhere)."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return grad


class WrongGradientFeedForward(FeedForward):
    kind = "relu"

    def forward(self, x):
        return self.wo(_WrongGradient.apply(self.wi(x)))


def test_the_kit_catches_a_wrong_backward():
    report = conformance.check_feedforward(WrongGradientFeedForward)
    assert _status(report, "gradcheck") == "FAIL"
    assert "gradients differ" in next(r for r in report.results if "gradcheck" in r.name).detail
    assert _status(report, "position-wise") == "PASS"


class BatchNormLike(nn.Module):
    """Normalises over the batch and time axes: tokens influence each other."""

    def __init__(self, cfg):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(cfg.d_model))

    def forward(self, x):
        mean = x.mean(dim=tuple(range(x.dim() - 1)), keepdim=True)
        std = x.std(dim=tuple(range(x.dim() - 1)), keepdim=True) + 1e-5
        return (x - mean) / std * self.weight


def test_the_kit_catches_a_norm_that_mixes_tokens():
    report = conformance.check_norm(BatchNormLike)
    assert _status(report, "position-wise") == "FAIL"
    assert _status(report, "model: the decoder is causal") == "FAIL"  # the future leaks in


class OffsetBlindPositions(SinusoidalPositions):
    """Ignores the positions it is given: every decoding step thinks it starts at position 0."""

    def embed(self, x, positions):
        return super().embed(x, token_positions(x.shape[1]))


def test_the_kit_catches_a_position_scheme_that_ignores_the_offset():
    report = conformance.check_position(OffsetBlindPositions)
    assert _status(report, "offset consistency") == "FAIL"
    assert _status(report, "model: cached decoding") == "FAIL"


class CrashingNorm(nn.Module):
    def __init__(self, cfg):
        super().__init__()

    def forward(self, x):
        raise RuntimeError("not written yet")


def test_a_crashing_variant_is_a_readable_failure_not_a_crash():
    report = conformance.check_norm(CrashingNorm)
    assert not report.ok
    detail = report.results[0].detail
    assert "raised RuntimeError: not written yet" in detail and "test_conformance.py" in detail
    assert [r.status for r in report.results] == ["FAIL"] * len(report.results)
    assert str(report).splitlines()[-1] == f"0 passed, {len(report.results)} failed, 0 skipped"


def test_unknown_kinds_and_names_are_clear_errors():
    with pytest.raises(ValueError, match="kinds: attention, position, ffn, norm"):
        conformance.check("pooling", "max")
    with pytest.raises(ValueError, match="not a registered norm"):
        conformance.check("norm", "batch")
