"""Packed rows: the same loss and gradients as padded rows, and no example sees its neighbour."""

import random

import pytest
import torch

from minitune import ModelConfig, Seq2SeqTransformer, shift_right
from minitune.data.batching import EncodedExample, collate
from minitune.data.packing import collate_packed, pack_rows, packed_batches
from minitune.layers.attention import make_segment_mask, segment_positions
from minitune.loss import token_nll_sum
from minitune.model import Segments

POSITIONS = ["relative", "relative+sinusoidal", "sinusoidal", "learned", "rotary", "alibi", "none"]
VOCAB = 64


def random_examples(n, seed, max_source=12, max_target=7):
    rng = random.Random(seed)
    return [
        EncodedExample(
            source=[rng.randrange(3, VOCAB) for _ in range(rng.randint(2, max_source - 1))] + [1],
            target=[rng.randrange(3, VOCAB) for _ in range(rng.randint(1, max_target - 1))] + [1],
            index=i,
        )
        for i in range(n)
    ]


def padded_loss(model, examples):
    batch = collate(examples, pad_id=0)
    y = batch["labels"]
    logits = model(batch["input_ids"], shift_right(y, 0, 0), batch["attention_mask"])
    return token_nll_sum(logits, y)


def packed_inputs(rows, S=24, T=14, n_rows=None):
    batch = collate_packed(rows, 0, S, T, n_rows)
    segments = Segments(batch["source_segments"], batch["target_segments"])
    return batch, segments


def packed_logits(model, rows, **kw):
    batch, segments = packed_inputs(rows, **kw)
    y = batch["labels"]
    return model(batch["input_ids"], shift_right(y, 0, 0, segments.target), None, segments), y


