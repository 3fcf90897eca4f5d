"""CUDA fast paths. Every test here skips cleanly without a CUDA GPU (CI has none); run them on a
GPU machine with `pytest tests/test_cuda.py`."""

import pytest
import torch
from conftest import random_batch, tiny_model

from minitune import cross_entropy_loss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_bf16_autocast_training_step_is_finite_and_close_to_fp32():
    model = tiny_model().cuda().train()
    input_ids, mask, dec = (t.cuda() for t in random_batch())
    fp32 = model(input_ids, dec, mask)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = model(input_ids, dec, mask)
        loss = cross_entropy_loss(bf16, dec.roll(-1, 1))
    loss.backward()
    assert torch.isfinite(loss)
    torch.testing.assert_close(bf16.float(), fp32, atol=0.1, rtol=0.05)


def test_fused_kernels_equal_the_explicit_arithmetic_on_the_gpu():
    model = tiny_model().cuda()  # fused kernels on (SDPA: a flash or memory-efficient kernel)
    input_ids, mask, dec = (t.cuda() for t in random_batch())
    fused = model(input_ids, dec, mask)
    model.use_fused_kernels(False)
    torch.testing.assert_close(model(input_ids, dec, mask), fused, atol=1e-4, rtol=1e-4)


def test_fp16_with_a_gradient_scaler_steps():
    model = tiny_model(scale_attention=True).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    input_ids, mask, dec = (t.cuda() for t in random_batch())
    with torch.autocast("cuda", dtype=torch.float16):
        loss = cross_entropy_loss(model(input_ids, dec, mask), dec.roll(-1, 1))
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())


def test_cached_generation_matches_uncached_on_the_gpu():
    model = tiny_model().cuda()
    input_ids, mask, _ = (t.cuda() for t in random_batch())
    cached = model.generate(input_ids, mask, max_new_tokens=8)
    assert torch.equal(cached, model.generate(input_ids, mask, max_new_tokens=8, use_cache=False))
