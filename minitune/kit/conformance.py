"""The conformance kit: does a layer variant keep the contract the rest of the model relies on?

Call them on your own variant (a registered name, a "module:Class" path, or the class itself):

    from minitune.kit.conformance import check_attention
    report = check_attention("my_module:MyAttention")
    print(report)               # one line per check: PASS, FAIL (with what went wrong) or SKIP
    report.raise_if_failed()    # in a pytest test

or from the command line: `minitune check attention=my_module:MyAttention`.

Each kind gets the checks that apply to it, on tiny float32 sizes (float64 for gradcheck):

    attention   shapes (self, cross); causal masking; padding invariance (self, cross);
                cache == no cache (self with rotary positions, cross); fused branch == explicit
                arithmetic; gradcheck; every parameter gets a gradient
    position    shapes; offset consistency of embed / bias / rotate (what the KV cache needs);
                gradcheck
    ffn         shapes; position-wise (tokens do not mix); gradcheck; every parameter gets a
                gradient
    norm        shapes and dtype; tokens do not mix; bounded output for huge inputs; gradcheck;
                every parameter gets a gradient

and then, for every kind, the same checks on a whole tiny model built with the variant: the
decoder is causal, source padding changes nothing, cached decoding equals uncached, and the model
fits one batch. Built-in variants are tested through these functions (tests/test_conformance.py).
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from minitune.config import ModelConfig
from minitune.layers import registry
from minitune.layers.attention import make_attention_bias, make_attention_mask
from minitune.layers.kv_cache import KVCache
from minitune.layers.positions import Rotation, token_positions
from minitune.loss import cross_entropy_loss
from minitune.model import Seq2SeqTransformer, shift_right

TOLERANCE = 1e-5  # float32 agreement for "the same computation"


@dataclass
class CheckResult:
    """The outcome of one check: "PASS", "FAIL" or "SKIP", with a one-line reason."""

    name: str
    status: str
    detail: str = ""


@dataclass
class Report:
    """All check results for one variant; `print(report)` shows a readable table."""

    kind: str
    spec: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped checks do not count against)."""
        return all(r.status != "FAIL" for r in self.results)

    def __str__(self) -> str:
        lines = [f"{self.kind} = {self.spec}"]
        for r in self.results:
            lines.append(f"  {r.status}  {r.name}" + (f": {r.detail}" if r.detail else ""))
        counts = {s: sum(r.status == s for r in self.results) for s in ("PASS", "FAIL", "SKIP")}
        lines.append(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise AssertionError(str(self))


class SkipCheck(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside a check that does not apply to the variant."""


def _run(report: Report, name: str, check: Callable[[], None]) -> None:
    """Run one check; an AssertionError is a FAIL with its message, any other error a FAIL
    naming the exception and the line of the variant's code that raised it."""
    try:
        check()
        report.results.append(CheckResult(name, "PASS"))
    except SkipCheck as why:
        report.results.append(CheckResult(name, "SKIP", str(why)))
    except AssertionError as err:
        report.results.append(
            CheckResult(name, "FAIL", str(err).splitlines()[0] if err.args else "")
        )
    except Exception as err:  # a crash in the variant is a failed check, not a crashed kit
        frames = traceback.extract_tb(err.__traceback__)
        ours = [
            f for f in frames if "/torch/" not in f.filename and "conformance.py" not in f.filename
        ]
        where = (ours or frames)[-1]  # the innermost line of the variant's own code
        detail = f"raised {type(err).__name__}: {err} ({where.filename}:{where.lineno})"
        report.results.append(CheckResult(name, "FAIL", detail))


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, atol=TOLERANCE):
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    diff = (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0
    if not diff <= atol:  # also catches NaN
        raise AssertionError(f"{what}: differs by {diff:.2e} (allowed {atol:.0e})")


def _assert_shape(x: torch.Tensor, shape: tuple, what: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise AssertionError(f"{what}: expected shape {tuple(shape)}, got {tuple(x.shape)}")


def _name_for(kind: str, spec) -> str:
    """A config name for `spec`: registered name or path as given; a class gets its path (and is
    registered under it when that path cannot be imported, as for a class defined in a test)."""
    if isinstance(spec, str):
        registry.resolve(kind, spec)  # ValueError naming what is allowed
        return spec
    name = f"{spec.__module__}:{spec.__qualname__}"
    try:
        found = registry.resolve(kind, name)
    except ValueError:
        found = None
    if found is not spec:
        registry.register(kind, name, spec)
    return name


def _config(kind: str, name: str, small: bool = False, **overrides) -> ModelConfig:
    """The tiny preset with the variant; `small` shrinks it further for float64 gradcheck."""
    sizes = (
        dict(
            d_model=8,
            n_heads=2,
            d_ff=16,
            vocab_size=16,
            relative_buckets=4,
            relative_max_distance=8,
        )
        if small
        else {}
    )
    return ModelConfig.preset("tiny", **{**sizes, **overrides, kind: name, "dropout": 0.0})


def _randn(*shape, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _causal_bias(q_len: int, k_len: int, offset: int = 0) -> torch.Tensor | None:
    return make_attention_bias(make_attention_mask(None, q_len, k_len, True, offset), None)


def _padding_bias(padding: torch.Tensor, q_len: int) -> torch.Tensor:
    return make_attention_bias(make_attention_mask(padding, q_len, padding.shape[1], False), None)


class _Call(nn.Module):
    """Wraps `fn(module, *inputs)` as a forward, so that functional_call can swap parameters."""

    def __init__(self, module: nn.Module, fn: Callable):
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self, *inputs):
        return self.fn(self.module, *inputs)


def _gradcheck(module: nn.Module, fn: Callable, inputs: tuple[torch.Tensor, ...]) -> None:
    """torch.autograd.gradcheck in float64 of fn(module, *inputs), over the inputs and every
    parameter of `module`: autograd's gradients must match finite differences."""
    wrapper = _Call(module.double(), fn)
    names = [n for n, p in wrapper.named_parameters() if p.requires_grad]
    params = tuple(
        dict(wrapper.named_parameters())[n].detach().clone().requires_grad_(True) for n in names
    )
    inputs = tuple(x.double().requires_grad_(True) for x in inputs)

    def call(*args):
        state = dict(zip(names, args[: len(names)], strict=True))
        return torch.func.functional_call(wrapper, state, args[len(names) :])

    try:
        torch.autograd.gradcheck(call, params + inputs, eps=1e-6, atol=1e-5, rtol=1e-3)
    except RuntimeError as err:
        if type(err).__name__ != "GradcheckError":
            raise  # the variant itself failed: reported as such by _run
        first = str(err).strip().splitlines()[0]
        raise AssertionError(f"analytical and numerical gradients differ: {first}") from None


def _all_parameters_get_gradients(module: nn.Module, loss: torch.Tensor) -> None:
    loss.backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reaches {', '.join(missing)}"
    bad = [
        n
        for n, p in module.named_parameters()
        if p.grad is not None and not torch.isfinite(p.grad).all()
    ]
    assert not bad, f"non-finite gradient in {', '.join(bad)}"


def _fused_vs_explicit(module: nn.Module, call: Callable[[nn.Module], torch.Tensor]) -> None:
    """A layer with a fused branch (a `fused` switch, as Attention has) gives the same output
    with it and with its explicit arithmetic."""
    if not isinstance(getattr(module, "fused", None), bool):
        raise SkipCheck(f"{type(module).__name__} has no fused branch (no `fused` switch)")
    fused, explicit = copy.deepcopy(module), copy.deepcopy(module)
    fused.fused, explicit.fused = True, False
    _assert_close(call(fused), call(explicit), "fused branch vs explicit arithmetic")


def _check_token_independence(module: nn.Module, C: int) -> None:
    x = _randn(2, 5, C)
    full = module(x)
    for t in range(5):
        _assert_close(module(x[:, t : t + 1]), full[:, t : t + 1], f"token {t} alone vs in context")
    _assert_close(module(x[1:]), full[1:], "batch row 1 alone vs in the batch")


# ---- attention ---------------------------------------------------------------------------------


def check_attention(spec, **overrides) -> Report:
    """Check an attention variant: built as cls(cfg) and called as
    forward(x, context, attn_bias=None, cache=None, rotary=None) -> (B, T, C), context being x
    for self-attention and the encoder output for cross-attention; with keys_values(context)
    for the decoder cache (layers/base.py: AttentionLayer)."""
    name = _name_for("attention", spec)
    cfg = _config("attention", name, **overrides)
    build = registry.resolve("attention", name)
    report = Report("attention", name + _describe(overrides))
    C = cfg.d_model

    def make(config: ModelConfig = cfg) -> nn.Module:
        torch.manual_seed(0)
        module = build(config).eval()
        for p in module.parameters():  # random, so that every parameter matters
            nn.init.normal_(p, std=0.3)
        return module

    checks = [
        *_attention_masking_checks(make, C),
        *_attention_cache_checks(make, C, name, overrides),
        *_attention_path_and_gradient_checks(make, build, cfg, name, overrides),
    ]
    return _run_all(report, checks, "attention", name, overrides)


def _attention_masking_checks(make: Callable[..., nn.Module], C: int) -> list:
    """Shapes, causal masking and padding invariance; `make()` builds the variant. Self-attention
    is called with context = x, cross-attention with context = an encoder output."""

    def shapes():
        x = _randn(2, 5, C)
        _assert_shape(make()(x, x), (2, 5, C), "self-attention output")
        out = make()(_randn(2, 4, C), _randn(2, 6, C, seed=1))
        _assert_shape(out, (2, 4, C), "cross-attention output (T_q=4, T_k=6)")

    def causal():
        module, x = make(), _randn(2, 6, C)
        out = module(x, x, attn_bias=_causal_bias(6, 6))
        changed = x.clone()
        changed[:, 3:] = _randn(2, 3, C, seed=5)
        out2 = module(changed, changed, attn_bias=_causal_bias(6, 6))
        _assert_close(
            out2[:, :3], out[:, :3], "outputs before position 3 after changing tokens 3..5"
        )

    def padding_self():
        module, x = make(), _randn(2, 6, C)
        padding = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
        out = module(x, x, attn_bias=_padding_bias(padding, 6))
        changed = x.clone()
        changed[1, 4:] = _randn(2, C, seed=7)
        out2 = module(changed, changed, attn_bias=_padding_bias(padding, 6))
        _assert_close(out2[1, :4], out[1, :4], "real tokens after changing padded ones")

    def padding_cross():
        module, x, memory = make(), _randn(2, 3, C), _randn(2, 6, C, seed=1)
        padding = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
        out = module(x, memory, attn_bias=_padding_bias(padding, 3))
        changed = memory.clone()
        changed[1, 3:] = _randn(3, C, seed=7)
        out2 = module(x, changed, attn_bias=_padding_bias(padding, 3))
        _assert_close(out2, out, "outputs after changing padded encoder positions")

    return [
        ("output shapes (self- and cross-attention)", shapes),
        ("causal masking: later tokens do not change earlier outputs", causal),
        ("padding invariance (self-attention)", padding_self),
        ("padding invariance (cross-attention)", padding_cross),
    ]


def _attention_cache_checks(
    make: Callable[..., nn.Module], C: int, name: str, overrides: dict
) -> list:
    """A KV cache filled token by token gives what one call over all tokens gives."""

    def cache_self():
        rotary_cfg = _config("attention", name, **{**overrides, "position": "rotary"})
        module, x, T = make(config=rotary_cfg), _randn(2, 7, C), 7
        position = registry.build("position", rotary_cfg, causal=True)

        def at(T: int, offset: int = 0) -> Rotation:  # the scheme bound to positions offset..
            return Rotation(position, token_positions(T, offset))

        full = module(x, x, attn_bias=_causal_bias(T, T), rotary=at(T))
        cache = KVCache(T)
        first = module(x[:, :3], x[:, :3], attn_bias=_causal_bias(3, 3), cache=cache, rotary=at(3))
        _assert_close(first, full[:, :3], "first 3 tokens at once, into the cache")
        for t in range(3, T):
            new = x[:, t : t + 1]
            step = module(
                new, new, attn_bias=_causal_bias(1, t + 1, t), cache=cache, rotary=at(1, t)
            )
            _assert_close(step, full[:, t : t + 1], f"step {t} with the cache vs without")
        assert cache.length == T, f"cache holds {cache.length} positions after {T} tokens"

    def cache_cross():
        module, x, memory = make(), _randn(2, 5, C), _randn(2, 6, C, seed=1)
        padding = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
        full = module(x, memory, attn_bias=_padding_bias(padding, 5))
        cache = KVCache(6)  # filled once, as DecoderCache.fill_cross_attention does
        cache.append(*module.keys_values(memory))
        for t in range(5):  # no context: every key and value is in the cache
            step = module(x[:, t : t + 1], None, attn_bias=_padding_bias(padding, 1), cache=cache)
            _assert_close(step, full[:, t : t + 1], f"step {t} with the cross cache vs without")
        assert cache.length == 6, f"cross cache holds {cache.length} positions, expected 6"

    return [
        ("cache == no cache (self-attention, rotary positions)", cache_self),
        ("cache == no cache (cross-attention)", cache_cross),
    ]


def _attention_path_and_gradient_checks(
    make: Callable[..., nn.Module], build: Callable, cfg: ModelConfig, name: str, overrides: dict
) -> list:
    """The fused branch equals the explicit arithmetic; gradients are right and reach every
    parameter."""
    C = cfg.d_model

    def fused_vs_explicit():
        x, padding = _randn(2, 6, C), torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
        mask = make_attention_mask(padding, 6, 6, causal=True)
        bias = make_attention_bias(mask, _randn(1, cfg.n_heads, 6, 6, seed=3))
        _fused_vs_explicit(make(), lambda m: m(x, x, attn_bias=bias))

    def gradcheck():
        small = _config("attention", name, small=True, **overrides)
        Cs = small.d_model
        torch.manual_seed(0)
        bias = _causal_bias(3, 3).double()
        _gradcheck(build(small).eval(), lambda m, x: m(x, x, attn_bias=bias), (_randn(1, 3, Cs),))
        cross = build(small).eval()
        _gradcheck(cross, lambda m, x, mem: m(x, mem), (_randn(1, 2, Cs), _randn(1, 3, Cs)))

    def gradients():
        module, x = make().train(), _randn(2, 5, C)
        loss = module(x, x, attn_bias=_causal_bias(5, 5)).pow(2).sum()
        _all_parameters_get_gradients(module, loss)
        cross = make().train()
        loss = cross(_randn(2, 3, C), _randn(2, 4, C, seed=1)).pow(2).sum()
        _all_parameters_get_gradients(cross, loss)

    return [
        ("fused branch == explicit arithmetic", fused_vs_explicit),
        ("gradcheck in float64 (inputs and parameters)", gradcheck),
        ("every parameter receives a finite gradient", gradients),
    ]


# ---- position schemes --------------------------------------------------------------------------


def check_position(spec, **overrides) -> Report:
    """Check a position scheme: built as cls(cfg, causal), with embed / bias / rotate as in
    `minitune.layers.positions.PositionScheme`."""
    name = _name_for("position", spec)
    cfg = _config("position", name, **overrides)
    build = registry.resolve("position", name)
    report = Report("position", name + _describe(overrides))
    C, H, D = cfg.d_model, cfg.n_heads, cfg.d_head

    def make(causal: bool) -> nn.Module:
        torch.manual_seed(0)
        return build(cfg, causal=causal).eval()

    def shapes():
        for causal in (False, True):
            scheme = make(causal)
            at = token_positions(5)  # 0..4, (1, 5)
            _assert_shape(scheme.embed(_randn(2, 5, C), at), (2, 5, C), "embed")
            _assert_shape(scheme.rotate(_randn(2, H, 5, D), at), (2, H, 5, D), "rotate")
            bias = scheme.position_bias(5, 7)
            if bias is not None:
                assert bias.dim() == 4 and bias.shape[-3:] in ((H, 5, 7), (1, 5, 7)), (
                    f"bias(5, 7) has shape {tuple(bias.shape)}; expected (1, {H}, 5, 7)"
                )

    def offsets():
        for causal in (False, True):
            scheme, x, q = make(causal), _randn(2, 6, C), _randn(2, H, 6, D, seed=1)
            whole, later = token_positions(6), token_positions(4, offset=2)  # 0..5 and 2..5
            _assert_close(
                scheme.embed(x[:, 2:], later),
                scheme.embed(x, whole)[:, 2:],
                "embed(x[:, 2:], positions 2..5) vs embed(x)[:, 2:]",
            )
            _assert_close(
                scheme.rotate(q[:, :, 2:], later),
                scheme.rotate(q, whole)[:, :, 2:],
                "rotate(q[..., 2:, :], positions 2..5) vs rotate(q)[..., 2:, :]",
            )
            full = scheme.position_bias(6, 6)
            if full is not None:
                part = scheme.position_bias(2, 6, offset=4)
                _assert_close(
                    part.expand(-1, H, -1, -1),
                    full[..., 4:, :].expand(-1, H, -1, -1),
                    "bias(2, 6, offset=4) vs rows 4..5 of bias(6, 6)",
                )

    def gradcheck():
        small = _config("position", name, small=True, **overrides)
        torch.manual_seed(0)
        for causal in (False, True):
            scheme = build(small, causal=causal).eval()
            x, q = _randn(1, 3, small.d_model), _randn(1, small.n_heads, 3, small.d_head)
            _gradcheck(scheme, lambda m, x: m.embed(x, token_positions(3, offset=1)), (x,))
            _gradcheck(scheme, lambda m, q: m.rotate(q, token_positions(3, offset=1)), (q,))
            if scheme.position_bias(2, 3) is not None and any(True for _ in scheme.parameters()):
                _gradcheck(scheme, lambda m, _: m.position_bias(2, 3, offset=1), (torch.zeros(1),))

    checks = [
        ("shapes of embed, rotate and bias (encoder and decoder)", shapes),
        ("offset consistency: tokens at positions k.. == positions k.. of the whole", offsets),
        ("gradcheck in float64 (embed, rotate, bias)", gradcheck),
    ]
    return _run_all(report, checks, "position", name, overrides)


# ---- feed-forward ------------------------------------------------------------------------------


def check_feedforward(spec, **overrides) -> Report:
    """Check a feed-forward variant: built as cls(cfg), forward(x (B, T, C)) -> (B, T, C)."""
    name = _name_for("ffn", spec)
    return _check_positionwise("ffn", name, overrides)


def check_norm(spec, **overrides) -> Report:
    """Check a norm: built as cls(cfg), forward(x (..., C)) -> the same shape and dtype."""
    name = _name_for("norm", spec)
    return _check_positionwise("norm", name, overrides)


def _check_positionwise(kind: str, name: str, overrides: dict) -> Report:
    """Feed-forwards and norms: layers that act on each token on its own."""
    cfg = _config(kind, name, **overrides)
    build = registry.resolve(kind, name)
    report = Report(kind, name + _describe(overrides))
    C = cfg.d_model

    def make() -> nn.Module:
        torch.manual_seed(0)
        module = build(cfg).eval()
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.1 * _randn(*p.shape, seed=p.numel()))  # not all ones / zeros
        return module

    def shapes():
        _assert_shape(make()(_randn(2, 5, C)), (2, 5, C), "output")
        if kind == "norm":
            out = make().to(torch.bfloat16)(_randn(2, 5, C).to(torch.bfloat16))
            assert out.dtype == torch.bfloat16, f"a bfloat16 norm returned {out.dtype}"

    def bounded():
        module, x = make(), _randn(2, 5, C)
        small, huge = module(x).abs().max().item(), module(1e4 * x).abs().max().item()
        assert huge < 100 * max(small, 1.0), (
            f"output grows with the input: max {small:.3g} for x, {huge:.3g} for 10⁴·x"
        )

    def gradcheck():
        small = _config(kind, name, small=True, **overrides)
        torch.manual_seed(0)
        _gradcheck(build(small).eval(), lambda m, x: m(x), (_randn(2, 3, small.d_model),))

    def gradients():
        module = make().train()
        _all_parameters_get_gradients(module, module(_randn(2, 5, C)).pow(3).sum())

    def positionwise():
        _check_token_independence(make(), C)

    checks = [
        ("output shape" + (" and dtype" if kind == "norm" else ""), shapes),
        ("position-wise: tokens and batch rows do not mix", positionwise),
    ]
    if kind == "norm":
        checks.append(("bounded output for huge inputs (×10⁴)", bounded))
    checks += [
        ("gradcheck in float64 (inputs and parameters)", gradcheck),
        ("every parameter receives a finite gradient", gradients),
    ]
    return _run_all(report, checks, kind, name, overrides)


def _run_all(report: Report, checks: list, kind: str, name: str, overrides: dict) -> Report:
    """Run a kind's own checks, then the model-level ones; return the filled report."""
    for check_name, check in checks:
        _run(report, check_name, check)
    _model_checks(report, kind, name, overrides)
    return report


# ---- the whole model with the variant ----------------------------------------------------------


def _model_checks(report: Report, kind: str, name: str, overrides: dict) -> None:
    """The model-level contract, on a tiny model that uses the variant."""
    cfg = _config(kind, name, **overrides)
    V = cfg.vocab_size

    def model() -> Seq2SeqTransformer:
        torch.manual_seed(0)
        return Seq2SeqTransformer(cfg).eval()

    g = torch.Generator().manual_seed(1)
    source = torch.randint(3, V, (3, 8), generator=g)
    attention_mask = torch.ones(3, 8, dtype=torch.long)
    attention_mask[1, 6:] = 0
    attention_mask[2, 5:] = 0
    target = torch.randint(3, V, (3, 6), generator=g)

    def causal():
        m = model()
        logits = m(source, target, attention_mask)
        changed = target.clone()
        changed[:, 3:] = torch.randint(3, V, (3, 3), generator=g)
        _assert_close(
            m(source, changed, attention_mask)[:, :3],
            logits[:, :3],
            "logits before position 3 after changing decoder tokens 3..5",
        )

    def padding():
        m = model()
        logits = m(source[2:, :5], target[2:])  # row 2 without its padding
        padded = source[2:].clone()
        padded[:, 5:] = torch.randint(3, V, (1, 3), generator=g)  # junk under the mask
        _assert_close(
            m(padded, target[2:], attention_mask[2:]),
            logits,
            "logits with 3 masked junk tokens vs without them",
        )

    def cache():
        m = model()
        memory = m.encode(source, attention_mask)
        full = m.decode(target, memory, attention_mask)
        decoder_cache = m.new_cache(max_length=6, source_length=8)
        for t in range(6):
            step = m.decode(target[:, t : t + 1], memory, attention_mask, cache=decoder_cache)
            _assert_close(step, full[:, t : t + 1], f"decoder step {t} with cache vs without")

    def fits():
        m = model().train()
        labels = target.clone()
        labels[:, -1] = cfg.eos_id
        optimizer = torch.optim.Adam(m.parameters(), lr=1e-2)
        for step in range(60):
            loss = cross_entropy_loss(m(source, shift_right(labels, 0, 0), attention_mask), labels)
            assert torch.isfinite(loss), f"loss became {loss.item()} at step {step}"
            if step == 0:
                first = loss.item()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert loss.item() < 0.3 * first, (
            f"loss fell only from {first:.3f} to {loss.item():.3f} in 60 steps on one batch"
        )

    for check_name, check in [
        ("model: the decoder is causal", causal),
        ("model: source padding changes nothing", padding),
        ("model: cached decoding == uncached", cache),
        ("model: a tiny model fits one batch (60 Adam steps)", fits),
    ]:
        _run(report, check_name, check)


def _describe(overrides: dict) -> str:
    return "".join(f", {k}={v}" for k, v in overrides.items())


CHECKS: dict[str, Callable[..., Report]] = {
    "attention": check_attention,
    "position": check_position,
    "ffn": check_feedforward,
    "norm": check_norm,
}


def check(kind: str, spec, **overrides) -> Report:
    """Run the checks of `kind` ("attention", "position", "ffn", "norm") on `spec`."""
    if kind not in CHECKS:
        raise ValueError(f"unknown layer kind {kind!r}; kinds: {', '.join(CHECKS)}")
    return CHECKS[kind](spec, **overrides)


__all__ = [
    "CheckResult",
    "Report",
    "check",
    "check_attention",
    "check_feedforward",
    "check_norm",
    "check_position",
]
