import itertools
import math

import pytest
import torch
from conftest import POSITIONS, random_batch, tiny_model

from minitune import cross_entropy_loss, shift_right
from minitune.generate import beam_search, sample_token, top_k_filter, top_p_filter


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("num_beams", [1, 3])
def test_cache_and_no_cache_give_the_same_tokens(position, num_beams):
    model = tiny_model(position=position)
    input_ids, mask, _ = random_batch()
    with_cache = model.generate(input_ids, mask, max_new_tokens=12, num_beams=num_beams)
    without = model.generate(
        input_ids, mask, max_new_tokens=12, num_beams=num_beams, use_cache=False
    )
    assert with_cache.shape[1] > 0
    assert torch.equal(with_cache, without)


def test_greedy_is_the_argmax_of_the_full_forward():
    model = tiny_model()
    input_ids, mask, _ = random_batch()
    out = model.generate(input_ids, mask, max_new_tokens=5, min_new_tokens=5)
    dec = torch.cat([torch.zeros(3, 1, dtype=torch.long), out[:, :-1]], dim=1)
    assert torch.equal(model(input_ids, dec, mask).argmax(-1), out)


def test_batched_generation_equals_one_by_one():
    model = tiny_model(seed=3)
    input_ids, mask, _ = random_batch(seed=5)
    batched = model.generate(input_ids, mask, max_new_tokens=10)
    batched_beam = model.generate(input_ids, mask, max_new_tokens=10, num_beams=4)
    for b in range(3):
        n = int(mask[b].sum())
        single = model.generate(input_ids[b : b + 1, :n], max_new_tokens=10)
        assert torch.equal(batched[b, : single.shape[1]], single[0])
        single_beam = model.generate(input_ids[b : b + 1, :n], max_new_tokens=10, num_beams=4)
        assert torch.equal(batched_beam[b, : single_beam.shape[1]], single_beam[0])


