import math

import torch
import torch.nn.functional as F
from conftest import random_batch, tiny_model

from minitune import cross_entropy_loss, shift_right, token_nll_sum


def test_worked_example_from_the_docstring():
    probs = torch.tensor([[[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]])
    labels = torch.tensor([[0, -100]])
    loss_sum, n = token_nll_sum(probs.log(), labels)
    assert n.item() == 1
    assert abs(loss_sum.item() - math.log(2)) < 1e-6


def test_mean_is_minus_mean_log_probability_of_real_tokens():
    logits = torch.randn(2, 4, 10)
    labels = torch.tensor([[1, 2, 3, -100], [4, -100, -100, -100]])
    log_p = logits.log_softmax(-1)
    picked = [log_p[0, 0, 1], log_p[0, 1, 2], log_p[0, 2, 3], log_p[1, 0, 4]]
    expected = -torch.stack(picked).mean()
    torch.testing.assert_close(cross_entropy_loss(logits, labels), expected)


def test_label_smoothing_formula():
    logits = torch.randn(3, 1, 5)
    labels = torch.tensor([[2], [0], [4]])
    eps = 0.1
    log_p = logits.log_softmax(-1).squeeze(1)
    target = torch.full((3, 5), eps / 5)
    target[torch.arange(3), labels.squeeze(1)] += 1 - eps
    expected = -(target * log_p).sum(-1).mean()
    torch.testing.assert_close(cross_entropy_loss(logits, labels, label_smoothing=eps), expected)


def test_accumulating_sums_equals_one_big_batch():
    """4 micro-batches of 2, normalised by the total token count == 1 batch of 8."""
    model = tiny_model()
    input_ids, mask, _ = random_batch(B=8, S=8)
    labels = torch.randint(3, 128, (8, 5))
    for b in range(8):
        labels[b, 5 - b % 4 :] = -100  # ragged targets: micro-batches have different counts
    labels[:, 0] = 7
    dec = shift_right(labels, 0, 0)

    model.zero_grad()
    cross_entropy_loss(model(input_ids, dec, mask), labels).backward()
    big = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    total_tokens = (labels != -100).sum()
    for i in range(0, 8, 2):
        s = slice(i, i + 2)
        loss_sum, _ = token_nll_sum(model(input_ids[s], dec[s], mask[s]), labels[s])
        (loss_sum / total_tokens).backward()
    for g_big, p in zip(big, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g_big, atol=1e-6, rtol=1e-5)


def test_bf16_logits_are_scored_in_float32():
    logits = torch.randn(2, 3, 50)
    labels = torch.randint(0, 50, (2, 3))
    exact = F.cross_entropy(logits.view(-1, 50), labels.view(-1))
    approx = cross_entropy_loss(logits.bfloat16(), labels)
    assert approx.dtype == torch.float32
    # the same as float32 scoring of the bf16-rounded logits (bf16 arithmetic is off by ~1e-2)
    rounded = F.cross_entropy(logits.bfloat16().float().view(-1, 50), labels.view(-1))
    torch.testing.assert_close(approx, rounded, atol=1e-6, rtol=1e-6)
    assert abs(approx.item() - exact.item()) < 0.05
