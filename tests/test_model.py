import pytest
import torch
from conftest import POSITIONS, random_batch, tiny_model

from minitune import Seq2SeqTransformer, cross_entropy_loss, shift_right
from minitune.config import ModelConfig
from minitune.layers.attention import Attention
from minitune.layers.feedforward import FeedForward
from minitune.layers.positions import PositionScheme


def test_forward_shapes():
    model = tiny_model()
    input_ids, mask, dec = random_batch()
    assert model(input_ids, dec, mask).shape == (3, 6, 128)
    assert model.encode(input_ids, mask).shape == (3, 9, 32)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_causality_future_tokens_do_not_change_past_logits(position, norm_position):
    model = tiny_model(position=position, norm_position=norm_position)
    input_ids, mask, dec = random_batch()
    logits = model(input_ids, dec, mask)
    for t in range(dec.shape[1] - 1):
        changed = dec.clone()
        changed[:, t + 1 :] = torch.randint(3, 128, changed[:, t + 1 :].shape)
        new_logits = model(input_ids, changed, mask)
        torch.testing.assert_close(new_logits[:, : t + 1], logits[:, : t + 1], atol=1e-5, rtol=1e-5)
        # and the test can fail: a later position does change
        assert not torch.allclose(new_logits[:, t + 1 :], logits[:, t + 1 :])


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
def test_source_padding_changes_nothing(position, fused):
    model = tiny_model(position=position, fused=fused)
    input_ids, _, dec = random_batch(B=2, S=6)
    logits = model(input_ids, dec)  # no padding at all
    padded = torch.cat([input_ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(2, 6), torch.zeros(2, 5)], dim=1).long()
    torch.testing.assert_close(model(padded, dec, mask), logits, atol=1e-5, rtol=1e-5)
    # without the mask, the pads would be read
    assert not torch.allclose(model(padded, dec), logits, atol=1e-4)


@pytest.mark.parametrize("position", POSITIONS)
def test_fused_branch_and_explicit_arithmetic_agree_in_the_model(position):
    model = tiny_model(position=position, ffn="gated-gelu")
    input_ids, mask, dec = random_batch()
    assert type(model.decoder.layers[0].self_attn) is Attention
    assert type(model.decoder.layers[0].ff) is FeedForward
    # the switch is attention's alone: the one fused branch of the model is in Attention.attend
    assert not any(hasattr(m, "fused") for m in model.modules() if isinstance(m, FeedForward))
    fused = model(input_ids, dec, mask)
    model.use_fused_kernels(False)
    assert not any(m.fused for m in model.modules() if isinstance(m, Attention))
    explicit = model(input_ids, dec, mask)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    model.use_fused_kernels(True)
    torch.testing.assert_close(model(input_ids, dec, mask), fused)


@pytest.mark.parametrize("position", POSITIONS)
def test_cache_gives_the_same_logits_at_every_step(position):
    model = tiny_model(position=position)
    input_ids, mask, dec = random_batch(T=7)
    memory = model.encode(input_ids, mask)
    full = model.decode(dec, memory, mask)  # (B, T, V), no cache
    cache = model.new_cache(max_length=7, source_length=input_ids.shape[1])
    for t in range(dec.shape[1]):
        step = model.decode(dec[:, t : t + 1], memory, mask, cache=cache)  # one token at a time
        torch.testing.assert_close(step[:, 0], full[:, t], atol=1e-5, rtol=1e-5)
    assert cache.length == 7


def test_the_cache_fills_cross_attention_once_and_the_layers_then_get_no_memory():
    """Decoding: the DecoderCache projects the encoder output into every cross-attention
    layer's keys and values on the first step; later steps read them (W_k runs once) and the
    cross-attention layers are called with context=None."""
    model = tiny_model()
    input_ids, mask, dec = random_batch(T=4)
    memory = model.encode(input_ids, mask)
    cross = model.decoder.layers[0].cross_attn
    key_projections, contexts = [], []
    cross.k.register_forward_hook(lambda module, args, out: key_projections.append(args[0]))
    cross.register_forward_pre_hook(
        lambda module, args, kwargs: contexts.append(kwargs["context"]), with_kwargs=True
    )
    cache = model.new_cache(max_length=4, source_length=input_ids.shape[1])
    for t in range(4):
        model.decode(dec[:, t : t + 1], memory, mask, cache=cache)
    assert len(key_projections) == 1 and key_projections[0] is memory
    assert contexts == [None] * 4
    assert [c.length for c in cache.cross_attn] == [input_ids.shape[1]] * len(cache.cross_attn)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"position": "sinusoidal", "ffn": "relu", "norm": "layer", "bias": True},
        {"position": "learned", "ffn": "swiglu", "norm_position": "post", "tie_embeddings": False},
        {"ffn": "gelu", "scale_attention": False, "d_head": 4},
    ],
)
def test_every_parameter_receives_a_gradient(overrides):
    model = tiny_model(**overrides).train()
    input_ids, mask, dec = random_batch()
    labels = dec.roll(-1, dims=1)
    cross_entropy_loss(model(input_ids, dec, mask), labels).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_tied_head_shares_the_embedding_and_scales_it():
    model = tiny_model()
    assert model.lm_head is None
    input_ids, mask, dec = random_batch()
    memory = model.encode(input_ids, mask)
    hidden = model.decoder(model.embed(dec), memory, mask)  # (B, T, C)
    expected = (hidden * 32**-0.5) @ model.embed.weight.t()  # T5 v1.0: logits = h·C^-1/2·Eᵀ
    torch.testing.assert_close(model.decode(dec, memory, mask), expected)
    untied = tiny_model(tie_embeddings=False)
    assert untied.lm_head.weight.shape == (128, 32)
    assert untied.num_parameters() == model.num_parameters() + 128 * 32