def tiny_model(position, copy_head, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig.preset(
        "tiny", vocab_size=VOCAB, position=position, copy_head=copy_head, max_position=64
    )
    return Seq2SeqTransformer(cfg).train()


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("copy_head", [False, True], ids=["plain", "copy-head"])
@pytest.mark.parametrize("position", POSITIONS)
def test_packed_equals_padded_loss_and_gradients(position, copy_head):
    examples = random_examples(7, seed=1)
    model = tiny_model(position, copy_head)
    loss_pad, n_pad = padded_loss(model, examples)
    loss_pad.backward()
    g_pad = grads(model)
    model.zero_grad()
    rows = [examples[0:3], examples[3:5], examples[5:7]]  # uneven rows, some padding left
    logits, y = packed_logits(model, rows)
    loss_pack, n_pack = token_nll_sum(logits, y)
    loss_pack.backward()
    g_pack = grads(model)
    assert int(n_pack) == int(n_pad)
    torch.testing.assert_close(loss_pack, loss_pad, rtol=1e-5, atol=1e-5)
    assert g_pad.keys() == g_pack.keys()
    for name in g_pad:
        torch.testing.assert_close(g_pack[name], g_pad[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("position", ["relative", "rotary", "learned"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
def test_a_packed_example_cannot_see_its_neighbours(position, fused):
    model = tiny_model(position, copy_head=True).eval()
    model.use_fused_kernels(fused)
    examples = random_examples(3, seed=2)
    changed = [examples[0], EncodedExample([5, 6, 7, 8, 9, 1], [9, 9, 1], 1), examples[2]]
    with torch.no_grad():
        before, _ = packed_logits(model, [examples])
        after, _ = packed_logits(model, [changed])
    segments = collate_packed([examples], 0, 24, 14)["target_segments"][0]
    changed_segments = collate_packed([changed], 0, 24, 14)["target_segments"][0]
    first = segments == 1  # example 1 keeps its place; example 3 moves with example 2's length
    torch.testing.assert_close(after[0, first], before[0, first])
    third_before, third_after = before[0, segments == 3], after[0, changed_segments == 3]
    torch.testing.assert_close(third_after, third_before, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after[0, changed_segments == 2][:1], before[0, segments == 2][:1])


def test_packed_logits_match_each_example_alone():
    model = tiny_model("relative+sinusoidal", copy_head=True).eval()
    examples = random_examples(4, seed=3)
    with torch.no_grad():
        packed, _ = packed_logits(model, [examples], S=48, T=28)
        seg = collate_packed([examples], 0, 48, 28)["target_segments"][0]
        for k, e in enumerate(examples, start=1):
            alone, _ = packed_logits(model, [[e]])
            n = len(e.target)
            torch.testing.assert_close(packed[0, seg == k], alone[0, :n], rtol=1e-5, atol=1e-5)


def test_shift_right_restarts_every_packed_example():
    labels = torch.tensor([[5, 1, 7, 8, 1, -100]])
    segments = torch.tensor([[1, 1, 2, 2, 2, 0]])
    assert shift_right(labels, 0, 2, segments).tolist() == [[0, 5, 0, 7, 8, 2]]
    assert shift_right(labels, 0, 2).tolist() == [[0, 5, 1, 7, 8, 1]]


def test_segment_mask_and_positions():
    seg = torch.tensor([[1, 1, 2, 0]])
    assert make_segment_mask(seg, seg, causal=False)[0, 0].int().tolist() == [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
    ]
    causal = make_segment_mask(torch.tensor([[1, 1, 2, 2]]), torch.tensor([[1, 1, 2, 2]]), True)
    assert causal[0, 0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
    positions = segment_positions(torch.tensor([[1, 1, 1, 2, 2, 0], [1, 2, 2, 2, 3, 3]]))
    assert positions.tolist() == [[0, 1, 2, 0, 1, 0], [0, 0, 1, 2, 0, 1]]


def test_pack_rows_places_every_example_once_within_both_lengths():
    rng = random.Random(0)
    sources = [rng.randint(1, 40) for _ in range(500)]
    targets = [rng.randint(1, 20) for _ in range(500)]
    rows = pack_rows(sources, targets, 64, 24)
    assert sorted(i for row in rows for i in row) == list(range(500))
    for row in rows:
        assert sum(sources[i] for i in row) <= 64 and sum(targets[i] for i in row) <= 24
    assert len(rows) < 500 / 2  # it does pack
    with pytest.raises(ValueError, match="does not fit a packed row of 64\\+24"):
        pack_rows([65], [3], 64, 24)


def test_packed_batches_are_deterministic_full_and_cover_every_example():
    examples = random_examples(300, seed=4)
    batches, report = packed_batches(examples, 24, 14, rows=8, seed=5)
    again, _ = packed_batches(examples, 24, 14, rows=8, seed=5)
    other, _ = packed_batches(examples, 24, 14, rows=8, seed=6)
    assert batches == again and batches != other
    indices = [i for batch in batches for row in batch for i in row]
    assert sorted(indices) == list(range(300))
    assert all(len(b) == 8 for b in batches[:-1]) and 1 <= len(batches[-1]) <= 8
    assert report.n_rows == sum(map(len, batches)) and report.source_fill > 0.7
    assert "300 examples in" in str(report)


def test_collate_packed_tops_up_with_empty_rows():
    examples = random_examples(2, seed=6)
    batch = collate_packed([examples], 0, 24, 14, n_rows=3)
    assert batch["input_ids"].shape == (3, 24) and batch["labels"].shape == (3, 14)
    assert batch["source_segments"][1:].eq(0).all() and batch["labels"][1:].eq(-100).all()
    n_real = sum(len(e.target) for e in examples)
    assert int((batch["labels"] != -100).sum()) == n_real
    with pytest.raises(ValueError, match=r"row 0 holds .* more than a packed row's 10\+14"):
        collate_packed([examples], 0, 10, 14)


def test_segments_and_attention_mask_together_are_refused():
    model = tiny_model("relative", copy_head=False)
    batch, segments = packed_inputs([random_examples(2, seed=7)])
    with pytest.raises(ValueError, match="attention_mask=None"):
        model(batch["input_ids"], batch["labels"].clamp(min=0), torch.ones(1, 24), segments)


def test_packing_settings_are_checked():
    from minitune.config import TrainConfig

    with pytest.raises(
        ValueError,
        match=r"packed_source_length must be 0 .* at least "
        r"max_source_length = 128",
    ):
        TrainConfig(packing=True, packed_source_length=100)
    with pytest.raises(ValueError, match="packing with mix_tasks_every is not supported"):
        TrainConfig(packing=True, mix_tasks_every=100)
    with pytest.raises(ValueError, match="adamw_impl"):
        TrainConfig(adamw_impl="fast")
    TrainConfig(packing=True, packed_source_length=256, packed_target_length=64)  # fine


@pytest.mark.parametrize("impl", ["auto", "for-loop", "foreach", "fused"])
def test_every_adamw_kernel_makes_the_same_update(impl):
    from minitune.config import TrainConfig
    from minitune.optim import build_optimizer

    def one_step(kernel):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
        optimizer = build_optimizer(model, TrainConfig(adamw_impl=kernel, lr=0.1))
        for _ in range(3):
            model(torch.randn(5, 4)).square().sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(one_step(impl), one_step("for-loop"), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_auto_precision_takes_bf16_only_where_it_times_faster(monkeypatch):
    from minitune.run import device as loop

    cpu = torch.device("cpu")
    assert loop.resolve_precision("fp32", cpu) == ("fp32", "")
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: False)
    assert loop.resolve_precision("auto", cpu) == ("fp32", "auto: no bf16 instructions")
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(loop, "bf16_speedup", lambda *a: 0.5)  # an AVX512-BF16 Xeon measured so
    precision, why = loop.resolve_precision("auto", cpu)
    assert precision == "fp32" and "0.50x the fp32 speed" in why
    monkeypatch.setattr(loop, "bf16_speedup", lambda *a: 2.7)
    assert loop.resolve_precision("auto", cpu)[0] == "bf16"


def test_bf16_speedup_is_a_positive_ratio():
    from minitune.run.device import bf16_speedup

    assert 0.01 < bf16_speedup(32, 64, rows=64) < 100