def _memorise(targets, position="relative", steps=200):
    """A tiny model trained to answer source row b with targets[b] (which end in EOS = 1)."""
    torch.manual_seed(0)
    model = tiny_model(position=position).train()
    input_ids, mask, _ = random_batch(B=len(targets), S=6)
    width = max(map(len, targets))
    labels = torch.tensor([t + [-100] * (width - len(t)) for t in targets])
    dec = shift_right(labels, 0, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = cross_entropy_loss(model(input_ids, dec, mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), input_ids, mask


def test_each_row_stops_at_eos_and_is_padded_after_it():
    targets = [[5, 6, 7, 1], [8, 1], [9, 10, 1]]
    model, input_ids, mask = _memorise(targets)
    expected = [[5, 6, 7, 1], [8, 1, 0, 0], [9, 10, 1, 0]]
    beam = {"num_beams": 3, "early_stopping": False}
    for kwargs in ({}, {"use_cache": False}, beam, {**beam, "use_cache": False}):
        out = model.generate(input_ids, mask, max_new_tokens=20, **kwargs)
        assert out.tolist() == expected, kwargs


def test_early_stopping_true_stops_at_num_beams_hypotheses():
    """With early_stopping=True (the Hugging Face meaning), an example stops as soon as K
    hypotheses end, even if a running beam would have scored better: here three poor
    hypotheses end at length <= 3 before the memorised answer can end at length 4."""
    model, input_ids, mask = _memorise([[5, 6, 7, 1], [8, 1], [9, 10, 1]])
    eager = model.generate(input_ids[:1], mask[:1], max_new_tokens=20, num_beams=3)
    patient = model.generate(
        input_ids[:1], mask[:1], max_new_tokens=20, num_beams=3, early_stopping=False
    )
    assert patient.tolist() == [[5, 6, 7, 1]]
    assert eager.shape[1] <= 3 and eager[0, -1] == 1


@pytest.mark.parametrize("num_beams", [1, 3])
def test_min_new_tokens_forbids_early_eos(num_beams):
    model, input_ids, mask = _memorise([[5, 1], [6, 1]])
    free = model.generate(input_ids, mask, max_new_tokens=6, num_beams=num_beams)
    assert free.tolist() == [[5, 1], [6, 1]]  # without the floor, EOS comes second
    out = model.generate(input_ids, mask, max_new_tokens=6, min_new_tokens=4, num_beams=num_beams)
    assert out.shape[1] >= 4 and (out[:, :4] != 1).all()


def test_beam_search_with_one_beam_is_greedy():
    model = tiny_model(seed=2)
    input_ids, mask, _ = random_batch()
    greedy = model.generate(input_ids, mask, max_new_tokens=8)
    memory = model.encode(input_ids, mask)
    with torch.no_grad():
        beam = beam_search(model, memory, mask, input_ids, max_new_tokens=8, num_beams=1)
    assert torch.equal(beam, greedy)


def _brute_force_best(model, input_ids, length, length_penalty):
    """Score every sequence of at most `length` tokens (ending at EOS, or cut at `length`)."""
    V, eos = model.config.vocab_size, model.config.eos_id
    candidates = []
    for n in range(1, length + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < length and seq[-1] != eos):
                continue  # EOS only at the end; shorter sequences must end with EOS
            candidates.append(list(seq))
    best, best_score = None, float("-inf")
    for seq in candidates:
        dec = torch.tensor([[0, *seq[:-1]]])
        log_p = model(input_ids, dec).log_softmax(-1)[0]
        total = sum(log_p[t, tok].item() for t, tok in enumerate(seq))
        score = total / len(seq) ** length_penalty
        if score > best_score:
            best, best_score = seq, score
    return best


@pytest.mark.parametrize("length,beams_per_vocab_power", [(2, 1), (3, 2)])
@pytest.mark.parametrize("length_penalty", [1.0, 0.0, 2.0])
@pytest.mark.parametrize("early_stopping", [True, False, "never"])
def test_wide_beam_finds_the_brute_force_best(
    length, beams_per_vocab_power, length_penalty, early_stopping
):
    V = 5
    for seed in range(3):
        model = tiny_model(seed=seed, vocab_size=V)
        with torch.no_grad():  # sharpen the distribution so EOS competes
            model.embed.weight.mul_(3)
        input_ids = torch.tensor([[3, 4, 2, 3]])
        num_beams = V**beams_per_vocab_power  # as wide as every live prefix
        with torch.no_grad():
            out = model.generate(
                input_ids,
                max_new_tokens=length,
                num_beams=num_beams,
                length_penalty=length_penalty,
                early_stopping=early_stopping,
            )
            best = _brute_force_best(model, input_ids, length, length_penalty)
        assert out[0].tolist()[: len(best)] == best
        assert all(t == 0 for t in out[0].tolist()[len(best) :])


def test_top_k_one_is_greedy():
    model = tiny_model()
    input_ids, mask, _ = random_batch()
    greedy = model.generate(input_ids, mask, max_new_tokens=8)
    sampled = model.generate(input_ids, mask, max_new_tokens=8, do_sample=True, top_k=1)
    assert torch.equal(sampled, greedy)


def test_sampling_is_reproducible_with_a_seeded_generator():
    model = tiny_model()
    input_ids, mask, _ = random_batch()

    def sample(seed):
        g = torch.Generator().manual_seed(seed)
        return model.generate(
            input_ids,
            mask,
            max_new_tokens=16,
            min_new_tokens=16,
            do_sample=True,
            temperature=2.0,
            generator=g,
        )

    assert torch.equal(sample(7), sample(7))
    assert any(not torch.equal(sample(7), sample(s)) for s in range(8, 12))


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = lambda p: torch.isfinite(top_p_filter(logits, p))[0].tolist()  # noqa: E731
    assert kept(0.75) == [True, True, False, False]
    assert kept(0.9) == [True, True, True, False]
    assert kept(0.4) == [True, False, False, False]
    assert kept(1.0) == [True, True, True, True]
    # order of the vocabulary does not matter
    shuffled = logits[:, [2, 0, 3, 1]]
    assert torch.isfinite(top_p_filter(shuffled, 0.75))[0].tolist() == [False, True, False, True]


def test_top_k_filter_and_sample_frequencies():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isfinite(top_k_filter(logits, 2))[0].tolist() == [True, True, False, False]
    g = torch.Generator().manual_seed(0)
    draws = sample_token(logits.expand(4000, 4), top_k=2, generator=g)
    assert set(draws.tolist()) <= {0, 1}
    assert abs((draws == 0).float().mean().item() - 0.5 / 0.8) < 0.03


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"num_beams": 2, "do_sample": True}, "beam sampling"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"num_beams": 2, "early_stopping": "sometimes"}, "early_stopping"),
    ],
)
def test_bad_decoding_arguments(kwargs, fragment):
    model = tiny_model()
    with pytest.raises(ValueError, match=fragment):
        model.generate(torch.tensor([[3, 4]]), **kwargs)


def test_generate_restores_training_mode():
    model = tiny_model(dropout=0.3).train()
    input_ids, mask, _ = random_batch()
    a = model.generate(input_ids, mask, max_new_tokens=6)
    b = model.generate(input_ids, mask, max_new_tokens=6)
    assert torch.equal(a, b)  # no dropout while generating
    assert model.training


# ---- sampling draws from the distribution it should (chi-square bounds, seeded) --------------


