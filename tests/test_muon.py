"""Muon (minitune/optim.py): Newton–Schulz orthogonalises, the hidden matrices take Muon and the
rest AdamW, both follow the schedule, the loss falls, resume == uninterrupted, and the config
refuses FSDP and LoRA."""

from __future__ import annotations

import io
import re

import pytest
import torch
from conftest import random_batch, tiny_model

from minitune.config import ConfigError, TrainConfig
from minitune.optim import Muon, build_optimizer, newton_schulz
from minitune.run.state import StepSetup
from minitune.train import train_step

# encoder.layers.0.self_attn.q.weight, decoder.layers.1.ff.wi_gate.weight, ...
HIDDEN = re.compile(r"(encoder|decoder)\.layers\.\d+\.\w+\.(q|k|v|o|wi|wi_gate|wo)\.weight")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def batch(seed: int, vocab: int = 128) -> dict:
    """One micro-batch as the loop's batch stream gives it (labels: the decoder ids)."""
    input_ids, mask, labels = random_batch(vocab, B=4, S=8, T=6, seed=seed)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("seed", range(4))
def test_newton_schulz_keeps_singular_vectors_and_brings_singular_values_near_one(seed):
    G = torch.randn(64, 32, generator=torch.Generator().manual_seed(seed))
    X = newton_schulz(G)
    s = torch.linalg.svdvals(X)
    # this quintic lands the singular values in about [0.68, 1.14] (measured), not exactly on 1
    assert s.min() > 0.6 and s.max() < 1.2, s
    assert torch.linalg.svdvals(G).max() / torch.linalg.svdvals(G).min() > 2  # G itself is not
    # the singular vectors are G's own: Uᵀ X V is diagonal
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    inner = U.t() @ X @ Vh.t()  # (32, 32)
    off_diagonal = inner - torch.diag(inner.diagonal())
    assert off_diagonal.abs().max() < 1e-4
    # a tall matrix is computed as its (wide) transpose: the same numbers
    assert torch.equal(newton_schulz(G.t()), X.t())


def test_hidden_matrices_take_muon_and_the_rest_adamw():
    model = tiny_model(tie_embeddings=False, copy_head=True, bias=True)
    cfg = TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.02, weight_decay=0.1)
    optimizer = build_optimizer(model, cfg)
    muon = [g for g in optimizer.param_groups if g["muon"]]
    adamw = [g for g in optimizer.param_groups if not g["muon"]]
    assert len(muon) == 1 and len(adamw) == 2
    in_muon = {id(p) for p in muon[0]["params"]}
    decayed = {id(p) for g in adamw if g["weight_decay"] for p in g["params"]}
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once
    for name, p in model.named_parameters():
        assert (id(p) in in_muon) == bool(HIDDEN.fullmatch(name)), name
    assert len(in_muon) == 2 * (4 + 3) + 2 * (4 + 4 + 3)  # q k v o, wi wi_gate wo; + cross (dec)
    # outside the blocks: on AdamW, matrices decayed (lm_head, copy head), the embedding not
    for p in (model.lm_head.weight, model.copy_head.q.weight, model.copy_head.k.weight):
        assert id(p) in decayed
    assert id(model.embed.weight) not in in_muon | decayed
    assert muon[0]["lr"] == 0.02 and muon[0]["weight_decay"] == 0.1
    assert all(g["lr"] == 1e-3 and g["lr_scale"] == 1.0 for g in adamw)


def test_the_schedule_scales_muon_and_adamw_alike_and_the_loss_falls():
    model = tiny_model().train()
    cfg = TrainConfig(optimizer="muon", lr=2e-3, muon_lr=0.02)
    optimizer = build_optimizer(model, cfg)
    setup = StepSetup("cpu", pad_id=0)
    losses = [train_step(model, optimizer, [batch(1)], cfg.lr, setup).loss for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0], losses
    assert any("momentum_buffer" in s for s in optimizer.state.values())
    train_step(model, optimizer, [batch(1)], cfg.lr * 0.25, setup)  # a quarter of the peak
    for group in optimizer.param_groups:
        peak = cfg.muon_lr if group["muon"] else cfg.lr
        assert group["lr"] == pytest.approx(0.25 * peak, rel=1e-12)


def test_resume_from_a_saved_optimizer_state_gives_the_same_weights():
    cfg = TrainConfig(optimizer="muon", lr=2e-3, muon_lr=0.02, weight_decay=0.1)
    setup = StepSetup("cpu", pad_id=0)
    lrs = [cfg.lr * f for f in (0.5, 1.0, 0.9, 0.7, 0.4, 0.2)]

    def steps(model, optimizer, first: int, last: int) -> None:
        for i in range(first, last):
            train_step(model, optimizer, [batch(10 + i)], lrs[i], setup)

    whole = tiny_model(seed=0)
    steps(whole, build_optimizer(whole, cfg), 0, 6)

    before = tiny_model(seed=0)
    optimizer = build_optimizer(before, cfg)
    steps(before, optimizer, 0, 3)
    saved = io.BytesIO()  # as trainer.pt is written and read: plain data only
    torch.save({"model": before.state_dict(), "optimizer": optimizer.state_dict()}, saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    after = tiny_model(seed=1)  # other weights, a fresh optimizer: all of it comes from `state`
    optimizer = build_optimizer(after, cfg)
    after.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    steps(after, optimizer, 3, 6)

    for (name, p), q in zip(whole.named_parameters(), after.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_groups_without_the_muon_flag_step_as_torch_adamw():
    torch.manual_seed(0)
    w, b = torch.randn(6, 4), torch.randn(4)
    ours = [torch.nn.Parameter(w.clone()), torch.nn.Parameter(b.clone())]
    reference = [torch.nn.Parameter(w.clone()), torch.nn.Parameter(b.clone())]
    settings = dict(lr=0.01, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.1)
    ours_opt = Muon([{"params": ours, "muon": False}], **settings)
    reference_opt = torch.optim.AdamW(reference, foreach=False, **settings)
    x = torch.randn(16, 6)
    for _ in range(5):
        for params, opt in ((ours, ours_opt), (reference, reference_opt)):
            opt.zero_grad()
            ((x @ params[0] + params[1]).sin().sum()).backward()
            opt.step()
    for p, q in zip(ours, reference, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_muon_refuses_vectors_in_a_muon_group():
    with pytest.raises(ValueError, match="only 2-D matrices"):
        Muon([torch.nn.Parameter(torch.zeros(3))])


@pytest.mark.parametrize(
    "setting, words",
    [({"fsdp": True}, "does not work with fsdp"), ({"lora_rank": 4}, "does not work with lora")],
)
def test_muon_with_fsdp_or_lora_is_a_config_error(setting, words):
    with pytest.raises(ConfigError, match=f"optimizer='muon' {words}"):
        TrainConfig(optimizer="muon", **setting)