def test_dropout_is_active_in_train_mode_only():
    model = tiny_model(dropout=0.5)
    input_ids, mask, dec = random_batch()
    eval_a, eval_b = model(input_ids, dec, mask), model(input_ids, dec, mask)
    torch.testing.assert_close(eval_a, eval_b)
    model.train()
    assert not torch.allclose(model(input_ids, dec, mask), model(input_ids, dec, mask))


def test_shift_right_worked_example():
    labels = torch.tensor([[5, 6, 7, 1], [8, 1, -100, -100]])
    assert shift_right(labels, start_id=0, pad_id=0).tolist() == [[0, 5, 6, 7], [0, 8, 1, 0]]


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = tiny_model().train()
    input_ids, mask, _ = random_batch(B=4, S=8)
    labels = torch.randint(3, 128, (4, 6))
    labels[:, -1] = 1  # eos
    labels[2, 4:] = -100  # a shorter target
    dec = shift_right(labels, 0, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = cross_entropy_loss(model(input_ids, dec, mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05


def test_attention_maps_are_distributions_with_masks_respected():
    model = tiny_model()  # fused kernels on: maps come from the explicit softmax all the same
    input_ids, mask, dec = random_batch()
    maps = model.attention_maps(input_ids, dec, mask)
    assert len(maps["encoder_self"]) == 2 and len(maps["cross"]) == 2
    enc, dec_self, cross = maps["encoder_self"][0], maps["decoder_self"][1], maps["cross"][0]
    assert (
        enc.shape == (3, 4, 9, 9) and dec_self.shape == (3, 4, 6, 6) and cross.shape == (3, 4, 6, 9)
    )
    for weights in (enc, dec_self, cross):
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert torch.all(dec_self.triu(diagonal=1) == 0)  # causal
    assert torch.all(cross[2, :, :, 7:] == 0)  # row 2 has 2 padding tokens
    # the fused kernel is back afterwards: no module keeps recording (and paying for) weights
    attentions = [m for m in model.modules() if isinstance(m, Attention)]
    assert attentions and not any(m.record_weights for m in attentions)
    assert all(m.fused for m in attentions)
    model(input_ids, dec, mask)
    assert all(m.last_weights is None for m in attentions)  # nothing recorded, nothing kept


def test_activation_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(dropout=0.0).train()
        model.set_activation_checkpointing(checkpointing)
        input_ids, mask, dec = random_batch()
        cross_entropy_loss(model(input_ids, dec, mask), dec.roll(-1, 1)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def test_activation_checkpointing_runs_each_layer_again_in_backward():
    calls = {"n": 0}

    def count(module, args):
        calls["n"] += 1

    for checkpointing, expected in ((False, 1), (True, 2)):
        model = tiny_model(dropout=0.0).train()
        model.set_activation_checkpointing(checkpointing)
        # a sub-layer inside each first layer: it runs again when its layer is recomputed
        model.encoder.layers[0].ff.register_forward_pre_hook(count)
        model.decoder.layers[0].ff.register_forward_pre_hook(count)
        calls["n"] = 0
        input_ids, mask, dec = random_batch()
        cross_entropy_loss(model(input_ids, dec, mask), dec.roll(-1, 1)).backward()
        assert calls["n"] == 2 * expected, (checkpointing, calls)  # the forward, and the recompute


def test_a_t5_model_never_calls_a_rotate_that_does_nothing(monkeypatch):
    """Only a scheme with `rotates = True` reaches the attention layers (RoPE); T5's relative
    bias does not, so a learner stepping through T5 sees no no-op calls."""

    def refuse(self, x, offset=0):
        raise AssertionError(f"{type(self).__name__}.rotate called")

    monkeypatch.setattr(PositionScheme, "rotate", refuse)
    model = tiny_model(position="relative")
    input_ids, mask, dec = random_batch()
    model(input_ids, dec, mask)
    model.generate(input_ids, mask, max_new_tokens=3)
    with pytest.raises(AssertionError, match="rotate called"):  # the spy works
        model.decoder.position.rotate(torch.zeros(1, 4, 2, 8), torch.arange(2)[None])


def test_a_config_saved_with_a_path_loads_and_the_path_is_not_taken_from_it():
    """Older config.json files saved a path (impl, earlier attention_impl) in the model's
    config; they load, into the one path there is."""
    tiny = ModelConfig.preset("tiny")
    for key, value in (("impl", "fast"), ("attention_impl", "fast")):
        cfg = ModelConfig.from_dict({**tiny.to_dict(), key: value})
        assert cfg == tiny and key not in cfg.to_dict()
        model = Seq2SeqTransformer(cfg)
        assert {type(m) for m in model.modules() if isinstance(m, Attention)} == {Attention}
    from minitune.config import check_keys

    with pytest.raises(ValueError, match=r"key 'impl'; fused kernels are train\.fused_kernels"):
        check_keys("model", {"impl": "fast"}, ModelConfig)  # a run file's [model], or --set