def expected_distribution(logits: list[float], temperature=1.0, top_k=0, top_p=1.0):
    """What sampling should draw from, written out in plain Python: softmax(logits / T), then
    the k most likely tokens (renormalised), then the smallest set of those whose probability
    reaches p (renormalised)."""
    scaled = [x / temperature for x in logits]
    top = max(scaled)
    weights = [math.exp(x - top) for x in scaled]
    probs = [w / sum(weights) for w in weights]
    ranked = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept = ranked[:top_k] if top_k else ranked
    mass = sum(probs[i] for i in kept)
    nucleus, reached = [], 0.0
    for i in kept:
        if reached >= top_p:
            break
        nucleus.append(i)
        reached += probs[i] / mass
    total = sum(probs[i] for i in nucleus)
    return [probs[i] / total if i in nucleus else 0.0 for i in range(len(probs))]


def assert_draws_follow(draws: torch.Tensor, probs: list[float], what: str) -> None:
    """Tokens outside the support are never drawn, and Pearson's chi-square statistic over the
    others stays under its 0.999 quantile (Wilson-Hilferty approximation)."""
    counts = torch.bincount(draws, minlength=len(probs)).tolist()
    n = len(draws)
    outside = [i for i, p in enumerate(probs) if p == 0 and counts[i]]
    assert not outside, f"{what}: drew tokens {outside} that have probability 0"
    support = [i for i, p in enumerate(probs) if p > 0]
    df = len(support) - 1
    if df == 0:
        return
    chi2 = sum((counts[i] - n * probs[i]) ** 2 / (n * probs[i]) for i in support)
    z = 3.09  # the standard normal's 0.999 quantile
    bound = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    assert chi2 < bound, (
        f"{what}: chi-square {chi2:.1f} >= {bound:.1f}; counts {counts}, expected {[round(n * p) for p in probs]}"
    )


SAMPLING_CASES = [
    {"temperature": 1.0},
    {"temperature": 0.5},
    {"temperature": 2.0},
    {"top_k": 3},
    {"top_p": 0.7},
    {"temperature": 1.5, "top_k": 5, "top_p": 0.8},
    {"temperature": 0.7, "top_k": 2, "top_p": 0.5},
]


@pytest.mark.parametrize("kwargs", SAMPLING_CASES, ids=str)
def test_sample_token_draws_from_the_filtered_tempered_distribution(kwargs):
    probs = [0.35, 0.25, 0.15, 0.1, 0.08, 0.04, 0.02, 0.01]
    logits = torch.tensor(probs).log()
    seed = 1234
    g = torch.Generator().manual_seed(seed)
    draws = sample_token(logits.expand(20000, -1), generator=g, **kwargs)
    expected = expected_distribution(logits.tolist(), **kwargs)
    assert_draws_follow(draws, expected, f"{kwargs}, seed {seed}")


def test_the_reference_distribution_is_what_the_docstrings_say():
    p = [0.5, 0.3, 0.15, 0.05]
    logits = [math.log(x) for x in p]
    assert expected_distribution(logits, top_p=0.75) == pytest.approx([0.625, 0.375, 0, 0])
    assert expected_distribution(logits, top_k=3) == pytest.approx(
        [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]
    )
    hot = [x**0.5 for x in p]  # temperature 2: p ** (1/2), renormalised
    assert expected_distribution(logits, temperature=2.0) == pytest.approx(
        [h / sum(hot) for h in hot]
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 0.7, "top_p": 0.6}, {"temperature": 1.3, "top_k": 3, "top_p": 0.9}],
    ids=str,
)
def test_generate_samples_its_first_token_from_the_model_distribution(kwargs):
    model = tiny_model(seed=4, vocab_size=8)  # first-token probabilities 0.38, 0.27, 0.12...
    source = torch.tensor([[3, 4, 5, 6]])
    first = model(source, torch.zeros(1, 1, dtype=torch.long))[0, 0].tolist()  # (V,)
    expected = expected_distribution(first, **kwargs)
    assert 1 < sum(p > 0 for p in expected) < 8  # the filters matter here
    seed = 99
    g = torch.Generator().manual_seed(seed)
    out = model.generate(
        source.expand(6000, -1), max_new_tokens=1, do_sample=True, generator=g, **kwargs
    )
    assert_draws_follow(out[:, 0], expected, f"generate with {kwargs}, seed {seed}")


def test_sampled_rows_are_padded_after_their_eos():
    model = tiny_model(seed=6, vocab_size=16)
    input_ids, mask, _ = random_batch(vocab=16, B=3)
    rows = 40
    seed = 5
    g = torch.Generator().manual_seed(seed)
    out = model.generate(
        input_ids.repeat(rows, 1),
        mask.repeat(rows, 1),
        max_new_tokens=12,
        do_sample=True,
        temperature=1.5,
        generator=g,
    )
    eos, pad = model.config.eos_id, model.config.pad_id
    ended_early = 0
    for row in out.tolist():
        if eos in row:
            end = row.index(eos)
            assert all(t == pad for t in row[end + 1 :]), f"seed {seed}: {row}"
            ended_early += end < len(row) - 1
        else:
            assert len(row) == 12, f"seed {seed}: {row}"
    assert ended_early >= 5, f"seed {seed}: too few rows end early to test the padding"
